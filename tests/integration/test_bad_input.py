"""The bad-input corpus (tests/data/make_bad_corpus.py) through the real stages.

Each corpus study is pushed into the artifact store's intake spool and run through the
real fetch and classify stages by the local runner (app ``badin``: glioma's series rules,
stages fetch + classify); the DICOM readers of preprocessing read the series they would
get. Every case ends in a clear error (a named stage, a reason, no internal error, no
retry of a hopeless failure) or a correct result; none lets an exception escape. One case
also comes through a real Orthanc over DIMSE, and the malicious one is shown in the web UI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from radpipe.api.models import AnalysisJob, JobSpec
from radpipe.config import Settings
from radpipe.local.runner import LocalRunner
from radpipe.pipeline.contract import read_result
from radpipe.preprocessing.dicom_io import (
    UnusableSeries,
    dicom_files,
    read_headers,
    read_pixels,
    stack_geometry,
)
from tests.data.make_bad_corpus import CASES, FLAIR, MALICIOUS, T1, T1C, T2, Case, generate
from tests.fixtures.pacs import OrthancServer
from tests.fixtures.web import sign_in, write_users

pytestmark = [pytest.mark.integration]

BADIN_APP = """
apiVersion: radpipe.io/v1alpha1
kind: AnalysisApp
metadata: {name: badin}
spec:
  title: Bad-input checks (glioma's series rules, fetch and classify only)
  modality: MR
  series:
    required: [t1, t1c, t2, flair]
    minProbability: 0.8
    prefer: [original, 3d, thinnest, axial, latest-post-contrast]
  stages: [{name: fetch}, {name: classify}]
"""


@pytest.fixture(scope="session")
def bad_corpus() -> Path:
    """The corpus, generated once per machine (kept while its version is current)."""
    return generate()


@pytest.fixture(scope="module")
def bad_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("badin")
    (folder / "apps").mkdir()
    (folder / "apps" / "badin.yaml").write_text(BADIN_APP)
    settings = Settings(data_dir=folder / "data", apps_dir=folder / "apps")
    settings.runner.retry_backoff_seconds = 0.01
    return settings


def push_and_run(runner: LocalRunner, folder: Path, name: str) -> AnalysisJob:
    """Spool a corpus study as the DICOM receiver would, then run the job to its end."""
    prefix = f"intake/{name}/"
    for path in sorted(folder.rglob("*.dcm")):
        runner.store.put_bytes(
            f"{prefix}instances/{path.parent.name}/{path.name}", path.read_bytes()
        )
    job = runner.submit(JobSpec(accession="BAD1", app="badin", source={"storePrefix": prefix}))
    return runner.run(job.metadata.name)


@pytest.fixture(scope="module")
def outcomes(bad_corpus: Path, bad_settings: Settings) -> dict[str, AnalysisJob]:
    """Every case run once (module-wide: the assertions below read the outcomes)."""
    runner = LocalRunner(bad_settings)
    return {case.name: push_and_run(runner, bad_corpus / case.name, case.name) for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_case_ends_clearly(
    case: Case, outcomes: dict[str, AnalysisJob], bad_settings: Settings
) -> None:
    job = outcomes[case.name]
    status = job.status
    by_stage = {s.name: s for s in status.stages}
    if case.outcome == "succeeded":
        assert status.phase.value == "Succeeded", status.message
        roles = {s["role"] for s in status.selected_series}
        assert roles == {"t1", "t1c", "t2", "flair"}
        return
    assert status.phase.value == "Failed"
    message = (status.message or "").lower()
    assert message.startswith(f"stage {case.stage} failed"), message
    for word in case.message:
        assert word in message, (word, message)
    assert "internal error" not in message and "traceback" not in message
    # a hopeless input is not retried: one attempt, and later stages never started
    assert by_stage[case.stage].attempts == 1
    later = [
        s
        for s in status.stages
        if status.stages.index(s) > status.stages.index(by_stage[case.stage])
    ]
    assert all(s.attempts == 0 for s in later)


def _fetch_data(settings: Settings, job: AnalysisJob) -> dict[str, Any]:
    result = read_result(LocalRunner(settings).store, job.uid, "fetch")
    assert result is not None
    return {"manifest": result.data["manifest"], "metrics": result.metrics}


def test_unreadable_files_are_kept_aside_and_reported(
    outcomes: dict[str, AnalysisJob], bad_settings: Settings
) -> None:
    fetched = _fetch_data(bad_settings, outcomes["truncated_header"])
    assert fetched["metrics"]["corrupt_instances"] == 1
    assert any("corrupt instance" in p for p in fetched["manifest"]["problems"])
    pixels = _fetch_data(bad_settings, outcomes["truncated_pixels"])["manifest"]
    flair = next(s for s in pixels["series"] if s["series_description"] == "Ax T2 FLAIR ASSET")
    assert flair["complete"] is False


def test_duplicate_sop_instance_uids_are_stored_once(
    outcomes: dict[str, AnalysisJob], bad_settings: Settings
) -> None:
    fetched = _fetch_data(bad_settings, outcomes["duplicate_sop"])
    assert fetched["metrics"]["duplicates_ignored"] == 1
    t2 = next(s for s in fetched["manifest"]["series"] if s["series_description"] == "Ax T2 PROP")
    assert len(t2["instances"]) == len({i["sop_instance_uid"] for i in t2["instances"]})


def test_non_ascii_and_malicious_descriptions_survive_unchanged(
    outcomes: dict[str, AnalysisJob],
) -> None:
    described = {s["role"]: s["description"] for s in outcomes["non_ascii"].status.selected_series}
    assert described["t2"] == "Ax T2 PROP 横断 T2強調"
    assert described["t1"] == "Sag 3D FSPGR BRAVO Т1 сагиттальный"
    latin = {s["role"]: s["description"] for s in outcomes["latin1"].status.selected_series}
    assert latin["t2"] == "Ax T2 PROP Schädel"
    evil = {s["role"]: s["description"] for s in outcomes["malicious"].status.selected_series}
    assert evil["t1c"].startswith("sag 3d fspgr post <script>")


def test_the_malicious_description_is_escaped_in_the_web_ui(
    outcomes: dict[str, AnalysisJob], bad_settings: Settings, tmp_path: Path
) -> None:
    from radpipe.web.app import create_app

    bad_settings.web.users_file = write_users(tmp_path / "users.yaml")
    uid = outcomes["malicious"].uid
    with TestClient(create_app(bad_settings)) as client:
        sign_in(client, "rita")
        page = client.get(f"/jobs/{uid}")
        assert page.status_code == 200
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;alert(" in page.text
        listing = client.get("/jobs")
        assert "<script>alert" not in listing.text
        api = client.get(f"/api/v1/jobs/{uid}").json()
        described = [s["description"] for s in api["status"]["selectedSeries"]]
        assert any(MALICIOUS[:20] in d for d in described)  # JSON carries the data as it is


REFERENCE = "latin1"  # same pixels as the base study, uncompressed


def _read(folder: Path, role: str) -> np.ndarray:
    return read_pixels(stack_geometry(read_headers(dicom_files(folder)), role))


@pytest.mark.parametrize("case", ["jpeg2000", "jpegls"])
def test_compressed_series_decode_to_the_same_pixels(bad_corpus: Path, case: str) -> None:
    decoded = _read(bad_corpus / case / T1C, "t1c")
    assert np.array_equal(decoded, _read(bad_corpus / REFERENCE / T1C, "t1c"))


READER_REFUSALS = [
    ("undecodable", T1C, "MPEG2"),
    ("no_pixels", T1C, "no 'pixel data'"),
    ("geometry_mixed", T1, "mixes 2 orientations"),
    ("geometry_missing", T1, "lacks imageorientationpatient"),
]


@pytest.mark.parametrize(("case", "series", "words"), READER_REFUSALS)
def test_unusable_series_are_refused_by_the_readers_with_a_reason(
    bad_corpus: Path, case: str, series: str, words: str
) -> None:
    with pytest.raises(UnusableSeries) as refused:
        _read(bad_corpus / case / series, "t1c")
    assert words.lower() in refused.value.message.lower()
    assert refused.value.hint


def test_a_series_with_no_instances_is_classified_not_crashed(bad_settings: Settings) -> None:
    from radpipe.series.features import study_features
    from radpipe.stages.classify import read_series_header

    store = LocalRunner(bad_settings).store
    entry = {
        "series_instance_uid": "1.2.826.0.1.3680043.8.498.1",
        "series_number": 7,
        "series_description": "empty",
        "modality": "MR",
        "instance_count": 0,
        "instances": [],
    }
    header = read_series_header(store, entry)
    assert header.uid == entry["series_instance_uid"] and header.description == "empty"
    rows = study_features([header])
    assert len(rows) == 1


@pytest.fixture
def orthanc_with_non_ascii(
    orthanc: OrthancServer, bad_corpus: Path
) -> Iterator[tuple[OrthancServer, str]]:
    folder = bad_corpus / "non_ascii"
    orthanc.upload(p for s in (T1, T1C, T2, FLAIR) for p in sorted((folder / s).glob("*.dcm")))
    yield orthanc, "BAD-NONASCII"


def test_non_ascii_study_through_a_real_pacs(
    orthanc_with_non_ascii: tuple[OrthancServer, str], bad_settings: Settings, tmp_path: Path
) -> None:
    server, accession = orthanc_with_non_ascii
    settings = bad_settings.model_copy(deep=True)
    settings.data_dir = tmp_path / "data"
    settings.store.root = tmp_path / "store"
    settings.pacs = {"orthanc": server.dimse_node()}
    runner = LocalRunner(settings)
    job = runner.submit(JobSpec(accession=accession, app="badin", source={"pacs": "orthanc"}))
    job = runner.run(job.metadata.name)
    assert job.status.phase.value == "Succeeded", job.status.message
    described = {s["role"]: s["description"] for s in job.status.selected_series}
    assert described["flair"] == "Ax T2 FLAIR ASSET — αξονική"
