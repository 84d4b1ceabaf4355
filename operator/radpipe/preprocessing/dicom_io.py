"""Reading a DICOM series' geometry and pixels, and refusing series no model should see.

The header checks run before any image work, so an unusable selection (a localizer, a
handful of slices, a mixed-orientation stack) fails in milliseconds with a reason a
person can act on, not minutes later inside a registration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset

#: Fewer slices than this cannot cover a brain (a localizer, a single slab).
MIN_SLICES = 20
#: Relative tolerance on slice spacing before a stack counts as unevenly spaced.
SPACING_TOLERANCE = 0.05


class UnusableSeries(ValueError):
    """A series that preprocessing refuses; ``hint`` says what a person can do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class SliceInfo:
    """One instance of a stack, in stacking order."""

    path: Path
    sop_instance_uid: str
    instance_number: int | None
    position: tuple[float, float, float]  # ImagePositionPatient (LPS mm)
    z: float  # position along the slice normal (mm)


@dataclass(frozen=True)
class StackGeometry:
    """The geometry of a single-orientation stack of slices, sorted along its normal."""

    series_instance_uid: str
    rows: int
    columns: int
    pixel_spacing: tuple[float, float]  # (between rows, between columns)
    row_dir: tuple[float, float, float]  # IOP[0:3], direction of increasing column index
    col_dir: tuple[float, float, float]  # IOP[3:6], direction of increasing row index
    slices: list[SliceInfo]
    slice_step: tuple[float, float, float]  # mean vector from one slice origin to the next
    spacing: float  # mean distance along the normal
    uneven: bool  # spacing varies by more than SPACING_TOLERANCE
    tilt_deg: float  # angle between slice step and normal (gantry tilt shears the stack)
    thickness: float | None
    image_type: list[str] = field(default_factory=list)

    @property
    def normal(self) -> NDArray[np.float64]:
        """Unit slice normal (row × column)."""
        return np.cross(self.row_dir, self.col_dir)

    def reference(self) -> dict[str, Any]:
        """The stack as SimpleITK's ImageSeriesReader sees it: (column, row, slice) voxels."""
        normal = self.normal
        direction = np.column_stack([self.row_dir, self.col_dir, normal])
        return {
            "SeriesInstanceUID": self.series_instance_uid,
            "size": [self.columns, self.rows, len(self.slices)],
            "spacing": [self.pixel_spacing[1], self.pixel_spacing[0], self.spacing],
            "origin": list(self.slices[0].position),
            "direction": [float(v) for v in direction.ravel()],
            "sliceThickness": self.thickness,
            "unevenSpacing": self.uneven,
            "tiltDeg": round(self.tilt_deg, 3),
            "sopInstanceUIDs": [s.sop_instance_uid for s in self.slices],
            "frame": "DICOM patient LPS mm; voxel index (column, row, slice)",
        }


def read_headers(paths: Sequence[Path]) -> list[tuple[Path, Dataset]]:
    """Headers (no pixel data) of every readable DICOM file in ``paths``."""
    out: list[tuple[Path, Dataset]] = []
    for path in paths:
        try:
            out.append((path, pydicom.dcmread(path, stop_before_pixels=True)))
        except (pydicom.errors.InvalidDicomError, OSError):
            continue
    return out


def dicom_files(folder: Path) -> list[Path]:
    """Every regular file under ``folder`` (instances need not end in .dcm)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def stack_geometry(headers: Sequence[tuple[Path, Dataset]], role: str) -> StackGeometry:
    """Sort a series' instances into one stack and describe it; refuse what is not a stack."""
    if not headers:
        raise UnusableSeries(
            f"series for {role} has no readable DICOM instances",
            "check the fetch stage's output for this series",
        )
    required = (
        "ImageOrientationPatient",
        "ImagePositionPatient",
        "PixelSpacing",
        "Rows",
        "Columns",
    )
    for _, h in headers:
        missing = [name for name in required if h.get(name) in (None, "", [])]
        if missing:
            number = h.get("InstanceNumber", "?")
            raise UnusableSeries(
                f"instance {number} of the series chosen for {role} lacks {', '.join(missing)}, "
                "so the slices cannot be placed in space",
                "pick another series for this role, or ask the PACS team to check this one",
            )
    first = headers[0][1]
    uid = str(first.get("SeriesInstanceUID", ""))
    image_type = [str(v).upper() for v in (first.get("ImageType") or [])]
    if "LOCALIZER" in image_type or "SCOUT" in image_type:
        raise UnusableSeries(
            f"the series chosen for {role} is a localizer/scout (ImageType {image_type})",
            "pick a diagnostic series for this role (override the classifier's choice)",
        )
    if len(headers) < MIN_SLICES:
        raise UnusableSeries(
            f"the series chosen for {role} has {len(headers)} slices; at least {MIN_SLICES} "
            "are needed to cover the brain",
            "pick a series that covers the whole head (not a localizer or a single slab)",
        )
    iops = {tuple(round(float(v), 3) for v in h.ImageOrientationPatient) for _, h in headers}
    shapes = {(int(h.Rows), int(h.Columns)) for _, h in headers}
    if len(iops) > 1 or len(shapes) > 1:
        raise UnusableSeries(
            f"the series chosen for {role} mixes {len(iops)} orientations / {len(shapes)} "
            "matrix sizes (a multi-plane localizer or a mixed series)",
            "pick a single-orientation series for this role",
        )
    iop = [float(v) for v in first.ImageOrientationPatient]
    row_dir, col_dir = np.asarray(iop[:3]), np.asarray(iop[3:])
    normal = np.cross(row_dir, col_dir)
    slices = []
    for path, h in headers:
        pos = tuple(float(v) for v in h.ImagePositionPatient)
        number = h.get("InstanceNumber")
        slices.append(
            SliceInfo(
                path=path,
                sop_instance_uid=str(h.SOPInstanceUID),
                instance_number=int(number) if number not in (None, "") else None,
                position=pos,  # type: ignore[arg-type]
                z=float(np.dot(pos, normal)),
            )
        )
    slices.sort(key=lambda s: s.z)
    z = np.array([s.z for s in slices])
    gaps = np.diff(z)
    if np.any(gaps < 1e-3):
        raise UnusableSeries(
            f"the series chosen for {role} has several images at the same position "
            "(multiple echoes, phases or repeats in one series)",
            "pick a series with one image per slice position",
        )
    spacing = float(np.mean(gaps))
    uneven = bool(np.max(np.abs(gaps - np.median(gaps))) > SPACING_TOLERANCE * np.median(gaps))
    positions = np.array([s.position for s in slices])
    step = (positions[-1] - positions[0]) / (len(slices) - 1)
    cos_tilt = abs(float(np.dot(step, normal))) / max(float(np.linalg.norm(step)), 1e-9)
    tilt = float(np.degrees(np.arccos(np.clip(cos_tilt, -1.0, 1.0))))
    ps = [float(v) for v in first.PixelSpacing]
    thickness = first.get("SliceThickness")
    return StackGeometry(
        series_instance_uid=uid,
        rows=int(first.Rows),
        columns=int(first.Columns),
        pixel_spacing=(ps[0], ps[1]),
        row_dir=tuple(float(v) for v in row_dir),  # type: ignore[arg-type]
        col_dir=tuple(float(v) for v in col_dir),  # type: ignore[arg-type]
        slices=slices,
        slice_step=tuple(float(v) for v in step),  # type: ignore[arg-type]
        spacing=spacing,
        uneven=uneven,
        tilt_deg=tilt,
        thickness=float(thickness) if thickness not in (None, "") else None,
        image_type=image_type,
    )


def read_pixels(geometry: StackGeometry, *, rescale: bool = True) -> NDArray[np.float32]:
    """The stack's pixels as (slices, rows, columns) float32, slope/intercept applied."""
    out = np.empty((len(geometry.slices), geometry.rows, geometry.columns), dtype=np.float32)
    for k, info in enumerate(geometry.slices):
        ds = pydicom.dcmread(info.path)
        try:
            arr = ds.pixel_array.astype(np.float32)
        except Exception as err:  # no handler for the syntax, damaged or missing pixel data
            syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            name = getattr(syntax, "name", None) or str(syntax or "unknown")
            raise UnusableSeries(
                f"cannot decode the pixel data of instance {info.instance_number} of series "
                f"{geometry.series_instance_uid} (transfer syntax {name}): "
                f"{type(err).__name__}: {err}",
                "ask the PACS to send this series uncompressed or in a supported syntax "
                "(JPEG, JPEG-LS, JPEG 2000, RLE), or pick another series",
            ) from err
        if arr.shape != (geometry.rows, geometry.columns):
            raise UnusableSeries(
                f"instance {info.instance_number} of series {geometry.series_instance_uid} "
                f"decodes to {arr.shape}, not {geometry.rows}×{geometry.columns}",
                "pick another series; this one is not a single-frame stack",
            )
        if rescale:
            slope = float(ds.get("RescaleSlope", 1) or 1)
            intercept = float(ds.get("RescaleIntercept", 0) or 0)
            arr = arr * np.float32(slope) + np.float32(intercept)
        out[k] = arr
    return out
