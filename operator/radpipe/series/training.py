"""Fitting the CatBoost series classifier (used by models/series-classifier/train.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from radpipe.series.corpus import Corpus
from radpipe.series.features import CAT_INDICES, FEATURE_NAMES, TEXT_INDICES

#: How CatBoost turns the text columns into features: a word dictionary per column and a
#: Naive Bayes calcer (per-class likelihoods of the words). Bag-of-words columns cost ~5x
#: the training time for no held-out gain, so they are left out.
TEXT_PROCESSING: dict[str, Any] = {
    "tokenizers": [
        {"tokenizer_id": "Space", "separator_type": "ByDelimiter", "delimiter": " "},
    ],
    "dictionaries": [
        {
            "dictionary_id": "Word",
            "gram_order": "1",
            "max_dictionary_size": "400",
            "occurrence_lower_bound": "5",
        },
    ],
    "feature_processing": {
        "default": [
            {
                "dictionaries_names": ["Word"],
                "feature_calcers": ["NaiveBayes"],
                "tokenizers_names": ["Space"],
            },
        ]
    },
}

#: CatBoost parameters of the shipped model (see models/series-classifier/README.md).
PARAMS: dict[str, Any] = {
    "loss_function": "MultiClass",
    "iterations": 300,
    "depth": 5,
    "learning_rate": 0.2,
    "max_ctr_complexity": 1,
    "one_hot_max_size": 255,
    "border_count": 64,
}


def make_pool(rows: Sequence[Sequence[Any]], labels: Sequence[str] | None = None) -> Any:
    """A CatBoost Pool over feature rows with the categorical and text columns declared."""
    from catboost import Pool

    return Pool(
        [list(r) for r in rows],
        label=list(labels) if labels is not None else None,
        cat_features=CAT_INDICES,
        text_features=TEXT_INDICES,
        feature_names=list(FEATURE_NAMES),
    )


def fit(
    corpus: Corpus,
    *,
    seed: int = 7,
    threads: int = 2,
    verbose: int = 0,
    **overrides: Any,
) -> Any:
    """Train a CatBoostClassifier on ``corpus`` deterministically (fixed seed and threads).

    ``overrides`` replace entries of :data:`PARAMS` (tests train a tiny model this way).
    """
    from catboost import CatBoostClassifier

    params = {**PARAMS, **overrides}
    model = CatBoostClassifier(
        random_seed=seed,
        thread_count=threads,
        text_processing=TEXT_PROCESSING,
        allow_writing_files=False,
        verbose=verbose,
        **params,
    )
    model.fit(make_pool(corpus.rows, corpus.labels))
    return model


def save(model: Any, path: Path) -> None:
    """Write the model in CatBoost's native format (.cbm)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save_model(str(path), format="cbm")
