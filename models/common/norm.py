"""The MR intensity normalisation training data go through: the preprocessing stage's own.

Inference sees ``input.npy`` as the preprocess stage wrote it (each channel clipped to robust
percentiles and z-scored inside the brain mask, zero outside), so training data are
normalised by the very same function.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from radpipe.preprocessing.normalise import zscore


def normalise_mr(raw: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.float32]:
    """Normalise a (C, X, Y, Z) MR volume channel by channel inside ``mask``."""
    return np.stack([zscore(raw[c], mask.astype(np.uint8))[0] for c in range(raw.shape[0])])
