"""Evaluate the exported hemorrhage model on held-out synthetic head CTs (unseen seeds).

    .venv/bin/python models/hemorrhage-cnn/evaluate.py [--bleeds N] [--normals N]

Each held-out phantom is sampled as a thin stack (the series the hemorrhage app prefers) and a
thick one, exactly as train.py's cases are made (models/common/ct_slices.py), and scored
through the serving code (ONNX Runtime). Per-slice AUC for each output; per-study AUC of every
output (study score = the highest slice probability, as the infer stage reports it), for thin,
thick and all stacks; and, at the postprocess stage's 0.5 threshold, how many studies with
hemorrhage were flagged, how many without were, and how many true subtypes were found. The
stacks are cached under var/train/hemorrhage-cnn/heldout/ so other checkpoints (``--onnx``)
can be compared on the same studies. Writes models/hemorrhage-cnn/metrics.json unless
``--onnx`` or ``--no-write`` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.common.cache import cached_cases
from models.common.ct_slices import LABELS, make_stacks, model_input
from models.common.evaluation import auc, predictor, write_metrics

from radpipe.serving.predictors import Predictor

TEST_SEED = 100_000
#: Cache keys ≥ NORMAL_KEY are normal heads (key - NORMAL_KEY is the seed).
NORMAL_KEY = 1_000_000
#: The postprocess stage's default threshold on a study probability.
THRESHOLD = 0.5
STACKS = ("thin", "thick")


def make(key: int) -> dict[str, np.ndarray]:
    """A held-out phantom's thin and thick stacks."""
    return make_stacks(key % NORMAL_KEY, normal=key >= NORMAL_KEY, poses=2)


def rounded(value: float) -> float | None:
    """``value`` to 4 decimals; None (JSON null) where undefined (no positive or no negative)."""
    return None if np.isnan(value) else round(value, 4)


def main() -> None:
    """Score held-out studies with and without hemorrhage."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bleeds", type=int, default=32)
    parser.add_argument("--normals", type=int, default=12)
    parser.add_argument("--onnx", type=Path, help="score this ONNX file instead (no metrics)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write metrics")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    model = predictor("hemorrhage-cnn")
    if args.onnx:
        settings = {**model.spec.settings, "onnx": str(args.onnx.resolve())}
        model = Predictor(dataclasses.replace(model.spec, settings=settings))
    keys = [*range(TEST_SEED, TEST_SEED + args.bleeds)]
    keys += [NORMAL_KEY + s for s in range(TEST_SEED, TEST_SEED + args.normals)]
    cases = cached_cases("hemorrhage-cnn/heldout", make, keys, workers=args.workers)
    slice_scores, slice_labels = [], []
    study: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {s: [] for s in STACKS}
    for key, case in zip(keys, cases, strict=True):
        probs = model.predict({"slices": model_input(case["hu"])})["probabilities"]
        slice_scores.append(probs)
        slice_labels.append(case["labels"])
        line = [str(key % NORMAL_KEY), "normal" if key >= NORMAL_KEY else "bleed"]
        for i, kind in enumerate(STACKS):
            rows = case["study"] == i
            score, truth = probs[rows].max(axis=0), case["labels"][rows].any(axis=0)
            study[kind].append((score, truth))
            found = [n for n, p, t in zip(LABELS, score, truth, strict=True) if t]
            line.append(f"{kind}: " + " ".join(f"{n}={score[LABELS.index(n)]:.2f}" for n in found))
            line.append(f"max-any={score[0]:.2f}")
        print(*line, flush=True)
    scores, labels = np.concatenate(slice_scores), np.concatenate(slice_labels)
    per_slice = {name: rounded(auc(scores[:, i], labels[:, i])) for i, name in enumerate(LABELS)}

    def per_study(kinds: tuple[str, ...]) -> dict[str, object]:
        s = np.array([sc for k in kinds for sc, _ in study[k]])
        t = np.array([tr for k in kinds for _, tr in study[k]])
        flagged = s >= THRESHOLD
        return {
            "studies": len(s),
            "auc": {n: rounded(auc(s[:, i], t[:, i])) for i, n in enumerate(LABELS)},
            "anyFlagged": f"{int((flagged[:, 0] & t[:, 0]).sum())}/{int(t[:, 0].sum())}",
            "normalsFlagged": f"{int((flagged[:, 0] & ~t[:, 0]).sum())}/{int((~t[:, 0]).sum())}",
            "subtypesFound": {
                n: f"{int((flagged[:, i] & t[:, i]).sum())}/{int(t[:, i].sum())}"
                for i, n in enumerate(LABELS)
                if i
            },
            "subtypesFalse": int((flagged[:, 1:] & ~t[:, 1:]).sum()),
        }

    thin, thick, both = per_study(("thin",)), per_study(("thick",)), per_study(STACKS)
    metrics = {
        "heldOutStudies": len(keys),
        "studiesWithHemorrhage": args.bleeds,
        "stacksPerStudy": "a thin (0.625–1.25 mm) and a thick (4–5 mm) axial stack",
        "slices": len(scores),
        "seeds": (
            f"bleeds {TEST_SEED}..{TEST_SEED + args.bleeds - 1}, normals "
            f"{TEST_SEED}..{TEST_SEED + args.normals - 1} (training: 0..31 and 0..7 direct, "
            "0..15 and 0..7 as preprocessed)"
        ),
        "aucAnyPerStudy": thin["auc"]["any"],  # type: ignore[index]
        "aucAnyPerStudyThick": thick["auc"]["any"],  # type: ignore[index]
        "perStudyThin": thin,
        "perStudyThick": thick,
        "perStudyAllStacks": both,
        "aucPerSlice": per_slice,
        "threshold": THRESHOLD,
        "goals": {"aucAny": 0.97},
    }
    if args.onnx or args.no_write:
        import json

        print(json.dumps(metrics, indent=2))
    else:
        write_metrics("hemorrhage-cnn", metrics)


if __name__ == "__main__":
    main()
