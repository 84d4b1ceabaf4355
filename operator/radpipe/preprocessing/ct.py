"""The CT head workflow: DICOM → HU volume → three windows → per-slice model inputs.

The hemorrhage model is a 2D CNN that sees each acquired axial slice as a 3-channel image
(brain, subdural and wide windows), so the slices are used as acquired: no reformatting,
which keeps gantry-tilted and unevenly spaced series exact slice by slice. Geometry only
matters for ``hu.nii.gz`` (figures, postprocessing): a tilted stack is written with its
true sheared affine; an unevenly spaced one is interpolated onto even spacing there and
flagged; a stack with missing slices is refused (a per-slice model would silently miss
whatever lay in the gap).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from radpipe.preprocessing.dicom_io import StackGeometry, UnusableSeries, read_pixels
from radpipe.preprocessing.qc import QCReport

#: Height and width of each slice fed to the hemorrhage model (the infer stage imports it).
CT_INPUT_SIZE = 256
#: (name, centre HU, width HU) of the three input channels, in channel order.
CT_WINDOWS: tuple[tuple[str, float, float], ...] = (
    ("brain", 40.0, 80.0),
    ("subdural", 80.0, 200.0),
    ("wide", 40.0, 380.0),
)
#: HU range kept (air to dense bone); scanner padding values (-2000, -3024) become air.
HU_RANGE = (-1024.0, 3071.0)
#: A gap between slices larger than this multiple of the usual spacing is a missing slice.
MAX_GAP_FACTOR = 2.5
RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class CTResult:
    """Everything the CT workflow produced."""

    inputs: NDArray[np.float32]  # (N, 3, H, W), windows scaled to 0…1
    hu: NDArray[np.float32]  # (N', rows, columns) HU volume as written to hu.nii.gz
    hu_affine_ras: NDArray[np.float64]  # voxel (column, row, slice) → RAS mm
    slices: list[dict[str, Any]]
    qc: QCReport
    parameters: dict[str, Any]
    node_seconds: dict[str, float] = field(default_factory=dict)


def window(hu: NDArray[np.float32], centre: float, width: float) -> NDArray[np.float32]:
    """HU → 0…1 through one display window (clipped outside it)."""
    lo = centre - width / 2.0
    return np.clip((hu - np.float32(lo)) / np.float32(width), 0.0, 1.0).astype(np.float32)


def _check_axial(geometry: StackGeometry) -> None:
    normal = geometry.normal
    if abs(float(normal[2])) < 0.7:  # more than ~45° from axial
        raise UnusableSeries(
            "the CT series chosen is not axial (slice normal "
            f"{np.round(normal, 2).tolist()}); the hemorrhage model reads axial slices",
            "pick the axial head CT series (not a sagittal/coronal reformat)",
        )


def inferior_to_superior(geometry: StackGeometry) -> StackGeometry:
    """The same stack ordered from the feet up (its slice normal may point either way)."""
    if geometry.normal[2] >= 0:
        return geometry
    slices = [replace(s, z=-s.z) for s in reversed(geometry.slices)]
    sx, sy, sz = geometry.slice_step
    step = (-sx, -sy, -sz)
    return replace(geometry, slices=slices, slice_step=step)


def canonical_slices(hu: NDArray[np.float32], geometry: StackGeometry) -> NDArray[np.float32]:
    """Flip slices in-plane so columns run to the patient's left and rows to posterior.

    That is the radiological display every training set uses; scanners that store rows
    or columns the other way round would otherwise show the model mirrored heads.
    """
    out = hu
    if geometry.row_dir[int(np.argmax(np.abs(geometry.row_dir[:2])))] < 0:
        out = out[:, :, ::-1]
    if geometry.col_dir[int(np.argmax(np.abs(geometry.col_dir[:2])))] < 0:
        out = out[:, ::-1, :]
    return np.ascontiguousarray(out)


def to_model_size(hu: NDArray[np.float32], size: int = CT_INPUT_SIZE) -> NDArray[np.float32]:
    """Pad each slice to a square with air, then resize to ``size`` × ``size`` (HU kept)."""
    n, rows, cols = hu.shape
    side = max(rows, cols)
    if rows != cols:
        padded = np.full((n, side, side), HU_RANGE[0], dtype=np.float32)
        r0, c0 = (side - rows) // 2, (side - cols) // 2
        padded[:, r0 : r0 + rows, c0 : c0 + cols] = hu
        hu = padded
    factor = size / side
    if factor < 1.0:  # anti-alias before shrinking
        hu = ndi.gaussian_filter(hu, sigma=(0.0, 0.5 / factor, 0.5 / factor))
    if factor != 1.0:
        hu = ndi.zoom(hu, (1.0, factor, factor), order=1, grid_mode=True, mode="nearest")
    return hu.astype(np.float32)


def even_volume(
    hu: NDArray[np.float32], geometry: StackGeometry
) -> tuple[NDArray[np.float32], NDArray[np.float64], bool]:
    """The HU stack on even slice spacing, its voxel→RAS affine, and whether it was resampled.

    The affine's third column is the mean slice step, so a gantry tilt (positions that
    drift in-plane from slice to slice) appears as the shear it is.
    """
    z = np.array([s.z for s in geometry.slices])
    affine = np.eye(4)
    affine[:3, 0] = np.asarray(geometry.row_dir) * geometry.pixel_spacing[1]
    affine[:3, 1] = np.asarray(geometry.col_dir) * geometry.pixel_spacing[0]
    affine[:3, 2] = geometry.slice_step
    affine[:3, 3] = geometry.slices[0].position
    if not geometry.uneven:
        return hu, RAS_FROM_LPS @ affine, False
    # Interpolate slices at even positions along the stack (linear between neighbours).
    n = max(2, round((z[-1] - z[0]) / geometry.spacing) + 1)
    targets = np.linspace(z[0], z[-1], n)
    upper = np.clip(np.searchsorted(z, targets, side="right"), 1, len(z) - 1)
    lower = upper - 1
    w = ((targets - z[lower]) / (z[upper] - z[lower]))[:, None, None].astype(np.float32)
    even = (1.0 - w) * hu[lower] + w * hu[upper]
    affine[:3, 2] = np.asarray(geometry.slice_step) * (z[-1] - z[0]) / (n - 1) / geometry.spacing
    return even.astype(np.float32), RAS_FROM_LPS @ affine, True


def run_ct_workflow(geometry: StackGeometry, size: int = CT_INPUT_SIZE) -> CTResult:
    """HU volume, per-slice windowed inputs, slice table and QC for one axial CT stack."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    _check_axial(geometry)
    geometry = inferior_to_superior(geometry)
    z = np.array([s.z for s in geometry.slices])
    gaps = np.diff(z)
    if gaps.max() > MAX_GAP_FACTOR * np.median(gaps):
        where = int(np.argmax(gaps))
        raise UnusableSeries(
            f"the CT series has a gap of {gaps.max():.1f} mm between slices {where} and "
            f"{where + 1} (usual spacing {np.median(gaps):.1f} mm): slices are missing",
            "re-send the complete series from the PACS, or pick another reconstruction",
        )
    hu = read_pixels(geometry, rescale=True)
    np.clip(hu, *HU_RANGE, out=hu)
    timings["read_hu"] = time.perf_counter() - clock

    clock = time.perf_counter()
    volume, affine, resampled = even_volume(hu, geometry)
    timings["hu_volume"] = time.perf_counter() - clock

    clock = time.perf_counter()
    small = to_model_size(canonical_slices(hu, geometry), size)
    inputs = np.stack([window(small, c, w) for _, c, w in CT_WINDOWS], axis=1)
    timings["windows"] = time.perf_counter() - clock

    report = QCReport()
    brain = (hu > 0) & (hu < 80)
    head_fraction = float(np.mean(brain.reshape(len(hu), -1).mean(axis=1) > 0.01))
    report.metrics = {
        "slices": len(geometry.slices),
        "spacingMm": round(geometry.spacing, 3),
        "unevenSpacing": geometry.uneven,
        "volumeResampledToEvenSpacing": resampled,
        "gantryTiltDeg": round(geometry.tilt_deg, 2),
        "huMin": float(hu.min()),
        "huMax": float(hu.max()),
        "slicesWithBrainTissue": round(head_fraction, 3),
    }
    if geometry.uneven:
        report.flag("review", "slice spacing is uneven; hu.nii.gz was resampled to even spacing")
    if hu.min() > -900 or hu.max() < 300:
        report.flag(
            "review",
            f"HU range {hu.min():.0f}…{hu.max():.0f} lacks air or bone: rescale slope/intercept "
            "may be wrong, or this is not a head CT",
        )
    if head_fraction < 0.3:
        raise UnusableSeries(
            f"only {head_fraction:.0%} of the slices contain brain-density tissue: "
            "not a head CT, or the field of view misses the brain",
            "pick the non-contrast head CT series",
        )
    slices = [
        {
            "index": k,
            "SOPInstanceUID": s.sop_instance_uid,
            "InstanceNumber": s.instance_number,
            "zAlongStack": round(s.z, 4),
            "z": round(s.position[2], 4),
            "ImagePositionPatient": list(s.position),
        }
        for k, s in enumerate(geometry.slices)
    ]
    parameters = {
        "inputSize": size,
        "windows": [{"name": n, "centre": c, "width": w} for n, c, w in CT_WINDOWS],
        "huRange": list(HU_RANGE),
        "maxGapFactor": MAX_GAP_FACTOR,
        "sliceOrder": "ascending position along the slice normal (inferior → superior)",
        "inPlane": "columns toward patient left, rows toward posterior (radiological view)",
    }
    return CTResult(
        inputs=inputs,
        hu=volume,
        hu_affine_ras=affine,
        slices=slices,
        qc=report,
        parameters=parameters,
        node_seconds={k: round(v, 3) for k, v in timings.items()},
    )


def save_hu_nifti(result: CTResult, path: Path) -> None:
    """Write ``hu.nii.gz``: int16 HU in native geometry (the sform/qform carry any shear)."""
    import nibabel as nib

    data = np.ascontiguousarray(np.round(result.hu).astype(np.int16).transpose(2, 1, 0))
    img = nib.Nifti1Image(data, result.hu_affine_ras)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))
