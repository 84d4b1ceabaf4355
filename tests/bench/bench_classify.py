"""Benchmark of the series classifier against a keyword baseline, in the same run.

    .venv/bin/python tests/bench/bench_classify.py [--studies 300] [--vendor canon]

Held-out set: studies of the vendor the shipped model never saw (canon), generated with a
seed used neither for training nor for the model card. Measured for the CatBoost model and
for keyword rules on SeriesDescription: accuracy, accuracy on t1/t1c/t2/flair, per-class
F1, and time per series (features + prediction, one model call per study, as the stage
does). Goals: >= 99 % on t1/t1c/t2/flair with the vendor held out; < 5 ms per series.
Exit status 1 when the accuracy goal is missed (timing too with --strict-time).
"""

from __future__ import annotations

import argparse
import sys
import time

from radpipe.series import metrics
from radpipe.series.baseline import keyword_class
from radpipe.series.corpus import VENDORS, iter_studies
from radpipe.series.model import SeriesClassifier

CORE_GOAL = 0.99
MS_GOAL = 5.0


def main() -> int:
    """Run the benchmark and print the comparison; the exit status says if goals were met."""
    parser = argparse.ArgumentParser(description="series classifier benchmark")
    parser.add_argument("--studies", type=int, default=300)
    parser.add_argument("--vendor", default="canon", choices=VENDORS)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--strict-time", action="store_true", help="fail on the timing goal too")
    args = parser.parse_args()

    studies = list(iter_studies(args.studies, args.seed, (args.vendor,)))
    truth = [s.label for study in studies for s in study.series]
    n_series = len(truth)
    classifier = SeriesClassifier.load()
    classifier.predict_study([studies[0].series[0].header])  # load and warm up

    clock = time.perf_counter()
    predicted: list[str] = []
    for study in studies:
        predicted += [p.label for p in classifier.predict_study([s.header for s in study.series])]
    model_ms = (time.perf_counter() - clock) * 1000 / n_series

    clock = time.perf_counter()
    baseline = [keyword_class(s.header) for study in studies for s in study.series]
    base_ms = (time.perf_counter() - clock) * 1000 / n_series

    rows = [
        ("accuracy (all classes)", metrics.accuracy, "{:.4f}"),
        ("accuracy t1/t1c/t2/flair", metrics.subset_accuracy, "{:.4f}"),
    ]
    print(f"held-out: {len(studies)} {args.vendor} studies, {n_series} series, seed {args.seed}")
    print(f"{'':28} {'catboost':>10} {'keywords':>10} {'ratio':>8}")
    results = {}
    for name, fn, fmt in rows:
        ours, theirs = fn(truth, predicted), fn(truth, baseline)
        results[name] = ours
        ratio = ours / theirs if theirs else float("inf")
        print(f"{name:28} {fmt.format(ours):>10} {fmt.format(theirs):>10} {ratio:>7.2f}x")
    print(f"{'ms per series':28} {model_ms:>10.3f} {base_ms:>10.3f} {model_ms / base_ms:>7.1f}x")
    ours_f1 = metrics.per_class_f1(truth, predicted)
    base_f1 = metrics.per_class_f1(truth, baseline)
    print("per-class F1:")
    for cls in sorted(set(truth)):
        print(f"  {cls:12} {ours_f1.get(cls, 0.0):>8.3f} {base_f1.get(cls, 0.0):>10.3f}")
    mistakes = ", ".join(f"{t}->{p} x{n}" for t, p, n in metrics.confusions(truth, predicted, 6))
    print(f"top confusions: {mistakes or 'none'}")

    core = results["accuracy t1/t1c/t2/flair"]
    core_ok = core >= CORE_GOAL
    time_ok = model_ms < MS_GOAL
    print(f"goal t1/t1c/t2/flair >= {CORE_GOAL:.0%}: {'PASS' if core_ok else 'FAIL'} ({core:.2%})")
    print(f"goal < {MS_GOAL:g} ms per series: {'PASS' if time_ok else 'MISS'} ({model_ms:.2f} ms)")
    return 0 if core_ok and (time_ok or not args.strict_time) else 1


if __name__ == "__main__":
    sys.exit(main())
