"""Classification metrics shared by the training script, the model card and the benchmark."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

#: The MR classes the glioma and metastasis apps depend on.
CORE_CLASSES: tuple[str, ...] = ("t1", "t1c", "t2", "flair")


def accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Fraction of exact matches (1.0 for empty input)."""
    if not truth:
        return 1.0
    return sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)


def subset_accuracy(
    truth: Sequence[str], predicted: Sequence[str], classes: Sequence[str] = CORE_CLASSES
) -> float:
    """Accuracy over the series whose true class is in ``classes``."""
    pairs = [(t, p) for t, p in zip(truth, predicted, strict=True) if t in classes]
    return accuracy([t for t, _ in pairs], [p for _, p in pairs])


def per_class_f1(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """F1 score of every class present in ``truth`` or ``predicted``."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for t, p in zip(truth, predicted, strict=True):
        if t == p:
            tp[t] += 1
        else:
            fp[p] += 1
            fn[t] += 1
    scores = {}
    for cls in sorted(set(truth) | set(predicted)):
        denominator = 2 * tp[cls] + fp[cls] + fn[cls]
        scores[cls] = 2 * tp[cls] / denominator if denominator else 1.0
    return scores


def confusions(
    truth: Sequence[str], predicted: Sequence[str], top: int = 10
) -> list[tuple[str, str, int]]:
    """The most frequent (true, predicted, count) mistakes."""
    counts = Counter((t, p) for t, p in zip(truth, predicted, strict=True) if t != p)
    return [(t, p, n) for (t, p), n in counts.most_common(top)]
