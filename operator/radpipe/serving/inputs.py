"""Model-input conventions shared by training and the infer stage."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def mask_outside(volume: NDArray[np.floating], mask: NDArray[np.bool_]) -> NDArray[np.float32]:
    """Zero a channels-first volume outside the brain mask.

    The MR models never see skull, scalp, dura or venous sinuses (which enhance on T1c and
    would invite false positives); training data are masked the same way.
    """
    out = np.asarray(volume, dtype=np.float32).copy()
    out[:, ~mask] = 0.0
    return out


def bounding_box(mask: NDArray[np.bool_], margin: int = 4) -> tuple[slice, ...]:
    """The mask's bounding box, grown by ``margin`` voxels and clipped to the array."""
    idx = np.argwhere(mask)
    if idx.size == 0:
        return tuple(slice(0, s) for s in mask.shape)
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + margin + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
