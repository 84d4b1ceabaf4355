"""Brain mask and intensity normalisation on the model grid.

The mask starts from the MNI152 brain mask, which is already on the grid (the grid lives
in MNI space), so "carrying the template mask back" costs nothing; it is then refined
with the registered anchor image: voxels of the template's rim that hold non-brain
intensities (scalp fat, marrow, air) are dropped, holes are filled, and voxels outside
the anchor's field of view are removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi


@dataclass(frozen=True)
class MaskParams:
    """Mask refinement: a core that is always brain, a rim decided by intensity."""

    core_erosion_mm: int = 3
    rim_dilation_mm: int = 2
    low_percentile: float = 2.0  # anchor intensities below this (inside the core) are not brain
    high_factor: float = 1.25  # nor above this multiple of the core's 99.5th percentile


@dataclass(frozen=True)
class NormaliseParams:
    """Per-channel z-score inside the brain after clipping outliers."""

    clip_percentiles: tuple[float, float] = (0.5, 99.5)


def _ball(radius: int) -> NDArray[np.bool_]:
    r = np.arange(-radius, radius + 1)
    x, y, z = np.meshgrid(r, r, r, indexing="ij")
    return (x * x + y * y + z * z) <= radius * radius


def refine_mask(
    template_mask: NDArray[np.integer],
    anchor: NDArray[np.floating],
    in_fov: NDArray[np.bool_],
    params: MaskParams = MaskParams(),
) -> NDArray[np.uint8]:
    """Brain mask on the grid (uint8 0/1) from the template mask and the registered anchor."""
    # Work inside the template's bounding box (plus margin): a third of the grid's voxels.
    box = _bounding_box(template_mask > 0, margin=params.rim_dilation_mm + 2)
    out = np.zeros(template_mask.shape, dtype=np.uint8)
    out[box] = _refine(template_mask[box] > 0, anchor[box], in_fov[box], params)
    return out


def _bounding_box(mask: NDArray[np.bool_], margin: int) -> tuple[slice, ...]:
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        lo = max(0, int(idx[0]) - margin) if idx.size else 0
        hi = min(mask.shape[axis], int(idx[-1]) + margin + 1) if idx.size else 0
        box.append(slice(lo, hi))
    return tuple(box)


def _refine(
    tmask: NDArray[np.bool_],
    anchor: NDArray[np.floating],
    in_fov: NDArray[np.bool_],
    params: MaskParams,
) -> NDArray[np.uint8]:
    core = ndi.binary_erosion(tmask, _ball(params.core_erosion_mm))
    rim = ndi.binary_dilation(tmask, _ball(params.rim_dilation_mm)) & ~core
    values = anchor[core & in_fov]
    if values.size == 0:
        return np.zeros(tmask.shape, dtype=np.uint8)
    lo, hi = np.percentile(values, [params.low_percentile, 99.5])
    brain_like = (anchor >= lo) & (anchor <= hi * params.high_factor)
    mask = core | (rim & brain_like)
    mask = ndi.binary_opening(mask, _ball(1))
    mask = ndi.binary_fill_holes(mask)
    labels, n = ndi.label(mask)
    if n > 1:  # keep the brain, drop specks the rim test let through
        sizes = np.bincount(labels.ravel())[1:]
        mask = labels == (int(np.argmax(sizes)) + 1)
    return (mask & in_fov).astype(np.uint8)


def zscore(
    image: NDArray[np.floating],
    mask: NDArray[np.integer],
    params: NormaliseParams = NormaliseParams(),
) -> tuple[NDArray[np.float32], dict[str, Any]]:
    """Clip to robust percentiles inside the mask, then z-score there; zero outside."""
    inside = mask > 0
    values = image[inside].astype(np.float64)
    out = np.zeros(image.shape, dtype=np.float32)
    if values.size == 0:
        return out, {"mean": 0.0, "std": 0.0, "clipLow": 0.0, "clipHigh": 0.0}
    lo, hi = np.percentile(values, params.clip_percentiles)
    clipped = np.clip(values, lo, hi)
    mean = float(clipped.mean())
    std = float(clipped.std()) or 1.0
    out[inside] = ((clipped - mean) / std).astype(np.float32)
    return out, {"mean": mean, "std": std, "clipLow": float(lo), "clipHigh": float(hi)}
