"""Classify against a real PACS (Orthanc): ``radpipe classify ACCESSION`` and the stage
after a real fetch, with the selected series landing in the job status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from radpipe.api.models import JobSpec
from radpipe.cli import cli
from radpipe.config import Settings
from radpipe.local.runner import LocalRunner
from radpipe.synth import generate_study
from tests.fixtures.pacs import OrthancServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("pacs-study")
    truth = generate_study("mr-glioma", root, seed=8, vendor="ge", small=True)
    return root, truth


@pytest.fixture
def loaded(orthanc: OrthancServer, study: tuple[Path, Any]) -> Any:
    root, truth = study
    orthanc.upload(sorted((root / "dicom").rglob("*.dcm")))
    yield truth
    orthanc.delete_study(truth.study_instance_uid)


def _config(settings: Settings, orthanc: OrthancServer) -> Settings:
    node = orthanc.dimse_node().model_dump(mode="json", exclude_none=True)
    values = {"data_dir": str(settings.data_dir), "pacs": {"orthanc": node}}
    values["default_pacs"] = "orthanc"
    Path("radpipe.yaml").write_text(yaml.safe_dump(values))  # the test's own cwd
    return Settings(**values)


def test_classify_an_accession_fetched_from_the_pacs(
    settings: Settings, orthanc: OrthancServer, loaded: Any
) -> None:
    _config(settings, orthanc)
    result = CliRunner().invoke(
        cli, ["classify", loaded.accession, "--app", "glioma", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["studyInstanceUID"] == loaded.study_instance_uid
    classes = {s.series_instance_uid: s.series_class for s in loaded.series}
    assert {role: classes[uid] for role, uid in document["roles"].items()} == {
        "t1": "t1",
        "t1c": "t1c",
        "t2": "t2",
        "flair": "flair",
    }


def test_fetch_then_classify_puts_the_selected_series_in_the_job_status(
    settings: Settings, orthanc: OrthancServer, loaded: Any
) -> None:
    runner = LocalRunner(_config(settings, orthanc))
    job = runner.submit(
        JobSpec(accession=loaded.accession, app="glioma", source={"pacs": "orthanc"})
    )
    job, fetch = runner.run_stage(job.uid, "fetch")
    assert fetch.result.complete, fetch.result.message
    job, run = runner.run_stage(job.uid, "classify")
    assert run.result.complete, run.result.message
    classes = {s.series_instance_uid: s.series_class for s in loaded.series}
    selected = {s["role"]: s for s in job.status.selected_series}
    assert set(selected) == {"t1", "t1c", "t2", "flair"}
    for role, entry in selected.items():
        assert classes[entry["seriesInstanceUID"]] == role
        assert entry["reason"] and entry["probability"] >= 0.8
    assert job.status.model_versions["series-classifier"]
    assert len(run.result.data["series"]) == len(loaded.series)
