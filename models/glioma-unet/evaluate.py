"""Evaluate the exported glioma model on held-out synthetic cases (unseen seeds).

    .venv/bin/python models/glioma-unet/evaluate.py [--cases N] [--grid]

Held-out cases go through the real path by default (``models.common.mr_real``: synthetic
DICOM study → the preprocess stage's workflow → the served predictor), so the numbers are
those the pipeline will see; ``--grid`` uses cases rendered straight onto the grid instead.

Writes models/glioma-unet/metrics.json: Dice of whole tumour (labels 1+2+4), tumour core
(1+4) and enhancing tumour (4), per case and mean, plus inference time per case; and, on
``--normals`` held-out normal brains (real path), the volume wrongly labelled tumour.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.common import mr_grid, mr_real
from models.common.evaluation import dice, predictor, write_metrics

from radpipe.serving.inputs import bounding_box
from radpipe.serving.predictors import Predictor

#: Held-out seeds start far from the training seeds (0..N).
FIRST_SEED = 100_000
REAL_PATH = "real path: DICOM study -> preprocess workflow"
REGIONS = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}


def segment(model: Predictor, case: mr_grid.MRCase) -> np.ndarray:
    """The served model's labels for one case, run on its brain box as the infer stage does."""
    box = bounding_box(case.mask, margin=4)
    image = case.image.astype(np.float32)[(slice(None), *box)]
    labels = np.zeros(case.mask.shape, np.uint8)
    labels[box] = model.predict({"image": np.ascontiguousarray(image)})["labels"]
    return labels


def main() -> None:
    """Run the model on each held-out case through the serving predictor."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--grid", action="store_true", help="grid-rendered cases, not real path")
    parser.add_argument("--normals", type=int, default=2, help="held-out normal brains")
    args = parser.parse_args()
    model = predictor("glioma-unet")
    rows = []
    for seed in range(FIRST_SEED, FIRST_SEED + args.cases):
        if args.grid:
            case = mr_grid.make_case("glioma", seed, augment=False)
        else:
            case = mr_real.as_case(mr_real.real_cases("glioma", [seed])[0])
        started = time.perf_counter()
        labels = segment(model, case)
        seconds = time.perf_counter() - started
        row = {"seed": seed, "seconds": round(seconds, 2)}
        for region, values in REGIONS.items():
            row[region] = round(dice(np.isin(labels, values), np.isin(case.labels, values)), 4)
        print(row, flush=True)
        rows.append(row)
    normals = []
    for seed in range(FIRST_SEED, FIRST_SEED + (0 if args.grid else args.normals)):
        labels = segment(model, mr_real.as_case(mr_real.real_cases("normal", [seed])[0]))
        # 1 mm isotropic grid: one voxel is 1 mm³
        normals.append({"seed": seed, "tumourCm3": round(float((labels > 0).sum()) / 1000, 3)})
        print(normals[-1], flush=True)
    write_metrics(
        "glioma-unet",
        {
            "heldOutCases": len(rows),
            "cases": "grid-rendered" if args.grid else REAL_PATH,
            "seeds": f"{FIRST_SEED}..{FIRST_SEED + len(rows) - 1} "
            "(training used grid seeds 0..23, real-path glioma seeds 1000..1023 and "
            "real-path normal seeds 2000..2001)",
            "dice": {r: round(float(np.mean([row[r] for row in rows])), 4) for r in REGIONS},
            "diceMin": {r: round(float(np.min([row[r] for row in rows])), 4) for r in REGIONS},
            "goals": {"WT": 0.93, "TC": 0.90, "ET": 0.85},
            "perCase": rows,
            "normalBrains": normals,
        },
    )


if __name__ == "__main__":
    main()
