"""The MNI152 template (nilearn's ICBM 2009a, 1 mm) and the model grid as SimpleITK images.

nilearn takes ~3 s to import, so it is imported only when the on-disk cache
(``$RADPIPE_CACHE/templates`` or ``~/.cache/radpipe/templates``) is cold; afterwards the
arrays load from a small ``.npz`` in a few milliseconds and stay cached in-process.

SimpleITK works in LPS physical coordinates (DICOM patient space); nilearn and the model
grid use RAS. Both templates and the grid are converted here once, so every other module
deals with LPS physical points only.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray

from radpipe.preprocessing import grid

CACHE_VERSION = 1
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def cache_dir() -> Path:
    """Where derived template arrays are cached."""
    root = os.environ.get("RADPIPE_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "radpipe"
    return base / "templates"


def image_from_ras(array: NDArray[np.generic], affine: NDArray[np.float64]) -> sitk.Image:
    """Wrap an (x, y, z) array with a RAS voxel→mm affine as an LPS SimpleITK image."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0)))
    lin = RAS_TO_LPS @ affine[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    img.SetSpacing([float(s) for s in spacing])
    img.SetDirection([float(v) for v in (lin / spacing).ravel()])
    img.SetOrigin([float(v) for v in RAS_TO_LPS @ affine[:3, 3]])
    return img


def array_xyz(img: sitk.Image) -> NDArray[Any]:
    """The voxel array of a SimpleITK image in (x, y, z) index order.

    A transposed view of a copy: a view straight into the image's buffer would dangle
    once a temporary image is freed.
    """
    return sitk.GetArrayFromImage(img).transpose(2, 1, 0)


@dataclass(frozen=True)
class Template:
    """The MNI152 T1 template and its brain mask (LPS SimpleITK images) plus identity."""

    t1: sitk.Image  # float32, brain-extracted T1 (intensities 0…1)
    mask: sitk.Image  # uint8 brain mask
    sha256: str  # of the cached arrays: what exactly we registered to
    source: str


def _load_from_nilearn() -> dict[str, NDArray[np.generic]]:
    from nilearn.datasets import load_mni152_brain_mask, load_mni152_template

    t1 = load_mni152_template(resolution=1)
    mask = load_mni152_brain_mask(resolution=1)
    return {
        "t1": np.asarray(t1.dataobj, dtype=np.float32),
        "mask": (np.asarray(mask.dataobj) > 0).astype(np.uint8),
        "affine": np.asarray(t1.affine, dtype=np.float64),
    }


def _nilearn_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("nilearn")
    except metadata.PackageNotFoundError:  # pragma: no cover - nilearn is a dependency
        return "unknown"


@functools.lru_cache(maxsize=1)
def mni_template() -> Template:
    """The MNI152 1 mm T1 template and brain mask, from the disk cache or nilearn."""
    path = cache_dir() / f"mni152-1mm-v{CACHE_VERSION}.npz"
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError):
        arrays = _load_from_nilearn()
        arrays["nilearn"] = np.asarray(_nilearn_version())
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)  # atomic: concurrent jobs never read a half-written cache
    digest = hashlib.sha256()
    for key in ("t1", "mask", "affine"):
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    affine = arrays["affine"].astype(np.float64)
    return Template(
        t1=image_from_ras(arrays["t1"].astype(np.float32), affine),
        mask=image_from_ras(arrays["mask"].astype(np.uint8), affine),
        sha256=digest.hexdigest(),
        source=f"nilearn {arrays.get('nilearn', 'unknown')} MNI152 ICBM 2009a 1 mm",
    )


def grid_reference(pixel: int = sitk.sitkFloat32) -> sitk.Image:
    """An empty image with the model grid's geometry (LPS), for ``sitk.Resample``."""
    img = sitk.Image([int(s) for s in grid.SHAPE], pixel)
    img.SetSpacing([float(s) for s in grid.SPACING])
    img.SetDirection([float(v) for v in RAS_TO_LPS.ravel()])
    img.SetOrigin([float(v) for v in RAS_TO_LPS @ np.asarray(grid.ORIGIN_RAS)])
    return img


@functools.lru_cache(maxsize=1)
def template_on_grid() -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """Template T1 and brain mask on the model grid, (x, y, z) arrays (read-only)."""
    tpl = mni_template()
    ref = grid_reference()
    # Template and grid share 1 mm axes with integer offsets: nearest neighbour is exact.
    t1 = sitk.Resample(tpl.t1, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0)
    mask = sitk.Resample(tpl.mask, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    t1_arr = np.array(array_xyz(t1), dtype=np.float32)
    mask_arr = np.array(array_xyz(mask), dtype=np.uint8)
    t1_arr.setflags(write=False)
    mask_arr.setflags(write=False)
    return t1_arr, mask_arr
