"""Train the series classifier and write model.cbm and metrics.json next to this file.

    .venv/bin/python models/series-classifier/train.py            # the shipped model
    .venv/bin/python models/series-classifier/train.py --quick    # a fast smoke run

The training corpus is generated (radpipe.series.corpus on top of the synth vendor
catalog) from --seed with the --holdout vendor left out entirely; the held-out sets use
other seeds: one of the held-out vendor only (the headline figure) and one of the seen
vendors (in-distribution). Deterministic: fixed seeds, thread_count=2.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from radpipe.series import metrics, training
from radpipe.series.corpus import VENDORS, Corpus, generate_corpus
from radpipe.series.model import MODEL_FILE

HERE = Path(__file__).resolve().parent


def evaluate(model: Any, corpus: Corpus) -> dict[str, Any]:
    """Accuracy, core-class accuracy, per-class F1 and top confusions of ``model``."""
    predicted = [str(p) for p in model.predict(training.make_pool(corpus.rows)).ravel()]
    return {
        "series": len(corpus),
        "studies": len(set(corpus.studies)),
        "accuracy": round(metrics.accuracy(corpus.labels, predicted), 4),
        "core_accuracy": round(metrics.subset_accuracy(corpus.labels, predicted), 4),
        "per_class_f1": {
            k: round(v, 4) for k, v in metrics.per_class_f1(corpus.labels, predicted).items()
        },
        "confusions": [
            {"true": t, "predicted": p, "count": n}
            for t, p, n in metrics.confusions(corpus.labels, predicted)
        ],
    }


def main() -> None:
    """Generate the corpora, train, evaluate, write model.cbm and metrics.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-studies", type=int, default=1500)
    parser.add_argument("--test-studies", type=int, default=600)
    parser.add_argument("--seed", type=int, default=7, help="corpus and CatBoost seed")
    parser.add_argument("--test-seed", type=int, default=1007, help="seed of held-out sets")
    parser.add_argument("--holdout", default="canon", choices=[*VENDORS, "none"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--quick", action="store_true", help="tiny corpus, 20 iterations")
    args = parser.parse_args()
    if args.quick:
        args.train_studies, args.test_studies = 120, 60

    seen = tuple(v for v in VENDORS if v != args.holdout)
    clock = time.perf_counter()
    train = generate_corpus(args.train_studies, args.seed, seen)
    held_vendor = (
        generate_corpus(args.test_studies, args.test_seed, (args.holdout,))
        if args.holdout != "none"
        else None
    )
    held_seen = generate_corpus(args.test_studies, args.test_seed + 1, seen)
    generated = time.perf_counter() - clock
    print(f"corpus: {len(train)} training series in {generated:.0f} s", flush=True)

    clock = time.perf_counter()
    extra = {"iterations": 20} if args.quick else {}
    model = training.fit(train, seed=args.seed, threads=args.threads, verbose=50, **extra)
    trained = time.perf_counter() - clock
    print(f"trained in {trained:.0f} s", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    training.save(model, args.out / MODEL_FILE)
    report: dict[str, Any] = {
        "model": MODEL_FILE,
        "classes": [str(c) for c in model.classes_],
        "training": {
            "command": "python models/series-classifier/train.py"
            + (f" --holdout {args.holdout}" if args.holdout != "canon" else ""),
            "seed": args.seed,
            "studies": args.train_studies,
            "series": len(train),
            "vendors": list(seen),
            "params": {**training.PARAMS, **extra},
            "thread_count": args.threads,
            "seconds": round(trained, 1),
        },
        "heldout_seen_vendors": evaluate(model, held_seen),
    }
    if held_vendor is not None:
        report["heldout_vendor"] = {"vendor": args.holdout, **evaluate(model, held_vendor)}
    report["size_bytes"] = (args.out / MODEL_FILE).stat().st_size
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "training"}, indent=2))


if __name__ == "__main__":
    main()
