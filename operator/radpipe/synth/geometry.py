"""Geometry: where the head sits in the scanner and how each series samples it.

Coordinate frames
-----------------
* MNI: RAS millimetres of the nilearn template (the phantom grid's world frame).
* Patient: DICOM patient coordinates (LPS millimetres), what ImagePositionPatient and
  ImageOrientationPatient are expressed in.

:class:`Pose` maps MNI → patient: ``p = t + s · R · F · m`` with ``F = diag(-1, -1, 1)``
(RAS → LPS), a rotation ``R`` (head flexion/roll/yaw), an isotropic head-size scale ``s`` and a
table offset ``t``. Every series has its own :class:`SeriesGeometry` (orientation, spacing,
matrix, slice positions) and is resampled once from the phantom with SimpleITK.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
BRAIN_CENTRE_MNI = np.array([0.0, -18.0, 12.0])

CANONICAL: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    # (row direction = IOP[0:3], column direction = IOP[3:6]) in LPS
    "ax": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "sag": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
    "cor": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
}


def rotation_xyz(rx_deg: float, ry_deg: float, rz_deg: float) -> NDArray[np.float64]:
    """Rotation about x (pitch/flexion), then y (roll), then z (yaw), in degrees."""
    ax, ay, az = np.deg2rad([rx_deg, ry_deg, rz_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class Pose:
    """Rigid pose plus head-size scale: MNI (RAS mm) → patient (LPS mm)."""

    angles_deg: tuple[float, float, float]
    scale: float
    translation: tuple[float, float, float]

    @property
    def rotation(self) -> NDArray[np.float64]:
        """The 3x3 rotation R."""
        return rotation_xyz(*self.angles_deg)

    @property
    def matrix(self) -> NDArray[np.float64]:
        """4x4 homogeneous matrix MNI RAS → patient LPS."""
        m = np.eye(4)
        m[:3, :3] = self.scale * self.rotation @ RAS_TO_LPS
        m[:3, 3] = self.translation
        return m

    def to_patient(self, mni: NDArray[np.floating]) -> NDArray[np.float64]:
        """Map (N, 3) MNI points to patient coordinates."""
        m = self.matrix
        return np.asarray(mni, dtype=float) @ m[:3, :3].T + m[:3, 3]

    def sitk_inverse(self) -> sitk.AffineTransform:
        """Transform for ``sitk.Resample``: patient LPS point → phantom LPS point."""
        a = self.scale * self.rotation  # phantom LPS → patient LPS linear part
        inv = np.linalg.inv(a)
        tr = sitk.AffineTransform(3)
        tr.SetMatrix(inv.ravel().tolist())
        tr.SetTranslation((-inv @ np.asarray(self.translation)).tolist())
        return tr


def random_pose(rng: np.random.Generator) -> Pose:
    """Head pose on the table: flexion ±15°, roll ±6°, yaw ±8°, head size ±8 %, table offset."""
    angles = (
        float(rng.uniform(-15, 15)),
        float(rng.uniform(-6, 6)),
        float(rng.uniform(-8, 8)),
    )
    scale = float(rng.uniform(0.92, 1.08))
    translation = (
        float(rng.uniform(-10, 10)),
        float(rng.uniform(-25, 15)),
        float(rng.uniform(-60, 60)),
    )
    return Pose(angles, scale, translation)


@dataclass(frozen=True)
class SeriesGeometry:
    """A stack of parallel slices in patient coordinates.

    ``row_dir``/``col_dir`` are ImageOrientationPatient (direction of increasing column index,
    then of increasing row index); ``origin`` is ImagePositionPatient of slice 0; slice k is at
    ``origin + k · spacing · normal``. ``pixel_spacing`` is (between rows, between columns).
    """

    rows: int
    columns: int
    n_slices: int
    pixel_spacing: tuple[float, float]
    spacing: float
    thickness: float
    row_dir: tuple[float, float, float]
    col_dir: tuple[float, float, float]
    origin: tuple[float, float, float]

    @property
    def normal(self) -> NDArray[np.float64]:
        """Slice normal (row x column)."""
        return np.cross(self.row_dir, self.col_dir)

    def position(self, k: int) -> NDArray[np.float64]:
        """ImagePositionPatient of slice k."""
        return np.asarray(self.origin) + k * self.spacing * self.normal

    def affine_lps(self) -> NDArray[np.float64]:
        """4x4 voxel (column, row, slice) → patient LPS mm."""
        m = np.eye(4)
        m[:3, 0] = np.asarray(self.row_dir) * self.pixel_spacing[1]
        m[:3, 1] = np.asarray(self.col_dir) * self.pixel_spacing[0]
        m[:3, 2] = self.normal * self.spacing
        m[:3, 3] = self.origin
        return m

    def reference(self, offset: float = 0.0, n_slices: int | None = None) -> sitk.Image:
        """An empty SimpleITK image with this geometry, shifted ``offset`` mm along the normal."""
        img = sitk.Image(self.columns, self.rows, n_slices or self.n_slices, sitk.sitkFloat32)
        img.SetSpacing((self.pixel_spacing[1], self.pixel_spacing[0], self.spacing))
        direction = np.column_stack([self.row_dir, self.col_dir, self.normal])
        img.SetDirection(direction.ravel().tolist())
        img.SetOrigin((np.asarray(self.origin) + offset * self.normal).tolist())
        return img


def orientation(
    plane: str, align: NDArray[np.float64], tilt_deg: float = 0.0
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Row and column directions of a nominal plane after alignment and a tilt about the row."""
    r0, c0 = (np.asarray(v) for v in CANONICAL[plane])
    n0 = np.cross(r0, c0)
    a = np.deg2rad(tilt_deg)
    c1 = np.cos(a) * c0 + np.sin(a) * n0
    r = align @ r0
    c = align @ c1
    # re-orthonormalise so IOP is exact to float precision
    r = r / np.linalg.norm(r)
    c = c - r * float(r @ c)
    c = c / np.linalg.norm(c)
    return r, c


def partial_rotation(rot: NDArray[np.float64], fraction: float) -> NDArray[np.float64]:
    """Rotation by ``fraction`` of ``rot``'s angle about the same axis (technologist alignment)."""
    from scipy.spatial.transform import Rotation

    v = Rotation.from_matrix(rot).as_rotvec()
    return Rotation.from_rotvec(v * fraction).as_matrix()


def place_stack(
    centre: NDArray[np.float64],
    row_dir: NDArray[np.float64],
    col_dir: NDArray[np.float64],
    rows: int,
    columns: int,
    pixel_spacing: tuple[float, float],
    n_slices: int,
    spacing: float,
    thickness: float,
) -> SeriesGeometry:
    """A stack centred on ``centre`` (patient mm)."""
    normal = np.cross(row_dir, col_dir)
    origin = (
        centre
        - row_dir * pixel_spacing[1] * (columns - 1) / 2.0
        - col_dir * pixel_spacing[0] * (rows - 1) / 2.0
        - normal * spacing * (n_slices - 1) / 2.0
    )
    return SeriesGeometry(
        rows=rows,
        columns=columns,
        n_slices=n_slices,
        pixel_spacing=(float(pixel_spacing[0]), float(pixel_spacing[1])),
        spacing=float(spacing),
        thickness=float(thickness),
        row_dir=tuple(float(v) for v in row_dir),  # type: ignore[arg-type]
        col_dir=tuple(float(v) for v in col_dir),  # type: ignore[arg-type]
        origin=tuple(float(v) for v in origin),  # type: ignore[arg-type]
    )


def phantom_image(array: NDArray[np.generic], affine_ras: NDArray[np.float64]) -> sitk.Image:
    """Wrap an (x, y, z) MNI-grid array as a SimpleITK image in phantom LPS coordinates."""
    # No transpose: SimpleITK reads a C-ordered (x, y, z) array as (z, y, x) image axes, so the
    # direction matrix takes the permuted columns instead (saves a 40 MB copy per contrast).
    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    lin = (RAS_TO_LPS @ affine_ras[:3, :3])[:, ::-1]
    spacing = np.linalg.norm(lin, axis=0)
    img.SetSpacing(spacing.tolist())
    img.SetDirection((lin / spacing).ravel().tolist())
    img.SetOrigin((RAS_TO_LPS @ affine_ras[:3, 3]).tolist())
    return img


def _resample_raw(
    phantom: sitk.Image,
    transform: sitk.Transform,
    geom: SeriesGeometry,
    offset: float,
    interp: int,
    default: float,
) -> NDArray[np.generic]:
    f = sitk.ResampleImageFilter()
    f.SetSize((geom.columns, geom.rows, geom.n_slices))
    f.SetOutputSpacing((geom.pixel_spacing[1], geom.pixel_spacing[0], geom.spacing))
    f.SetOutputDirection(
        np.column_stack([geom.row_dir, geom.col_dir, geom.normal]).ravel().tolist()
    )
    f.SetOutputOrigin((np.asarray(geom.origin) + offset * geom.normal).tolist())
    f.SetTransform(transform)
    f.SetInterpolator(interp)
    f.SetDefaultPixelValue(default)
    f.SetOutputPixelType(phantom.GetPixelID())
    out = f.Execute(phantom)  # keep a reference: the array view below borrows its buffer
    return sitk.GetArrayViewFromImage(out).copy()


def acquisition_factor(geom: SeriesGeometry, max_detail_mm: float = 0.9) -> int:
    """How much finer than the phantom's detail a series' pixels are (1 if not finer).

    Scanners reconstruct 512 matrices from ~256 acquired lines; sampling the 1 mm phantom that
    finely adds no detail, so such series are sampled coarser and interpolated up.
    """
    return max(1, int(max_detail_mm // min(geom.pixel_spacing)))


def resample(
    phantom: sitk.Image,
    pose: Pose,
    geom: SeriesGeometry,
    *,
    labels: bool = False,
    slab: str = "mean",
    default: float = 0.0,
    sub_mm: float = 1.7,
) -> NDArray[np.float32]:
    """Resample the phantom into a series' geometry, shape (slices, rows, columns).

    Slices thicker than ``sub_mm`` average several sub-slices across their thickness, the
    way a slice profile averages tissue (``slab="max"`` makes a MIP instead). Labels use
    nearest neighbour, the central sub-slice and the full matrix.
    """
    interp = sitk.sitkNearestNeighbor if labels else sitk.sitkLinear
    transform = pose.sitk_inverse()
    factor = 1 if labels else acquisition_factor(geom)
    g = geom
    if factor > 1 and geom.rows % factor == 0 and geom.columns % factor == 0:
        rows, cols = geom.rows // factor, geom.columns // factor
        ps = (geom.pixel_spacing[0] * factor, geom.pixel_spacing[1] * factor)
        # keep the pixel areas aligned: the first coarse pixel centre sits half a pixel in
        shift = (
            np.asarray(geom.row_dir) * geom.pixel_spacing[1] * (factor - 1) / 2
            + np.asarray(geom.col_dir) * geom.pixel_spacing[0] * (factor - 1) / 2
        )
        g = replace(
            geom,
            rows=rows,
            columns=cols,
            pixel_spacing=ps,
            origin=tuple(float(v) for v in np.asarray(geom.origin) + shift),  # type: ignore[arg-type]
        )
    else:
        factor = 1
    n_sub = 1 if labels else max(1, int(np.ceil(geom.thickness / sub_mm)))
    offsets = (np.arange(n_sub) + 0.5) / n_sub * geom.thickness - geom.thickness / 2.0
    acc: NDArray[np.float32] | None = None
    for off in offsets:
        arr = _resample_raw(phantom, transform, g, float(off), interp, default)
        if acc is None:
            acc = arr if labels else arr.astype(np.float32, copy=False)  # type: ignore[assignment]
        elif slab == "max":
            np.maximum(acc, arr, out=acc)
        else:
            acc += arr  # type: ignore[arg-type]
    assert acc is not None
    if n_sub > 1 and slab != "max":
        acc /= np.float32(n_sub)
    if factor > 1:
        from scipy import ndimage as ndi

        acc = ndi.zoom(acc, (1, factor, factor), order=1, mode="nearest", grid_mode=True)
    return acc
