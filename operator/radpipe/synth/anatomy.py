"""Head anatomy on the MNI152 1 mm grid: brain tissue from nilearn's templates, skull and scalp
derived as shells outside a smoothed intracranial envelope.

nilearn's MNI152 (ICBM 2009a) T1 template is brain-extracted, so everything outside the brain
is built here: a thin CSF/dura layer, the skull (inner and outer table with diploë between),
scalp soft tissue and subcutaneous fat. The expensive part (distance transforms) is computed
once and cached on disk under ``~/.cache/radpipe/synth`` (or ``$RADPIPE_CACHE``) and in-process.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

CACHE_VERSION = 2
PAD_BELOW = 20  # voxels added under the template so the skull base closes below the cerebellum

# Tissue codes of the layered head (outside the brain; inside, GM/WM/CSF fractions are used).
AIR, CSF, BRAIN, DURA, BONE, DIPLOE, SCALP, FAT, SINUS = range(9)

Float = NDArray[np.float32]
Bool = NDArray[np.bool_]


@dataclass(frozen=True)
class BaseAnatomy:
    """Case-independent arrays on the padded MNI grid (x, y, z voxel order, RAS mm affine)."""

    affine: NDArray[np.float64]
    gm: Float  # grey-matter fraction
    wm: Float  # white-matter fraction
    csf: Float  # CSF fraction inside the intracranial envelope
    brain: Bool  # brain mask
    icv: Bool  # intracranial envelope (brain + subarachnoid space)
    d_out: Float  # mm outside the envelope (0 inside)
    d_in: Float  # mm inside the envelope from its surface (0 outside)
    ventricles: Bool
    icv_idx: NDArray[np.int64]  # flat indices of the envelope, for cheap per-contrast mixing
    gm_i: Float
    wm_i: Float
    csf_i: Float

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape."""
        return self.gm.shape

    def world(self, ijk: NDArray[np.floating]) -> NDArray[np.float64]:
        """Voxel indices → MNI (RAS) mm."""
        a = self.affine
        return np.asarray(ijk, dtype=float) @ a[:3, :3].T + a[:3, 3]

    def index(self, xyz: NDArray[np.floating]) -> NDArray[np.float64]:
        """MNI (RAS) mm → fractional voxel indices."""
        a = self.affine
        return (np.asarray(xyz, dtype=float) - a[:3, 3]) @ np.linalg.inv(a[:3, :3]).T


def cache_dir() -> Path:
    """Where derived template arrays are cached (``$RADPIPE_CACHE/synth`` or ~/.cache)."""
    root = os.environ.get("RADPIPE_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "radpipe"
    return base / "synth"


def _load_templates() -> tuple[NDArray[np.float64], Float, Float, Bool]:
    # nilearn costs ~3 s to import: only here, and only when the disk cache is cold.
    from nilearn.datasets import (
        load_mni152_brain_mask,
        load_mni152_gm_template,
        load_mni152_wm_template,
    )

    gm_img = load_mni152_gm_template(resolution=1)
    gm = np.asarray(gm_img.dataobj, dtype=np.float32)
    wm = np.asarray(load_mni152_wm_template(resolution=1).dataobj, dtype=np.float32)
    mask = np.asarray(load_mni152_brain_mask(resolution=1).dataobj) > 0
    return np.asarray(gm_img.affine, dtype=float), gm, wm, mask


def _build() -> dict[str, NDArray[np.generic]]:
    from scipy import ndimage as ndi

    affine, gm, wm, mask = _load_templates()
    pad = ((0, 0), (0, 0), (PAD_BELOW, 0))
    gm, wm = np.pad(gm, pad), np.pad(wm, pad)
    mask = np.pad(mask, pad)
    affine = affine.copy()
    affine[:3, 3] -= affine[:3, 2] * PAD_BELOW
    total = gm + wm
    scale = np.where(total > 1.0, 1.0 / np.maximum(total, 1e-6), 1.0)
    gm, wm = gm * scale, wm * scale
    # The envelope is the brain with its sulci closed: smooth the mask and threshold low, so
    # the skull follows the head's outline rather than each gyrus.
    smooth = ndi.gaussian_filter(mask.astype(np.float32), sigma=3.0)
    icv = ndi.binary_fill_holes((smooth > 0.15) | mask)
    d_out = ndi.distance_transform_edt(~icv).astype(np.float32)
    d_in = ndi.distance_transform_edt(icv).astype(np.float32)
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * icv
    # Ventricles: CSF deep inside the brain, largest connected components only.
    deep = (csf > 0.5) & (d_in > 12.0) & mask
    lab, n = ndi.label(deep)
    if n:
        sizes = ndi.sum(deep, lab, index=np.arange(1, n + 1))
        keep = np.flatnonzero(sizes >= 0.05 * sizes.max()) + 1
        deep = np.isin(lab, keep)
    return {
        "affine": affine,
        "gm": (gm * 255).round().astype(np.uint8),
        "wm": (wm * 255).round().astype(np.uint8),
        "brain": mask,
        "icv": icv,
        "d_out": np.clip(d_out * 4, 0, 255).astype(np.uint8),  # quarter-mm steps up to 63 mm
        "d_in": np.clip(d_in * 4, 0, 255).astype(np.uint8),
        "ventricles": deep,
    }


@functools.lru_cache(maxsize=1)
def base_anatomy() -> BaseAnatomy:
    """The cached base anatomy (builds and stores it on first use, ~10 s once per machine)."""
    path = cache_dir() / f"anatomy-v{CACHE_VERSION}.npz"
    arrays: dict[str, NDArray[np.generic]]
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError):
        arrays = _build()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)  # atomic, so parallel corpus workers never read half a file
    gm = arrays["gm"].astype(np.float32) / 255.0
    wm = arrays["wm"].astype(np.float32) / 255.0
    icv = arrays["icv"].astype(bool)
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * icv
    icv_idx = np.flatnonzero(icv)
    return BaseAnatomy(
        affine=arrays["affine"].astype(float),
        gm=gm,
        wm=wm,
        csf=csf.astype(np.float32),
        brain=arrays["brain"].astype(bool),
        icv=icv,
        d_out=arrays["d_out"].astype(np.float32) / 4.0,
        d_in=arrays["d_in"].astype(np.float32) / 4.0,
        ventricles=arrays["ventricles"].astype(bool),
        icv_idx=icv_idx,
        gm_i=gm.ravel()[icv_idx],
        wm_i=wm.ravel()[icv_idx],
        csf_i=csf.ravel()[icv_idx].astype(np.float32),
    )


@dataclass(frozen=True)
class HeadLayers:
    """Per-case tissue code map of the head outside the brain (codes AIR…SINUS)."""

    tissue: NDArray[np.uint8]
    skull_mm: float
    scalp_mm: float


def _interp_matrix(n_out: int, n_in: int) -> NDArray[np.float32]:
    """Linear interpolation weights mapping ``n_in`` coarse samples onto ``n_out`` points."""
    pos = np.linspace(0.0, n_in - 1.0, n_out)
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    frac = (pos - lo).astype(np.float32)
    w = np.zeros((n_out, n_in), dtype=np.float32)
    w[np.arange(n_out), lo] = 1.0 - frac
    w[np.arange(n_out), lo + 1] = frac
    return w


def upsample(coarse: NDArray[np.float32], shape: tuple[int, ...]) -> NDArray[np.float32]:
    """Trilinear upsampling as three small matrix products (much faster than ndimage.zoom)."""
    out = coarse.astype(np.float32, copy=False)
    last = len(shape) - 1
    for axis, n in enumerate(shape[:last]):
        w = _interp_matrix(n, out.shape[axis])
        out = np.ascontiguousarray(np.moveaxis(np.tensordot(w, out, axes=([1], [axis])), 0, axis))
    # the big final product along the last axis is a plain matmul with a contiguous result
    return np.matmul(out, _interp_matrix(shape[last], out.shape[last]).T)


def smooth_noise(
    shape: tuple[int, ...], rng: np.random.Generator, step: int = 8
) -> NDArray[np.float32]:
    """Zero-mean, unit-ish smooth random field: coarse white noise upsampled (cheap texture)."""
    coarse_shape = tuple(max(2, s // step + 2) for s in shape)
    return upsample(rng.standard_normal(coarse_shape).astype(np.float32), shape)


def head_layers(base: BaseAnatomy, rng: np.random.Generator) -> HeadLayers:
    """Shells outside the intracranial envelope with per-case skull and scalp thickness.

    Thickness varies smoothly over the head (a coarse noise field), as a real skull does:
    thicker over the occiput and vertex, thin over the temporal squama.
    """
    skull = float(rng.uniform(5.0, 8.0))
    scalp = float(rng.uniform(4.0, 7.0))
    from scipy import ndimage as ndi

    tissue = np.full(base.shape, AIR, dtype=np.uint8)
    tissue.ravel()[base.icv_idx] = BRAIN
    # only the shell around the envelope can be skull or scalp: work on its voxels alone
    shell = np.flatnonzero((base.d_out > 0) & (base.d_out < 1.0 + 1.5 * (skull + scalp)))
    d = base.d_out.ravel()[shell]
    step = 24
    coarse = rng.standard_normal(tuple(s // step + 2 for s in base.shape)).astype(np.float32)
    ijk = np.array(np.unravel_index(shell, base.shape), dtype=np.float32) / step
    vary = ndi.map_coordinates(coarse, ijk, order=1, mode="nearest")
    dura = 1.0
    skull_outer = dura + skull * (1.0 + 0.25 * vary)
    scalp_outer = skull_outer + scalp * (1.0 + 0.2 * vary)
    code = np.full(shell.shape, AIR, dtype=np.uint8)
    code[d <= dura] = DURA
    in_skull = (d > dura) & (d <= skull_outer)
    code[in_skull] = BONE
    # diploë: the middle of the skull's thickness
    mid = (d > dura + 0.3 * (skull_outer - dura)) & (d < dura + 0.7 * (skull_outer - dura))
    code[in_skull & mid] = DIPLOE
    in_scalp = (d > skull_outer) & (d <= scalp_outer)
    code[in_scalp] = SCALP
    code[in_scalp & (d > skull_outer + 0.35 * (scalp_outer - skull_outer))] = FAT
    code[(d > scalp_outer - 0.7) & (d <= scalp_outer)] = SCALP  # skin
    tissue.ravel()[shell] = code
    outside = ~base.icv
    d = base.d_out
    # Superior sagittal sinus: midline, in the dura over the convexity (enhances, bright on CT).
    xs = base.affine[0, 3] + np.arange(base.shape[0]) * base.affine[0, 0]
    zs = base.affine[2, 3] + np.arange(base.shape[2]) * base.affine[2, 2]
    midline = (np.abs(xs) < 4.0)[:, None, None] & (zs > -10.0)[None, None, :]
    tissue[midline & (d > 0) & (d <= dura + 2.5) & outside] = SINUS
    return HeadLayers(tissue=tissue, skull_mm=skull, scalp_mm=scalp)
