"""What the routing rules look at: a study's attributes, read from its instances' headers,
plus the class of each series predicted by the series classifier.

One header per series is enough (study- and series-level attributes are the same in every
instance), so a 600-image study costs a handful of reads, not 600.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom import dcmread
from pydicom.dataset import Dataset

from radpipe.intake.rules import SeriesFacts, StudyFacts

if TYPE_CHECKING:
    from radpipe.config import Settings
    from radpipe.store import ArtifactStore

log = logging.getLogger(__name__)

#: Predicts (class, probability) for each series header, in order.
Classifier = Callable[[Sequence[tuple[Dataset, int]]], list[tuple[str, float]]]


@dataclass(frozen=True)
class SeriesSample:
    """One series of a study: a header dataset (no pixels) and its instance count."""

    header: Dataset
    instances: int


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword, "")
    except Exception:  # a malformed element must not stop routing
        return ""
    return "" if value is None else str(value).strip()


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else None
    except Exception:
        return None


def read_header(data: bytes) -> Dataset:
    """The header of a Part-10 instance (pixel data not parsed)."""
    return dcmread(BytesIO(data), stop_before_pixels=True)


def load_classifier(settings: Settings | None) -> tuple[Classifier | None, str | None]:
    """The series classifier as a :data:`Classifier`, or None and why it is unavailable."""
    try:
        from radpipe.series.headers import SeriesHeader
        from radpipe.series.model import SeriesClassifier

        model = SeriesClassifier.load(settings)
    except Exception as err:  # no model file yet, or catboost missing: rules say so
        return None, f"series classifier unavailable: {err}"

    def classify(samples: Sequence[tuple[Dataset, int]]) -> list[tuple[str, float]]:
        headers = [SeriesHeader.from_dataset(ds, n) for ds, n in samples]
        return [(p.label, p.probability) for p in model.predict_study(headers)]

    return classify, None


def study_facts(
    samples: Sequence[SeriesSample],
    *,
    calling_aes: Sequence[str] = (),
    classifier: Classifier | None = None,
    classifier_note: str | None = None,
) -> StudyFacts:
    """Facts of one study from one header per series."""
    if not samples:
        raise ValueError("a study needs at least one series")
    first = samples[0].header
    classes: list[tuple[str, float]] | list[None] = [None] * len(samples)
    note = classifier_note
    if classifier is not None:
        try:
            classes = classifier([(s.header, s.instances) for s in samples])
        except Exception as err:  # a classifier failure must not stop routing by headers
            log.warning("series classifier failed: %s", err)
            note = f"series classifier failed: {err}"
    series = []
    for sample, predicted in zip(samples, classes, strict=True):
        ds = sample.header
        series.append(
            SeriesFacts(
                series_instance_uid=_text(ds, "SeriesInstanceUID"),
                modality=_text(ds, "Modality"),
                body_part=_text(ds, "BodyPartExamined"),
                description=_text(ds, "SeriesDescription"),
                number=_int(ds, "SeriesNumber"),
                instances=sample.instances,
                series_class=predicted[0] if predicted else None,
                class_probability=predicted[1] if predicted else None,
            )
        )
    series.sort(key=lambda s: (1 << 30 if s.number is None else s.number, s.series_instance_uid))
    return StudyFacts(
        study_instance_uid=_text(first, "StudyInstanceUID"),
        accession=_text(first, "AccessionNumber"),
        study_description=_text(first, "StudyDescription"),
        institution=_text(first, "InstitutionName"),
        calling_aes=tuple(sorted(set(calling_aes))),
        series=tuple(series),
        classifier_note=note,
    )


def samples_from_folder(folder: Path) -> dict[str, list[SeriesSample]]:
    """One sample per series of every study under ``folder`` (DICOM files, any names)."""
    headers: dict[tuple[str, str], Dataset] = {}  # first instance of each series
    counts: dict[tuple[str, str], int] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            ds = dcmread(path, stop_before_pixels=True)
            key = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))
        except Exception:  # not DICOM (truth files, DICOMDIR...): skip
            continue
        headers.setdefault(key, ds)
        counts[key] = counts.get(key, 0) + 1
    studies: dict[str, list[SeriesSample]] = {}
    for (study, series), header in headers.items():
        studies.setdefault(study, []).append(SeriesSample(header, counts[(study, series)]))
    return studies


def samples_from_store(store: ArtifactStore, prefix: str) -> list[SeriesSample]:
    """One sample per series of a spooled study (``prefix`` ends with ``/``)."""
    by_series: dict[str, list[str]] = {}
    for key in store.list(prefix + "instances/"):
        series = key[len(prefix + "instances/") :].split("/", 1)[0]
        by_series.setdefault(series, []).append(key)
    samples = []
    for _series, keys in sorted(by_series.items()):
        samples.append(SeriesSample(read_header(store.get_bytes(sorted(keys)[0])), len(keys)))
    return samples


def describe_facts(facts: StudyFacts) -> dict[str, Any]:
    """The facts as JSON (for ``radpipe rules test --json`` and study.json); no patient data."""
    return {
        "studyInstanceUID": facts.study_instance_uid,
        "studyDescription": facts.study_description,
        "institution": facts.institution,
        "modalities": facts.modalities,
        "callingAEs": list(facts.calling_aes),
        "classifier": facts.classifier_note or "ok",
        "series": [
            {
                "seriesInstanceUID": s.series_instance_uid,
                "number": s.number,
                "modality": s.modality,
                "bodyPart": s.body_part,
                "description": s.description,
                "instances": s.instances,
                "class": s.series_class,
                "probability": (
                    None if s.class_probability is None else round(s.class_probability, 3)
                ),
            }
            for s in facts.series
        ],
    }
