"""Evaluate the exported hemorrhage model on held-out synthetic head CTs (unseen seeds).

    .venv/bin/python models/hemorrhage-cnn/evaluate.py [--bleeds N] [--normals N]

Per-slice AUC for each output, and per-study AUC of "any" (study score = the highest slice
probability, as the infer stage reports it). Writes models/hemorrhage-cnn/metrics.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.common.ct_slices import LABELS, make_stacks, model_input
from models.common.evaluation import auc, predictor, write_metrics

TEST_SEED = 100_000


def main() -> None:
    """Score held-out studies with and without hemorrhage."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bleeds", type=int, default=12)
    parser.add_argument("--normals", type=int, default=8)
    args = parser.parse_args()
    model = predictor("hemorrhage-cnn")
    slice_scores, slice_labels, study_scores, study_labels = [], [], [], []
    studies = [(s, False) for s in range(TEST_SEED, TEST_SEED + args.bleeds)]
    studies += [(s, True) for s in range(TEST_SEED, TEST_SEED + args.normals)]
    for seed, normal in studies:
        stack = make_stacks(seed, normal, poses=1)
        probs = model.predict({"slices": model_input(stack["hu"])})["probabilities"]
        slice_scores.append(probs)
        slice_labels.append(stack["labels"])
        study_scores.append(float(probs[:, 0].max()))
        study_labels.append(bool(stack["labels"][:, 0].any()))
        print(seed, "normal" if normal else "bleed", round(study_scores[-1], 3), flush=True)
    scores, labels = np.concatenate(slice_scores), np.concatenate(slice_labels)
    per_slice = {name: round(auc(scores[:, i], labels[:, i]), 4) for i, name in enumerate(LABELS)}
    write_metrics(
        "hemorrhage-cnn",
        {
            "heldOutStudies": len(studies),
            "studiesWithHemorrhage": int(sum(study_labels)),
            "slices": len(scores),
            "seeds": f"{TEST_SEED}.. (training used 0..31 and normals 0..7)",
            "aucAnyPerStudy": round(auc(np.array(study_scores), np.array(study_labels)), 4),
            "aucPerSlice": per_slice,
            "goals": {"aucAny": 0.97},
        },
    )


if __name__ == "__main__":
    main()
