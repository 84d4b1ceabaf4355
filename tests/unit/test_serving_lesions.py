"""Lesion list by connected components of the lesion probability map."""

from __future__ import annotations

import numpy as np

from radpipe.preprocessing.grid import affine_ras
from radpipe.serving.lesions import lesion_table


def test_components_become_lesions_largest_first_specks_dropped() -> None:
    prob = np.zeros((40, 40, 40), np.float32)
    prob[5:9, 5:9, 5:9] = 0.9  # 64 voxels
    prob[20:30, 20:30, 20:30] = 0.7  # 1000 voxels
    prob[35, 35, 35] = 0.95  # a speck
    prob[10, 30, 10] = 0.3  # below threshold
    instances, lesions = lesion_table(prob, 0.5, 4, affine_ras())
    assert [lesion["voxels"] for lesion in lesions] == [1000, 64]
    assert [lesion["index"] for lesion in lesions] == [1, 2]
    assert lesions[0]["volumeMm3"] == 1000.0
    assert abs(lesions[0]["diameterMm"] - 12.41) < 0.01
    assert lesions[1]["centreVoxel"] == [6.5, 6.5, 6.5]
    assert lesions[1]["peakProbability"] == 0.9
    assert set(np.unique(instances)) == {0, 1, 2}
    assert instances[35, 35, 35] == 0
    assert (instances == 1).sum() == 1000


def test_no_lesion_gives_an_empty_table() -> None:
    instances, lesions = lesion_table(np.zeros((8, 8, 8), np.float32), 0.5, 1, affine_ras())
    assert lesions == [] and not instances.any()
