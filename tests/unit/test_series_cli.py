"""``radpipe classify``: the table, the --json document, several studies, clean errors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from radpipe.cli import cli
from radpipe.config import Settings
from radpipe.synth.protocols import sample_scanner, sample_series_headers

#: A routine MR brain protocol (class per series, in acquisition order).
ROUTINE = ("localizer", "t1", "t2", "flair", "dwi", "adc", "t1c")


def make_headers(
    classes: Sequence[str], seed: int, vendor: str = "siemens"
) -> list[dict[str, Any]]:
    """Vendor headers for one study's series (the synth catalog, one scanner)."""
    rng = np.random.default_rng(seed)
    scanner = sample_scanner(vendor, "MR", rng)
    study_uid = generate_uid()
    series = []
    for number, cls in enumerate(classes, start=1):
        headers = sample_series_headers(vendor, cls, rng, scanner=scanner)
        headers.update(
            StudyInstanceUID=study_uid,
            SeriesInstanceUID=generate_uid(),
            SeriesNumber=number,
            SeriesDescription=headers["SeriesDescription"] or f"{cls} series",
        )
        series.append({"class": cls, **headers})
    return series


def instance(headers: dict[str, Any], number: int) -> Dataset:
    """One header-only MR instance carrying ``headers``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.InstanceNumber = number
    for keyword, value in headers.items():
        if keyword != "class" and value is not None:
            setattr(ds, keyword, value)
    return ds


def write_study(root: Path, series: Sequence[dict[str, Any]], per_series: int = 2) -> None:
    """Write every series as ``per_series`` DICOM files under ``root``."""
    for headers in series:
        folder = root / f"{headers['SeriesNumber']}"
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(1, per_series + 1):
            instance(headers, n).save_as(folder / f"IM{n:04d}.dcm", enforce_file_format=True)


@pytest.fixture
def one_study(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    series = make_headers(ROUTINE, seed=11)
    write_study(tmp_path / "study", series)
    (tmp_path / "study" / "notes.txt").write_text("not DICOM")  # skipped, not fatal
    return tmp_path / "study", series


def _run(settings: Settings, *args: str) -> Any:
    return CliRunner().invoke(cli, ["classify", *args], catch_exceptions=False)


def test_json_document_for_one_study(
    settings: Settings, one_study: tuple[Path, list[dict[str, Any]]]
) -> None:
    folder, series = one_study
    result = _run(settings, str(folder), "--app", "glioma", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert isinstance(document, dict)
    assert document["studyInstanceUID"] == series[0]["StudyInstanceUID"]
    assert len(document["series"]) == len(ROUTINE)
    entry = document["series"][0]
    assert {"seriesInstanceUID", "seriesNumber", "description", "class", "probability"} <= set(
        entry
    )
    assert entry["instances"] == 2
    truth = {s["SeriesInstanceUID"]: s["class"] for s in series}
    assert [truth[s["seriesInstanceUID"]] for s in document["series"]] == [
        s["class"] for s in document["series"]
    ]
    assert set(document["roles"]) == {"t1", "t1c", "t2", "flair"}
    for role, uid in document["roles"].items():
        assert truth[uid] == role
        assert document["reasons"][role].startswith("series ")
    assert document["ok"] is True


def test_several_studies_give_a_list_with_one_entry_each(
    settings: Settings, tmp_path: Path
) -> None:
    mr = make_headers(ROUTINE, seed=12, vendor="ge")
    no_flair = make_headers(("localizer", "t1", "t2", "t1c"), seed=13, vendor="philips")
    write_study(tmp_path / "in" / "a", mr)
    write_study(tmp_path / "in" / "b", no_flair)
    result = _run(settings, str(tmp_path / "in"), "--json")
    assert result.exit_code == 0, result.output
    documents = json.loads(result.output)
    assert isinstance(documents, list) and len(documents) == 2
    by_uid = {d["studyInstanceUID"]: d for d in documents}
    assert set(by_uid) == {mr[0]["StudyInstanceUID"], no_flair[0]["StudyInstanceUID"]}
    incomplete = by_uid[no_flair[0]["StudyInstanceUID"]]
    assert incomplete["app"] == "glioma"  # the default for MR
    assert incomplete["roles"]["flair"] is None
    assert incomplete["ok"] is False and "FLAIR" in incomplete["error"]


def test_table_shows_classes_roles_and_reasons(
    settings: Settings, one_study: tuple[Path, list[dict[str, Any]]]
) -> None:
    folder, series = one_study
    result = _run(settings, str(folder), "--app", "metastasis")
    assert result.exit_code == 0, result.output
    t1c = next(s for s in series if s["class"] == "t1c")
    assert "app metastasis" in result.output
    assert "localizer" in result.output and "flair" in result.output
    assert "t1c:" in result.output and f"series {t1c['SeriesNumber']}" in result.output


def test_unknown_app_and_bad_targets_are_clean_errors(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = _run(settings, str(tmp_path / "empty"))
    assert result.exit_code == 1 and "no DICOM series found" in result.output
    result = _run(settings, "not an accession!")
    assert result.exit_code == 1 and "neither a directory nor an accession" in result.output
    write_study(tmp_path / "s", make_headers(("t1",), seed=3))
    result = _run(settings, str(tmp_path / "s"), "--app", "nope")
    assert result.exit_code == 1 and "unknown app 'nope'" in result.output
    assert "Traceback" not in result.output


def test_an_accession_without_a_pacs_node_is_a_clean_error(settings: Settings) -> None:
    result = _run(settings, "ACC123")
    assert result.exit_code == 1
    assert result.output.startswith("Error:") and "Traceback" not in result.output
