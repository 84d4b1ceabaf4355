"""The fetch stage, run the way the runner runs it, against a real Orthanc."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from radpipe.api.models import AnalysisJob, JobSpec
from radpipe.config import PacsNodeConfig, Settings
from radpipe.local.runner import LocalRunner
from radpipe.pipeline.contract import StageResult
from radpipe.pipeline.executor import execute_stage
from tests.fixtures.dicom_studies import add_odd_instance, make_study, truncate_pixels
from tests.fixtures.pacs import OrthancServer

pytestmark = pytest.mark.integration


def _accession() -> str:
    return "F" + uuid.uuid4().hex[:10].upper()


def _fetch(
    tmp_path: Path, node: PacsNodeConfig, accession: str, app: str = "glioma", **spec: object
) -> tuple[LocalRunner, AnalysisJob, StageResult]:
    settings = Settings(data_dir=tmp_path / "data", pacs={"hospital": node})
    runner = LocalRunner(settings)
    job = runner.submit(JobSpec.model_validate({"accession": accession, "app": app, **spec}))
    run = execute_stage(job, runner.apps()[app].spec, "fetch", runner.store, settings)
    return runner, job, run.result


@pytest.mark.parametrize("method", ["c-get", "c-move", "wado"])
def test_fetch_writes_instances_and_manifest(
    orthanc: OrthancServer, tmp_path: Path, method: str
) -> None:
    study = make_study(tmp_path / "s", accession=_accession(), series=(("T1", 3), ("FLAIR", 2)))
    orthanc.upload(study.files)
    node = orthanc.dicomweb_node() if method == "wado" else orthanc.dimse_node(retrieve=method)
    runner, job, result = _fetch(tmp_path, node, study.accession)
    assert result.state == "succeeded", result.message
    manifest = result.data["manifest"]
    assert manifest["study_instance_uid"] == study.study_uid
    assert manifest["source"]["method"] == method
    assert manifest["instance_count"] == 5 and manifest["problems"] == []
    assert [
        (s["series_description"], s["instance_count"], s["complete"]) for s in manifest["series"]
    ] == [("T1", 3, True), ("FLAIR", 2, True)]
    t1 = manifest["series"][0]
    assert t1["headers"]["Modality"] == "MR" and t1["headers"]["Rows"] == 16
    assert [i["instance_number"] for i in t1["instances"]] == [1, 2, 3]
    for item in t1["instances"]:
        assert runner.store.exists(item["key"])  # keys are full store keys
        assert item["key"].startswith(
            f"jobs/{job.uid}/fetch/instances/{t1['series_instance_uid']}/"
        )
    assert runner.store.get_json(f"jobs/{job.uid}/fetch/manifest.json") == manifest
    assert "manifest.json" in result.outputs
    assert result.metrics["instances"] == 5
    assert "PatientName" not in str(manifest) and "Test^Patient" not in str(manifest)


def test_unknown_accession_fails_for_good(orthanc: OrthancServer, tmp_path: Path) -> None:
    _, _, result = _fetch(tmp_path, orthanc.dimse_node(), "UNKNOWN-1")
    assert result.state == "failed" and not result.retryable
    assert "no study with the job's accession number" in (result.message or "")
    assert "UNKNOWN-1" not in (result.message or "")  # messages reach logs: hash only


def test_duplicate_accession(orthanc: OrthancServer, tmp_path: Path) -> None:
    accession = _accession()
    mr = make_study(tmp_path / "mr", accession=accession, series=(("T1", 2),))
    ct = make_study(tmp_path / "ct", accession=accession, modality="CT", series=(("HEAD", 2),))
    orthanc.upload(mr.files + ct.files)
    # the app's modality decides between an MR and a CT study
    _, _, result = _fetch(tmp_path / "a", orthanc.dimse_node(), accession, app="hemorrhage")
    assert result.state == "succeeded", result.message
    assert result.data["manifest"]["study_instance_uid"] == ct.study_uid
    # two MR studies: fail, listing both
    mr2 = make_study(tmp_path / "mr2", accession=accession, series=(("T2", 1),))
    orthanc.upload(mr2.files)
    _, _, result = _fetch(tmp_path / "b", orthanc.dimse_node(), accession)
    assert result.state == "failed" and not result.retryable
    message = result.message or ""
    assert mr.study_uid in message and mr2.study_uid in message and ct.study_uid in message
    assert "StudyInstanceUID" in message
    # naming the study by UID settles it
    _, _, result = _fetch(
        tmp_path / "c", orthanc.dimse_node(), accession, studyInstanceUID=mr2.study_uid
    )
    assert result.state == "succeeded"
    assert result.data["manifest"]["instance_count"] == 1


def test_pacs_down_is_retryable(tmp_path: Path) -> None:
    stopped = OrthancServer(tmp_path / "stopped")  # configured, never started
    _, _, result = _fetch(tmp_path, stopped.dimse_node(), _accession())
    assert result.state == "failed" and result.retryable
    assert "cannot open an association" in (result.message or "")


def test_corrupt_instance_is_reported_not_fatal(orthanc: OrthancServer, tmp_path: Path) -> None:
    study = make_study(tmp_path / "s", accession=_accession(), series=(("T1", 3), ("T2", 2)))
    truncate_pixels(study.by_series[study.series_uids[1]][0])
    orthanc.upload(study.files)
    runner, _, result = _fetch(tmp_path, orthanc.dimse_node(), study.accession)
    assert result.state == "succeeded", result.message
    manifest = result.data["manifest"]
    t1, t2 = manifest["series"]
    assert t1["complete"] and not t2["complete"]
    assert t2["corrupt_count"] == 1 and t2["instance_count"] == 1
    assert "pixel data truncated" in t2["corrupt"][0]["reason"]
    assert runner.store.exists(t2["corrupt"][0]["key"])
    assert len(manifest["problems"]) == 1 and "corrupt instance" in (result.message or "")


def test_incomplete_series_is_retryable_and_named(orthanc: OrthancServer, tmp_path: Path) -> None:
    study = make_study(tmp_path / "s", accession=_accession(), series=(("T1", 2), ("T2", 2)))
    add_odd_instance(study, tmp_path / "s", series_index=1)
    orthanc.upload(study.files)
    node = orthanc.dimse_node(retrieve="c-get", retrieve_attempts=2)
    _, _, result = _fetch(tmp_path, node, study.accession)
    assert result.state == "failed" and result.retryable
    assert f"series 2 'T2' ({study.series_uids[1]}) is incomplete: 2 of 3" in (result.message or "")


def test_association_rejected_fails_with_the_fix(orthanc: OrthancServer, tmp_path: Path) -> None:
    _, _, result = _fetch(tmp_path, orthanc.dimse_node(ae_title="WRONG-AET"), _accession())
    assert result.state == "failed" and not result.retryable
    message = result.message or ""
    assert "rejected the C-FIND association" in message and "ae_title ('WRONG-AET')" in message


def test_results_already_in_the_study_are_left_on_the_pacs(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    """A study holding an earlier run's SEG (or SR, PDF) is fetched without it."""
    from pydicom.uid import generate_uid

    from tests.fixtures.dicom_studies import make_instance

    study = make_study(tmp_path / "s", accession=_accession(), series=(("T1", 3), ("FLAIR", 2)))
    seg = make_instance(
        study.study_uid,
        generate_uid(),
        accession=study.accession,
        modality="SEG",
        series_number=9001,
        description="radpipe glioma segmentation",
        number=1,
        sop_class="1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
    )
    seg_path = tmp_path / "seg.dcm"
    seg.save_as(seg_path, enforce_file_format=True)
    orthanc.upload([*study.files, seg_path])
    _, _, result = _fetch(tmp_path, orthanc.dimse_node(retrieve="c-get"), study.accession)
    assert result.state == "succeeded", result.message
    manifest = result.data["manifest"]
    assert [s["series_description"] for s in manifest["series"]] == ["T1", "FLAIR"]
    assert manifest["instance_count"] == 5
    assert result.metrics["non_image_series_skipped"] == 1
