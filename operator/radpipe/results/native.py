"""Mapping between the model grid (MNI152, 1 mm) and a patient's native series.

The models see the model grid (:mod:`radpipe.preprocessing.grid`); people, SEG objects and
viewers see the patient's own series. A label map goes back to the native series by nearest
neighbour resampling through the preprocessing transform. Volumes are computed on the grid
and scaled by the transform's Jacobian (exact for the affine transforms preprocessing uses),
because nearest-neighbour counts on a coarse native grid (e.g. 2 × 2 × 3 mm) are off by
several percent for small compartments.

Conventions: SimpleITK physical points are DICOM patient coordinates (LPS, mm); the grid's
own arrays are nibabel-ordered (x, y, z) in RAS; native arrays are (slice, row, column),
the order DICOM frames and SEG pixel arrays use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from radpipe.preprocessing import grid

#: RAS <-> LPS: flip x and y.
_FLIP = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class NativeGeometry:
    """The voxel grid of one native series: what SimpleITK calls an image's geometry.

    ``size`` is (columns, rows, slices); ``direction`` is row-major 3 × 3 whose columns are
    the row, column and slice axes in LPS. ``sop_instance_uids`` lists the instances in
    slice order (empty when the series is not known instance by instance).
    """

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    series_instance_uid: str = ""
    sop_instance_uids: tuple[str, ...] = field(default=())

    @classmethod
    def from_datasets(cls, datasets: Sequence[Dataset]) -> tuple[NativeGeometry, list[Dataset]]:
        """Geometry of a single-frame series and its instances sorted along the slice axis."""
        if not datasets:
            raise ValueError("no instances to build a geometry from")
        first = datasets[0]
        iop = np.asarray(first.ImageOrientationPatient, dtype=float)
        row_dir, col_dir = iop[:3], iop[3:]
        normal = np.cross(row_dir, col_dir)
        ordered = sorted(
            datasets, key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient), normal))
        )
        positions = np.array([ds.ImagePositionPatient for ds in ordered], dtype=float)
        offsets = positions @ normal
        if len(ordered) > 1:
            step = float(np.median(np.diff(offsets)))
        else:
            step = float(getattr(first, "SliceThickness", 1.0) or 1.0)
        row_spacing, col_spacing = (float(v) for v in first.PixelSpacing)
        direction = np.column_stack([row_dir, col_dir, normal])
        return (
            cls(
                size=(int(first.Columns), int(first.Rows), len(ordered)),
                spacing=(col_spacing, row_spacing, max(step, 1e-3)),
                origin=tuple(float(v) for v in positions[0]),  # type: ignore[arg-type]
                direction=tuple(float(v) for v in direction.ravel()),
                series_instance_uid=str(first.get("SeriesInstanceUID", "")),
                sop_instance_uids=tuple(str(ds.SOPInstanceUID) for ds in ordered),
            ),
            list(ordered),
        )

    @classmethod
    def from_image(cls, image: sitk.Image, series_instance_uid: str = "") -> NativeGeometry:
        """Geometry of a SimpleITK image."""
        return cls(
            size=tuple(int(v) for v in image.GetSize()),  # type: ignore[arg-type]
            spacing=tuple(float(v) for v in image.GetSpacing()),  # type: ignore[arg-type]
            origin=tuple(float(v) for v in image.GetOrigin()),  # type: ignore[arg-type]
            direction=tuple(float(v) for v in image.GetDirection()),
            series_instance_uid=series_instance_uid,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NativeGeometry:
        """Read the form written by :meth:`as_json` (and preprocess's ``reference/*.json``)."""
        return cls(
            size=tuple(int(v) for v in data["size"]),  # type: ignore[arg-type]
            spacing=tuple(float(v) for v in data["spacing"]),  # type: ignore[arg-type]
            origin=tuple(float(v) for v in data["origin"]),  # type: ignore[arg-type]
            direction=tuple(float(v) for v in data["direction"]),
            series_instance_uid=str(data.get("seriesInstanceUID", "")),
            sop_instance_uids=tuple(data.get("sopInstanceUIDs", ())),
        )

    def as_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "size": list(self.size),
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": list(self.direction),
            "seriesInstanceUID": self.series_instance_uid,
            "sopInstanceUIDs": list(self.sop_instance_uids),
        }

    def reference(self) -> sitk.Image:
        """An empty image with this geometry (the resampling target)."""
        image = sitk.Image(list(self.size), sitk.sitkUInt8)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def index_to_lps(self) -> NDArray[np.float64]:
        """4 × 4 matrix: (column, row, slice, 1) → LPS mm."""
        matrix = np.eye(4)
        matrix[:3, :3] = np.asarray(self.direction).reshape(3, 3) @ np.diag(self.spacing)
        matrix[:3, 3] = self.origin
        return matrix

    @property
    def voxel_cm3(self) -> float:
        """Volume of one native voxel."""
        return float(np.prod(self.spacing)) / 1000.0


def grid_to_lps() -> NDArray[np.float64]:
    """4 × 4 matrix: model-grid index (x, y, z) → LPS mm."""
    matrix = np.eye(4)
    matrix[:3, :] = _FLIP @ grid.affine_ras()[:3, :]
    return matrix


def grid_image(array: NDArray[Any]) -> sitk.Image:
    """A model-grid array (nibabel order) as a SimpleITK image in LPS."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
    affine = grid_to_lps()
    image.SetSpacing(grid.SPACING)
    image.SetOrigin(tuple(float(v) for v in affine[:3, 3]))
    image.SetDirection(tuple(float(v) for v in (_FLIP @ np.eye(3)).ravel()))
    return image


def affine_of(transform: sitk.Transform) -> NDArray[np.float64]:
    """The 4 × 4 matrix of a (composite of) linear transform(s), read off point images.

    Raises ValueError for a transform that is not affine (a displacement field): volumes
    would then need a Jacobian map, which preprocessing does not produce.
    """
    points = np.vstack([np.zeros(3), np.eye(3)])
    mapped = np.array([transform.TransformPoint(tuple(float(v) for v in p)) for p in points])
    matrix = np.eye(4)
    matrix[:3, 3] = mapped[0]
    matrix[:3, :3] = (mapped[1:] - mapped[0]).T
    probe = np.array([37.0, -23.0, 11.0])
    expected = matrix[:3, :3] @ probe + matrix[:3, 3]
    actual = np.asarray(transform.TransformPoint(tuple(float(v) for v in probe)))
    if not np.allclose(expected, actual, atol=1e-3):
        raise ValueError("the preprocessing transform is not affine")
    return matrix


@dataclass(frozen=True)
class GridMapping:
    """How model-grid voxels land in one native series.

    ``native_to_grid`` maps native LPS points to grid LPS points (the transform that
    resamples grid arrays into the native series).
    """

    geometry: NativeGeometry
    native_to_grid: NDArray[Any]

    @classmethod
    def from_transform(cls, geometry: NativeGeometry, transform: sitk.Transform) -> GridMapping:
        """From a SimpleITK transform that maps native points to grid points."""
        return cls(geometry, affine_of(transform))

    @property
    def grid_to_native(self) -> NDArray[Any]:
        """Grid LPS → native LPS."""
        return np.linalg.inv(self.native_to_grid)

    @property
    def volume_scale(self) -> float:
        """Native mm³ per grid mm³ (the Jacobian determinant of grid → native)."""
        return float(abs(np.linalg.det(self.grid_to_native[:3, :3])))

    @property
    def grid_voxel_cm3(self) -> float:
        """Native volume of one model-grid voxel."""
        return float(np.prod(grid.SPACING)) / 1000.0 * self.volume_scale

    def grid_index_to_native_lps(self, ijk: NDArray[Any]) -> NDArray[np.float64]:
        """Native LPS points (N × 3) of grid voxel indices (N × 3)."""
        matrix = self.grid_to_native @ grid_to_lps()
        return np.asarray(ijk, dtype=float) @ matrix[:3, :3].T + matrix[:3, 3]

    def native_lps_to_index(self, points: NDArray[Any]) -> NDArray[np.float64]:
        """Fractional native (column, row, slice) indices of LPS points (N × 3)."""
        inverse = np.linalg.inv(self.geometry.index_to_lps())
        return np.asarray(points, dtype=float) @ inverse[:3, :3].T + inverse[:3, 3]

    def to_native(self, labels: NDArray[Any]) -> NDArray[Any]:
        """A grid label map resampled (nearest neighbour) into the native series.

        Returns an array (slice, row, column) in the series' slice order.
        """
        transform = sitk.AffineTransform(3)
        transform.SetMatrix(tuple(float(v) for v in self.native_to_grid[:3, :3].ravel()))
        transform.SetTranslation(tuple(float(v) for v in self.native_to_grid[:3, 3]))
        source = grid_image(labels)
        resampled = sitk.Resample(
            source,
            self.geometry.reference(),
            transform,
            sitk.sitkNearestNeighbor,
            0,
            source.GetPixelID(),
        )
        return sitk.GetArrayFromImage(resampled)

    def native_image_to_grid(self, image: sitk.Image) -> NDArray[np.float32]:
        """A native image resampled (linear) onto the model grid, nibabel order."""
        transform = sitk.AffineTransform(3)
        inverse = self.grid_to_native
        transform.SetMatrix(tuple(float(v) for v in inverse[:3, :3].ravel()))
        transform.SetTranslation(tuple(float(v) for v in inverse[:3, 3]))
        reference = grid_image(np.zeros(grid.SHAPE, dtype=np.uint8))
        resampled = sitk.Resample(
            sitk.Cast(image, sitk.sitkFloat32), reference, transform, sitk.sitkLinear, 0.0
        )
        return np.transpose(sitk.GetArrayFromImage(resampled), (2, 1, 0))


def mni_of_grid_index(ijk: NDArray[Any]) -> NDArray[np.float64]:
    """MNI RAS mm of grid voxel indices (N × 3)."""
    affine = grid.affine_ras()
    return np.asarray(ijk, dtype=float) @ affine[:3, :3].T + affine[:3, 3]
