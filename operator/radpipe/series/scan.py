"""Reading series headers from a directory of DICOM files, grouped by study and series.

Only headers are read (``stop_before_pixels``); files that are not DICOM are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from radpipe.series.headers import SeriesHeader


@dataclass
class ScannedStudy:
    """One study found in a directory: its series headers (one per series)."""

    study_uid: str
    series: list[SeriesHeader] = field(default_factory=list)


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            yield path


def scan_directory(root: Path) -> list[ScannedStudy]:
    """Every study under ``root``, each with one header per series and its instance count."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    first: dict[tuple[str, str], SeriesHeader] = {}
    counts: dict[tuple[str, str], int] = {}
    for path in _files(root):
        try:
            dataset = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError, TypeError):
            continue
        series_uid = str(dataset.get("SeriesInstanceUID", "") or "")
        if not series_uid or ("SOPClassUID" not in dataset and "Modality" not in dataset):
            continue
        key = (str(dataset.get("StudyInstanceUID", "") or ""), series_uid)
        counts[key] = counts.get(key, 0) + 1
        if key not in first:
            first[key] = SeriesHeader.from_dataset(dataset)
    studies: dict[str, ScannedStudy] = {}
    for (study_uid, _), header in first.items():
        header.n_instances = counts[(study_uid, header.uid)]
        studies.setdefault(study_uid, ScannedStudy(study_uid)).series.append(header)
    return [studies[uid] for uid in sorted(studies)]
