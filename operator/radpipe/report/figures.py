"""Report figures: 3-plane overlays of the findings on the original images.

The planes are resampled from the native series (not the model grid) onto patient-aligned
axial, coronal and sagittal planes through the centre of the largest finding, shown in
radiological convention (patient's right on the image's left). Overlays are drawn with
numpy and Pillow: a filled, semi-transparent label colour plus a solid outline.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray
from PIL import Image
from pydicom.dataset import Dataset
from scipy import ndimage as ndi

from radpipe.results.native import NativeGeometry

#: Plane → (column axis, row axis, normal) as LPS unit vectors; rows run top to bottom.
PLANES: dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]] = {
    "axial": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "coronal": ((1, 0, 0), (0, 0, -1), (0, 1, 0)),
    "sagittal": ((0, 1, 0), (0, 0, -1), (1, 0, 0)),
}
#: DICOM PatientOrientation (row direction, column direction) of each plane's image.
ORIENTATION = {"axial": ("L", "P"), "coronal": ("L", "F"), "sagittal": ("P", "F")}


@dataclass(frozen=True)
class Overlay:
    """One label value drawn in one colour."""

    value: int
    colour: tuple[int, int, int]
    name: str


@dataclass
class PlaneFigure:
    """One rendered plane: the RGB pixels and a PNG of them."""

    plane: str
    rgb: NDArray[np.uint8]

    def png(self) -> bytes:
        """PNG bytes (for the PDF)."""
        buffer = io.BytesIO()
        Image.fromarray(self.rgb).save(buffer, format="PNG", compress_level=3)
        return buffer.getvalue()

    def jpeg(self) -> bytes:
        """JPEG bytes: reportlab embeds JPEG as it is, PNG it must decode and re-encode."""
        buffer = io.BytesIO()
        Image.fromarray(self.rgb).save(buffer, format="JPEG", quality=92, subsampling=0)
        return buffer.getvalue()


def native_image(datasets: Sequence[Dataset], geometry: NativeGeometry) -> sitk.Image:
    """The source series as a float image (rescaled values) with its geometry."""
    stack = np.stack(
        [
            ds.pixel_array.astype(np.float32) * float(ds.get("RescaleSlope", 1) or 1)
            + float(ds.get("RescaleIntercept", 0) or 0)
            for ds in datasets
        ]
    )
    return _with_geometry(stack, geometry)


def _with_geometry(array: NDArray[Any], geometry: NativeGeometry) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    return image


def label_centre(labels: NDArray[Any], geometry: NativeGeometry, value: int | None) -> Any:
    """LPS centre of the largest connected region of ``labels`` (== value, or > 0)."""
    mask = labels == value if value is not None else labels > 0
    if not mask.any():
        index = (np.array(labels.shape) - 1) / 2.0
    else:
        components, _ = ndi.label(mask)
        largest = int(np.argmax(np.bincount(components.ravel())[1:])) + 1
        index = np.argwhere(components == largest).mean(axis=0)
    kji = np.array([index[2], index[1], index[0], 1.0])
    return (geometry.index_to_lps() @ kji)[:3]


def _plane(
    image: sitk.Image,
    centre: NDArray[np.float64],
    plane: str,
    *,
    field_mm: float,
    pixel_mm: float,
    interpolator: int,
    default: float,
) -> NDArray[Any]:
    cols, rows, normal = (np.asarray(v, dtype=float) for v in PLANES[plane])
    n = round(field_mm / pixel_mm)
    origin = centre - cols * (n / 2.0) * pixel_mm - rows * (n / 2.0) * pixel_mm
    reference = sitk.Image([n, n, 1], sitk.sitkUInt8)
    reference.SetSpacing((pixel_mm, pixel_mm, pixel_mm))
    reference.SetOrigin(tuple(float(v) for v in origin))
    reference.SetDirection(tuple(float(v) for v in np.column_stack([cols, rows, normal]).ravel()))
    out = sitk.Resample(
        image, reference, sitk.Transform(), interpolator, default, image.GetPixelID()
    )
    return sitk.GetArrayFromImage(out)[0]


def _window(gray: NDArray[Any], window: tuple[float, float]) -> NDArray[np.uint8]:
    centre, width = window
    low, high = centre - width / 2, centre + width / 2
    scaled = (gray.astype(np.float32) - low) / max(high - low, 1e-6)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def render_planes(
    image: sitk.Image,
    labels: NDArray[Any],
    geometry: NativeGeometry,
    overlays: Sequence[Overlay],
    *,
    centre: NDArray[np.float64] | None = None,
    window: tuple[float, float] | None = None,
    field_mm: float = 150.0,
    pixel_mm: float = 0.5,
    alpha: float = 0.4,
) -> list[PlaneFigure]:
    """Axial, coronal and sagittal overlays through ``centre`` (default: largest finding)."""
    if centre is None:
        centre = label_centre(labels, geometry, None)
    label_image = _with_geometry(labels.astype(np.uint8), geometry)
    grey_levels = window
    figures = []
    for plane in PLANES:
        gray = _plane(
            image,
            centre,
            plane,
            field_mm=field_mm,
            pixel_mm=pixel_mm,
            interpolator=sitk.sitkLinear,
            default=float(window[0] - window[1]) if window else 0.0,
        )
        lab = _plane(
            label_image,
            centre,
            plane,
            field_mm=field_mm,
            pixel_mm=pixel_mm,
            interpolator=sitk.sitkNearestNeighbor,
            default=0,
        )
        if grey_levels is None:
            # one window for all three planes, from the axial plane
            grey_levels = _percentile_window(gray)
        base = _window(gray, grey_levels)
        rgb = np.repeat(base[:, :, None], 3, axis=2).astype(np.float32)
        for overlay in overlays:
            mask = lab == overlay.value
            if not mask.any():
                continue
            colour = np.asarray(overlay.colour, dtype=np.float32)
            rgb[mask] = (1 - alpha) * rgb[mask] + alpha * colour
            edge = mask & ~ndi.binary_erosion(mask, iterations=2)
            rgb[edge] = colour
        figures.append(PlaneFigure(plane, np.clip(rgb, 0, 255).astype(np.uint8)))
    return figures


def _percentile_window(gray: NDArray[Any]) -> tuple[float, float]:
    foreground = gray[gray > np.percentile(gray, 30)]
    if foreground.size == 0:
        return float(gray.mean()), float(gray.std() * 4 + 1)
    low, high = (float(np.percentile(foreground, p)) for p in (0.5, 99.7))
    return (low + high) / 2, max(high - low, 1e-3) * 1.1
