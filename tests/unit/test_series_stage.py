"""The classify stage: reads the fetch manifest, records classes and roles, fails clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydicom.filebase import DicomBytesIO

from radpipe.api.apps import get_app
from radpipe.api.models import AnalysisJob, JobSpec, ObjectMeta
from radpipe.config import Settings
from radpipe.pipeline.contract import StageResult, result_key, stage_prefix
from radpipe.pipeline.executor import execute_stage
from radpipe.pipeline.registry import get_stage
from radpipe.stages.classify import ClassifyStage
from radpipe.store import ArtifactStore, LocalStore
from tests.unit.test_series_cli import ROUTINE, instance, make_headers


def _fake_fetch(store: ArtifactStore, uid: str, series: list[dict[str, Any]]) -> None:
    """What the fetch stage leaves: instances in the store and a manifest in result.json."""
    prefix = stage_prefix(uid, "fetch")
    entries = []
    for headers in series:
        keys = []
        for n in (1, 2, 3):
            buffer = DicomBytesIO()
            instance(headers, n).save_as(buffer, enforce_file_format=True)
            key = f"{prefix}instances/{headers['SeriesInstanceUID']}/{n}.dcm"
            store.put_bytes(key, buffer.getvalue())
            keys.append({"key": key, "instance_number": n})
        entries.append(
            {
                "series_instance_uid": headers["SeriesInstanceUID"],
                "series_number": headers["SeriesNumber"],
                "series_description": headers["SeriesDescription"],
                "modality": "MR",
                "instance_count": 3,
                "complete": True,
                "headers": {"Modality": "MR"},
                "instances": keys,
            }
        )
    manifest = {"study_instance_uid": series[0]["StudyInstanceUID"], "series": entries}
    result = StageResult(
        job=uid, stage="fetch", state="succeeded", attempt=1, data={"manifest": manifest}
    )
    store.put_json(result_key(uid, "fetch"), result.model_dump(mode="json"))


def _job(uid: str, app: str) -> AnalysisJob:
    return AnalysisJob(
        metadata=ObjectMeta(name=uid, uid=uid), spec=JobSpec(accession="A1", app=app)
    )


def _store(settings: Settings) -> LocalStore:
    assert settings.store.root is not None
    return LocalStore(Path(settings.store.root))


def test_the_stage_is_registered() -> None:
    assert get_stage("classify") is ClassifyStage
    assert ClassifyStage.requires == ("fetch",)


def test_classify_records_every_series_and_the_chosen_roles(settings: Settings) -> None:
    store = _store(settings)
    series = make_headers(ROUTINE, seed=21, vendor="ge")
    _fake_fetch(store, "job-1", series)
    app = get_app("glioma").spec
    run = execute_stage(_job("job-1", "glioma"), app, "classify", store, settings)
    assert run.result.complete, run.result.message
    data = run.result.data
    truth = {s["SeriesInstanceUID"]: s["class"] for s in series}
    assert len(data["series"]) == len(series)
    assert all(truth[s["seriesInstanceUID"]] == s["class"] for s in data["series"])
    assert {s["role"] for s in data["selectedSeries"]} == {"t1", "t1c", "t2", "flair"}
    for chosen in data["selectedSeries"]:
        assert truth[chosen["seriesInstanceUID"]] == chosen["role"]
        assert chosen["probability"] >= 0.8 and chosen["reason"]
        assert data["roles"][chosen["role"]] == chosen["seriesInstanceUID"]
    assert data["modelVersions"]["series-classifier"]
    assert run.result.provenance["selected_series"] == data["roles"]
    assert store.exists(stage_prefix("job-1", "classify") + "classification.json")


def test_a_missing_contrast_fails_at_classify_naming_it_and_the_candidates(
    settings: Settings,
) -> None:
    store = _store(settings)
    series = make_headers(("localizer", "t1", "t2", "dwi", "t1c"), seed=22, vendor="siemens")
    _fake_fetch(store, "job-2", series)
    app = get_app("glioma").spec
    run = execute_stage(_job("job-2", "glioma"), app, "classify", store, settings)
    assert run.result.state == "failed" and not run.result.retryable
    message = run.result.message or ""
    assert "missing required series: FLAIR (flair)" in message
    t2 = next(s for s in series if s["class"] == "t2")
    assert f"series {t2['SeriesNumber']}" in message  # the nearest candidate, with its class
    assert "Series in the study" in message  # the hint lists what is there
    document = store.get_json(stage_prefix("job-2", "classify") + "classification.json")
    assert document["roles"]["flair"] is None and document["ok"] is False


def test_incomplete_series_are_left_out_and_said_so(settings: Settings) -> None:
    store = _store(settings)
    series = make_headers(ROUTINE, seed=23, vendor="philips")
    _fake_fetch(store, "job-3", series)
    fetch = store.get_json(result_key("job-3", "fetch"))
    flair = next(e for e in fetch["data"]["manifest"]["series"] if e["series_number"] == 4)
    flair["complete"] = False
    store.put_json(result_key("job-3", "fetch"), fetch)
    run = execute_stage(
        _job("job-3", "glioma"), get_app("glioma").spec, "classify", store, settings
    )
    assert run.result.state == "failed"
    assert "FLAIR" in (run.result.message or "")
    assert "left out as incomplete: series 4" in (run.result.message or "")
