"""Held-out evaluation through the serving code itself (ONNX Runtime, sliding window).

Runs in the runtime venv (no torch): the numbers in metrics.json are those of the exported
model exactly as radpipe serves it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from radpipe.serving.predictors import Predictor
from radpipe.serving.spec import load_spec

MODELS = Path(__file__).resolve().parents[1]


def predictor(name: str) -> Predictor:
    """The served predictor of models/<name>/."""
    return Predictor(load_spec(MODELS / name))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def write_metrics(name: str, metrics: dict[str, Any]) -> None:
    """Write models/<name>/metrics.json (with when and how it was measured)."""
    metrics = {**metrics, "measuredAt": time.strftime("%Y-%m-%d")}
    path = MODELS / name / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = scores[labels], scores[~labels]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))
