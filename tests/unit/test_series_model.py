"""The shipped series-classifier model, the corpus generator and the training code."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from radpipe.series import metrics, training
from radpipe.series.baseline import keyword_class
from radpipe.series.classes import SERIES_CLASSES
from radpipe.series.corpus import generate_corpus, iter_studies
from radpipe.series.features import FEATURE_NAMES
from radpipe.series.headers import SeriesHeader
from radpipe.series.model import (
    MODEL_FILE,
    ModelNotFound,
    SeriesClassifier,
    bundled_model_dir,
    model_path,
)

CARD = bundled_model_dir()


def test_the_shipped_model_is_small_and_knows_every_class() -> None:
    path = CARD / MODEL_FILE
    assert path.is_file()
    assert path.stat().st_size < 3_000_000
    classifier = SeriesClassifier(path)
    assert set(classifier.classes) == set(SERIES_CLASSES)
    card = json.loads((CARD / "metrics.json").read_text())
    assert card["heldout_vendor"]["vendor"] not in card["training"]["vendors"]
    assert card["heldout_vendor"]["core_accuracy"] >= 0.99
    readme = (CARD / "README.md").read_text()
    held = card["heldout_vendor"]
    assert f"{held['vendor']} held out" in readme.lower()  # the card says which vendor...
    assert f"{held['accuracy'] * 100:.1f} %" in readme  # ...and quotes the current figures


@pytest.fixture(scope="module")
def classifier() -> SeriesClassifier:
    return SeriesClassifier.load()


def test_held_out_vendor_and_seed_accuracy(classifier: SeriesClassifier) -> None:
    """A fresh held-out set: the vendor the model never saw, a seed used nowhere else."""
    truth: list[str] = []
    predicted: list[str] = []
    for study in iter_studies(40, seed=4242, vendors=("canon",)):
        truth += [s.label for s in study.series]
        predicted += [p.label for p in classifier.predict_study([s.header for s in study.series])]
    assert len(truth) > 300
    assert metrics.subset_accuracy(truth, predicted) >= 0.98
    assert metrics.accuracy(truth, predicted) >= 0.93
    # and it beats keyword matching on the same series
    baseline = [keyword_class(h) for h in _headers(4242)]
    assert metrics.accuracy(truth, predicted) > metrics.accuracy(truth, baseline)


def _headers(seed: int) -> list[SeriesHeader]:
    return [s.header for study in iter_studies(40, seed, ("canon",)) for s in study.series]


def test_a_study_is_predicted_in_one_call_and_empty_headers_do_not_crash(
    classifier: SeriesClassifier,
) -> None:
    headers = [SeriesHeader.from_mapping({}), SeriesHeader.from_mapping({"Modality": "CT"})]
    predictions = classifier.predict_study(headers)
    assert len(predictions) == 2
    for p in predictions:
        assert p.label in SERIES_CLASSES
        assert math.isclose(sum(p.probabilities.values()), 1.0, rel_tol=1e-6)
        assert p.probability == max(p.probabilities.values())
    assert classifier.predict_study([]) == []


def test_model_path_prefers_the_configured_models_dir(tmp_path: Path) -> None:
    from radpipe.config import Settings

    settings = Settings(data_dir=tmp_path, models={"dir": tmp_path / "models"})
    assert model_path(settings) == CARD / MODEL_FILE  # nothing there yet: the bundled one
    target = tmp_path / "models" / "series-classifier" / MODEL_FILE
    target.parent.mkdir(parents=True)
    target.write_bytes((CARD / MODEL_FILE).read_bytes())
    assert model_path(settings) == target
    with pytest.raises(ModelNotFound, match=r"train\.py"):
        SeriesClassifier(tmp_path / "missing.cbm")


def test_the_corpus_is_deterministic_and_covers_vendors_and_classes() -> None:
    first = generate_corpus(12, seed=5, vendors=("ge", "siemens"))
    again = generate_corpus(12, seed=5, vendors=("ge", "siemens"))
    assert first.labels == again.labels
    assert json.dumps(first.rows, default=str) == json.dumps(again.rows, default=str)
    assert set(first.vendors) == {"ge", "siemens"}
    assert all(len(row) == len(FEATURE_NAMES) for row in first.rows)
    other = generate_corpus(12, seed=6, vendors=("ge", "siemens"))
    assert other.labels != first.labels
    labels = set(generate_corpus(120, seed=1).labels)
    assert labels == set(SERIES_CLASSES)


def test_a_tiny_model_trains_deterministically_and_loads(tmp_path: Path) -> None:
    corpus = generate_corpus(20, seed=3, vendors=("philips",))
    paths = []
    for name in ("a", "b"):
        model = training.fit(corpus, iterations=5, seed=1)
        paths.append(tmp_path / name / MODEL_FILE)
        training.save(model, paths[-1])
    first, second = SeriesClassifier(paths[0]), SeriesClassifier(paths[1])
    assert set(first.classes) == set(corpus.labels)
    # the files differ only in a per-training GUID; the predictions are identical
    one, two = first.predict_rows(corpus.rows), second.predict_rows(corpus.rows)
    assert len(one) == len(corpus.rows)
    assert [p.probabilities for p in one] == [p.probabilities for p in two]


def test_keyword_baseline_reads_descriptions() -> None:
    def cls(desc: str) -> str:
        return keyword_class(SeriesHeader.from_mapping({"SeriesDescription": desc}))

    assert cls("Ax T2 FSE") == "t2"
    assert cls("AX T1 +C") == "t1c"
    assert cls("t2_tirm_tra_dark-fluid") == "flair"
    assert cls("3-Plane Loc") == "localizer"
    assert cls("") == "other"
