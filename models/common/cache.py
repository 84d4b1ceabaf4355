"""Generated training cases, cached as one ``.npz`` per seed (torch-free, so data can be
built with the runtime venv while the training venv installs)."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
#: Generated training data and checkpoints: reproducible, never committed (var/ is ignored).
WORK = REPO / "var" / "train"


def cached_cases(
    name: str, make: Callable[[int], dict[str, np.ndarray]], seeds: Sequence[int], workers: int = 2
) -> list[dict[str, np.ndarray]]:
    """Build (or load) one ``.npz`` per seed under var/train/<name>/cases/."""
    folder = WORK / name / "cases"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [s for s in seeds if not (folder / f"{s}.npz").is_file()]
    if missing:
        started = time.time()
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for seed, arrays in zip(missing, pool.imap(make, missing), strict=True):
                tmp = folder / f"{seed}.tmp.npz"
                np.savez(tmp, **arrays)
                os.replace(tmp, folder / f"{seed}.npz")
                print(f"[{name}] case {seed} built ({time.time() - started:.0f} s)", flush=True)
    cases = []
    for s in seeds:
        with np.load(folder / f"{s}.npz") as z:
            cases.append({k: z[k] for k in z.files})
    return cases
