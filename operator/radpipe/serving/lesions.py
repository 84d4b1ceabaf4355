"""Lesion list from a lesion probability map: connected components above a threshold."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi


def lesion_table(
    probability: np.ndarray, threshold: float, min_voxels: int, affine: np.ndarray
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Label components (26-connected) of ``probability >= threshold``, largest first.

    Returns the instance map (uint16, lesion i has value i) and one entry per lesion: centre
    (voxel and world mm), volume (mm³, from the affine's voxel size), equivalent-sphere
    diameter (mm), peak and mean probability. Components under ``min_voxels`` are dropped.
    """
    labels, count = ndi.label(probability >= threshold, structure=np.ones((3, 3, 3)))
    voxel_mm3 = float(abs(np.linalg.det(affine[:3, :3])))
    found: list[dict[str, Any]] = []
    if count:
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        index = np.arange(1, count + 1)
        peaks = ndi.maximum(probability, labels, index)
        means = ndi.mean(probability, labels, index)
        centres = ndi.center_of_mass(np.ones_like(probability), labels, index)
        for i in index:
            if sizes[i] < min_voxels:
                continue
            volume = float(sizes[i]) * voxel_mm3
            centre = np.asarray(centres[i - 1], dtype=float)
            world = affine[:3, :3] @ centre + affine[:3, 3]
            found.append(
                {
                    "component": int(i),
                    "voxels": int(sizes[i]),
                    "volumeMm3": round(volume, 1),
                    "diameterMm": round(float((6.0 * volume / np.pi) ** (1.0 / 3.0)), 2),
                    "centreVoxel": [round(float(v), 1) for v in centre],
                    "centreMm": [round(float(v), 1) for v in world],
                    "peakProbability": round(float(peaks[i - 1]), 4),
                    "meanProbability": round(float(means[i - 1]), 4),
                }
            )
    found.sort(key=lambda lesion: -lesion["voxels"])
    instances = np.zeros(probability.shape, dtype=np.uint16)
    lut = np.zeros(count + 1, dtype=np.uint16)
    for number, lesion in enumerate(found, start=1):
        lut[int(lesion.pop("component"))] = number
        lesion["index"] = number
    if count:
        instances = lut[labels]
    return instances, found
