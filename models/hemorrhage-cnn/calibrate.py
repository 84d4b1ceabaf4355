"""Set each output's decision point on validation studies (not the held-out test set).

    .venv-train/bin/python models/hemorrhage-cnn/calibrate.py [--bleeds N] [--normals N]

Training draws half its slices with hemorrhage and each subtype equally often, far more than
a study holds, and the infer stage reports a study's highest slice probability, so a raw 0.5
over-calls subtypes. For each output this finds the study-level logit threshold that best
separates validation studies with and without it (Youden's J; the midpoint of the best
interval, clamped to ±``--max-shift``) and subtracts it from the head's bias, so the
postprocess stage's 0.5 becomes that threshold. Ranking (AUC) is unchanged. Validation
phantoms are seeds 200000.. (thin and thick stack each, as evaluate.py makes them), cached
under var/train/hemorrhage-cnn/validation/. Rewrites var/train/hemorrhage-cnn/checkpoint.pt
(the uncalibrated one is kept as checkpoint-uncalibrated.pt).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # net.py, evaluate.py

from evaluate import NORMAL_KEY, make
from models.common.cache import cached_cases
from models.common.ct_slices import LABELS, model_input
from models.common.training import WORK, seed_everything
from net import HemorrhageCNN

NAME = "hemorrhage-cnn"
VALIDATION_SEED = 200_000


def best_threshold(scores: np.ndarray, truth: np.ndarray) -> float:
    """The midpoint of the score interval with the highest Youden's J (sensitivity+specificity)."""
    values = np.unique(scores)
    cuts = np.concatenate([[values[0] - 1.0], (values[1:] + values[:-1]) / 2, [values[-1] + 1.0]])
    j = [(scores[truth] >= c).mean() + (scores[~truth] < c).mean() for c in cuts]
    best = np.flatnonzero(np.isclose(j, max(j)))
    return float((cuts[best[0]] + cuts[best[-1]]) / 2)


def main() -> None:
    """Study-level logit maxima on validation studies → per-output bias shifts."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bleeds", type=int, default=16)
    parser.add_argument("--normals", type=int, default=8)
    parser.add_argument("--max-shift", type=float, default=3.0)
    parser.add_argument("--checkpoint", type=Path, default=WORK / NAME / "checkpoint.pt")
    args = parser.parse_args()
    seed_everything(0)
    out = args.checkpoint
    state = torch.load(out, map_location="cpu", weights_only=False)
    if "calibration" in state:
        raise SystemExit("the checkpoint is calibrated already")
    model = HemorrhageCNN(3, len(LABELS))
    model.load_state_dict(state["model"])
    model.eval()
    keys = [*range(VALIDATION_SEED, VALIDATION_SEED + args.bleeds)]
    keys += [NORMAL_KEY + s for s in range(VALIDATION_SEED, VALIDATION_SEED + args.normals)]
    maxima, truth = [], []
    with torch.no_grad():
        for case in cached_cases("hemorrhage-cnn/validation", make, keys, workers=1):
            logits = model(torch.from_numpy(model_input(case["hu"]))).numpy()
            for i in np.unique(case["study"]):
                rows = case["study"] == i
                maxima.append(logits[rows].max(axis=0))
                truth.append(case["labels"][rows].any(axis=0))
    z, t = np.array(maxima), np.array(truth)
    shifts = []
    for k, name in enumerate(LABELS):
        theta = float(np.clip(best_threshold(z[:, k], t[:, k]), -args.max_shift, args.max_shift))
        shifts.append(theta)
        before = f"{int((z[t[:, k], k] >= 0).sum())}/{int(t[:, k].sum())} found, "
        before += f"{int((z[~t[:, k], k] >= 0).sum())} false"
        after = f"{int((z[t[:, k], k] >= theta).sum())}/{int(t[:, k].sum())} found, "
        after += f"{int((z[~t[:, k], k] >= theta).sum())} false"
        print(f"{name}: logit threshold {theta:+.2f}; at 0.5 before {before}; after {after}")
    shutil.copy(out, out.with_name(f"{out.stem}-uncalibrated.pt"))
    with torch.no_grad():
        state["model"]["head.bias"] -= torch.tensor(shifts, dtype=torch.float32)
    state["calibration"] = {
        "logitShifts": dict(zip(LABELS, [round(s, 4) for s in shifts], strict=True)),
        "validationSeeds": f"{VALIDATION_SEED}.. ({args.bleeds} bleeds, {args.normals} normals)",
    }
    torch.save(state, out)
    print("calibrated", state["calibration"])


if __name__ == "__main__":
    main()
