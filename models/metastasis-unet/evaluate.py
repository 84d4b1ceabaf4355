"""Evaluate the exported metastasis model on held-out synthetic studies (unseen seeds).

    .venv/bin/python models/metastasis-unet/evaluate.py [--cases N] [--validation N] [--grid]

Held-out cases go through the real path by default (``models.common.mr_real``: synthetic
DICOM study → the preprocess stage's workflow → the served predictor), so the numbers are
those the pipeline will see; ``--grid`` uses cases rendered straight onto the grid instead.

The lesion post-processing (probability threshold and minimum component size, both read by
the infer stage from ``model.json`` settings) is chosen on validation seeds: the pair with the
highest sensitivity (lesions ≥ 5 mm) at no more than 0.5 false positives per study there,
then the fewest false positives; remaining ties go to the lowest threshold and smallest
``min_voxels`` (the most sensitive of the equally good). Test seeds then give lesion-level
sensitivity for lesions ≥ 5 mm and false positives per study, with lesions found as the
infer stage finds them (connected components, :func:`radpipe.serving.lesions.lesion_table`).
Writes the pair into model.json and the results into metrics.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.common import mr_grid, mr_real
from models.common.evaluation import MODELS, predictor, write_metrics

from radpipe.preprocessing.grid import affine_ras
from radpipe.serving.inputs import bounding_box
from radpipe.serving.lesions import lesion_table

VALIDATION_SEED, TEST_SEED = 90_000, 100_000
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
MIN_VOXELS = (4, 10, 20, 30, 40)
MIN_DIAMETER = 5.0
MAX_VALIDATION_FP = 0.5


def load_case(seed: int, grid: bool) -> mr_grid.MRCase:
    """A held-out case: real path (cached) or rendered on the grid."""
    if grid:
        return mr_grid.make_case("metastasis", seed, augment=False)
    return mr_real.as_case(mr_real.real_cases("metastasis", [seed])[0])


def predict(seed: int, model, grid: bool) -> tuple[np.ndarray, mr_grid.MRCase]:
    """Lesion probability on the brain box of one held-out case."""
    case = load_case(seed, grid)
    box = bounding_box(case.mask, margin=4)
    index = [mr_grid.CHANNELS.index(c) for c in ("t1c", "flair")]
    image = np.ascontiguousarray(case.image.astype(np.float32)[index][(slice(None), *box)])
    prob = np.zeros(case.mask.shape, np.float32)
    prob[box] = model.predict({"image": image})["probability"]
    prob[~case.mask] = 0
    return prob, case


def score(prob: np.ndarray, case: mr_grid.MRCase, threshold: float, min_voxels: int) -> dict:
    """Lesion-level hits, misses (≥ 5 mm) and false positives at one threshold."""
    instances, found = lesion_table(prob, threshold, min_voxels, affine_ras())
    truth = case.instances
    big = [i for i, d in case.diameters.items() if d >= MIN_DIAMETER]
    hit = [i for i in big if (instances[truth == i] > 0).any()]
    fp = sum(1 for lesion in found if not (truth[instances == lesion["index"]] > 0).any())
    return {
        "lesions5mm": len(big),
        "detected5mm": len(hit),
        "falsePositives": fp,
        "found": len(found),
        "lesionsAll": len(case.diameters),
    }


def choose(val: list[tuple[np.ndarray, mr_grid.MRCase]]) -> tuple[float, int]:
    """The validation-chosen (threshold, min_voxels)."""
    best: tuple[tuple[float, float], float, int] | None = None
    for t in THRESHOLDS:
        for v in MIN_VOXELS:
            rows = [score(p, c, t, v) for p, c in val]
            fps = float(np.mean([r["falsePositives"] for r in rows]))
            lesions = sum(r["lesions5mm"] for r in rows)
            sens = sum(r["detected5mm"] for r in rows) / lesions if lesions else 1.0
            print(f"validation t={t} min_voxels={v}: sens {sens:.3f} FP/study {fps:.2f}")
            if fps <= MAX_VALIDATION_FP and (best is None or (sens, -fps) > best[0]):
                best = ((sens, -fps), t, v)
    if best is None:
        return THRESHOLDS[-1], MIN_VOXELS[-1]
    return best[1], best[2]


def main() -> None:
    """Pick the post-processing on validation cases, report on test cases."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--validation", type=int, default=2)
    parser.add_argument("--grid", action="store_true", help="grid-rendered cases, not real path")
    args = parser.parse_args()
    model = predictor("metastasis-unet")
    seeds = range(VALIDATION_SEED, VALIDATION_SEED + args.validation)
    threshold, min_voxels = choose([predict(s, model, args.grid) for s in seeds])
    print(f"chosen threshold {threshold}, min_voxels {min_voxels}", flush=True)
    rows = []
    for seed in range(TEST_SEED, TEST_SEED + args.cases):
        prob, case = predict(seed, model, args.grid)
        row = {"seed": seed, **score(prob, case, threshold, min_voxels)}
        print(row, flush=True)
        rows.append(row)
    lesions = sum(r["lesions5mm"] for r in rows)
    detected = sum(r["detected5mm"] for r in rows)
    spec_path = MODELS / "metastasis-unet" / "model.json"
    spec = json.loads(spec_path.read_text())
    spec["settings"]["threshold"] = threshold
    spec["settings"]["min_voxels"] = min_voxels
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    path = "grid-rendered" if args.grid else "real path: DICOM study -> preprocess workflow"
    write_metrics(
        "metastasis-unet",
        {
            "heldOutCases": len(rows),
            "cases": path,
            "seeds": f"test {TEST_SEED}.., validation {VALIDATION_SEED}.. "
            "(training used grid seeds 0..15 and real-path seeds 1000..)",
            "threshold": threshold,
            "minVoxels": min_voxels,
            "sensitivity5mm": round(detected / lesions, 4) if lesions else None,
            "lesions5mm": lesions,
            "falsePositivesPerStudy": round(float(np.mean([r["falsePositives"] for r in rows])), 3),
            "countExact": sum(r["found"] == r["lesionsAll"] for r in rows),
            "goals": {"sensitivity5mm": 0.9, "falsePositivesPerStudy": 1.0},
            "perCase": rows,
        },
    )


if __name__ == "__main__":
    main()
