"""Sliding-window inference over a volume with overlapping patches and Gaussian weighting.

Patch predictions are least reliable at their borders (less context), so each patch's output
is weighted by a Gaussian centred on the patch before the overlapping outputs are averaged.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator

import numpy as np

PatchFn = Callable[[np.ndarray], np.ndarray]


def window_starts(length: int, patch: int, overlap: float) -> list[int]:
    """Start offsets along one axis: evenly spread, first at 0, last flush with the end."""
    if length <= patch:
        return [0]
    step = max(1, int(patch * (1.0 - overlap)))
    count = math.ceil((length - patch) / step) + 1
    return [round(i * (length - patch) / (count - 1)) for i in range(count)]


@functools.lru_cache(maxsize=8)
def gaussian_weights(patch: tuple[int, ...], sigma_scale: float = 0.125) -> np.ndarray:
    """Importance map: a Gaussian with sigma = ``sigma_scale`` × patch side, max 1, never 0."""
    axes = [np.exp(-0.5 * ((np.arange(p) - (p - 1) / 2.0) / (p * sigma_scale)) ** 2) for p in patch]
    weights = functools.reduce(np.multiply.outer, axes).astype(np.float32)
    weights /= weights.max()
    # Keep the patch corners contributing, so no voxel ends with a zero total weight.
    return np.maximum(weights, 1e-3).astype(np.float32)


def _windows(shape: tuple[int, ...], patch: tuple[int, ...], overlap: float) -> Iterator:
    starts = [window_starts(s, p, overlap) for s, p in zip(shape, patch, strict=True)]
    for x in starts[0]:
        for y in starts[1]:
            for z in starts[2]:
                yield (x, y, z)


def count_windows(shape: tuple[int, ...], patch: tuple[int, ...], overlap: float) -> int:
    """How many patches cover ``shape`` (for progress and cost estimates)."""
    padded = tuple(max(s, p) for s, p in zip(shape, patch, strict=True))
    return sum(1 for _ in _windows(padded, patch, overlap))


def sliding_window(
    volume: np.ndarray,
    patch: tuple[int, int, int],
    run: PatchFn,
    *,
    overlap: float = 0.5,
    sigma_scale: float = 0.125,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Predict a channels-first volume (C, X, Y, Z) patch by patch; returns (K, X, Y, Z).

    ``run`` maps a (1, C, *patch) float32 batch to (1, K, *patch) scores. Volumes smaller
    than the patch are zero-padded and cropped back.
    """
    if volume.ndim != 4:
        raise ValueError(f"volume must be (C, X, Y, Z), got shape {volume.shape}")
    shape = volume.shape[1:]
    padded_shape = tuple(max(s, p) for s, p in zip(shape, patch, strict=True))
    if padded_shape != shape:
        pad = [(0, 0)] + [(0, p - s) for s, p in zip(shape, padded_shape, strict=True)]
        volume = np.pad(volume, pad)
    weights = gaussian_weights(tuple(patch), sigma_scale)
    windows = list(_windows(padded_shape, patch, overlap))
    acc: np.ndarray | None = None
    norm = np.zeros(padded_shape, dtype=np.float32)
    for done, (x, y, z) in enumerate(windows, start=1):
        box = (slice(x, x + patch[0]), slice(y, y + patch[1]), slice(z, z + patch[2]))
        batch = np.ascontiguousarray(volume[(slice(None), *box)][None], dtype=np.float32)
        scores = run(batch)[0]
        if acc is None:
            acc = np.zeros((scores.shape[0], *padded_shape), dtype=np.float32)
        acc[(slice(None), *box)] += scores * weights
        norm[box] += weights
        if progress is not None:
            progress(done, len(windows))
    assert acc is not None
    acc /= norm
    return acc[(slice(None), *(slice(0, s) for s in shape))]
