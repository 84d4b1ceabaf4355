"""Sliding-window inference: coverage, Gaussian weighting, padding of small volumes."""

from __future__ import annotations

import numpy as np
import pytest

from radpipe.serving.sliding_window import (
    count_windows,
    gaussian_weights,
    sliding_window,
    window_starts,
)


@pytest.mark.parametrize(
    ("length", "patch", "overlap"), [(155, 128, 0.5), (240, 64, 0.25), (50, 64, 0.5)]
)
def test_windows_cover_the_axis_evenly(length: int, patch: int, overlap: float) -> None:
    starts = window_starts(length, patch, overlap)
    assert starts[0] == 0
    assert starts[-1] == max(length - patch, 0)
    steps = np.diff(starts)
    assert all(s <= patch * (1 - overlap) + 1 for s in steps)


def test_gaussian_weights_peak_in_the_centre_and_never_vanish() -> None:
    w = gaussian_weights((16, 16, 16))
    assert w.max() == pytest.approx(1.0, abs=1e-3)
    assert w[8, 8, 8] > w[0, 0, 0] > 0


def test_an_identity_network_gives_back_the_volume() -> None:
    rng = np.random.default_rng(1)
    volume = rng.standard_normal((2, 37, 45, 29)).astype(np.float32)
    calls = []

    def identity(batch: np.ndarray) -> np.ndarray:
        calls.append(batch.shape)
        return batch

    out = sliding_window(volume, (16, 16, 16), identity, overlap=0.5)
    np.testing.assert_allclose(out, volume, rtol=1e-5, atol=1e-5)
    assert len(calls) == count_windows(volume.shape[1:], (16, 16, 16), 0.5)
    assert all(shape == (1, 2, 16, 16, 16) for shape in calls)


def test_volumes_smaller_than_the_patch_are_padded_and_cropped_back() -> None:
    volume = np.ones((1, 5, 6, 7), np.float32)
    out = sliding_window(volume, (8, 8, 8), lambda b: b * 2, overlap=0.5)
    assert out.shape == (1, 5, 6, 7)
    np.testing.assert_allclose(out, 2.0)
