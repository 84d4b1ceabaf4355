"""The model grid: the one voxel grid every MR brain model sees.

A BraTS-sized grid (240 × 240 × 155 voxels of 1 mm) placed in MNI152 space (RAS world
coordinates, as nilearn's templates use), so the whole MNI brain fits. Preprocessing
resamples into it, the models are trained on it, postprocessing maps out of it.

Arrays on this grid are in nibabel index order (i, j, k) = (x, y, z); multi-channel
model inputs are channels-first: (C, 240, 240, 155), channels in ``MR_CHANNELS`` order.
"""

from __future__ import annotations

import numpy as np

#: Voxels along x (left→right), y (posterior→anterior), z (inferior→superior).
SHAPE: tuple[int, int, int] = (240, 240, 155)
#: Voxel size in mm.
SPACING: tuple[float, float, float] = (1.0, 1.0, 1.0)
#: RAS world position (mm, MNI152) of voxel (0, 0, 0).
ORIGIN_RAS: tuple[float, float, float] = (-120.0, -138.0, -72.0)
#: Channel order of the 4-channel MR model input.
MR_CHANNELS: tuple[str, ...] = ("t1", "t1c", "t2", "flair")


def affine_ras() -> np.ndarray:
    """The 4×4 voxel-index → RAS-mm affine of the grid (for nibabel images)."""
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = ORIGIN_RAS
    return affine
