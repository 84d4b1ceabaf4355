"""Accession in → PDF, SEG, SR in the PACS out, for every app, on the cluster-side parts.

Real Orthanc is the PACS (fetch by C-GET, delivery by C-STORE), a real MinIO holds the
artifacts, and a real KServe ModelServer (``radpipe serve-models``) serves the bundled
models over V2; the local runner drives the same stages the operator's Job pods run.
Each study is synthetic with known ground truth: the series chosen and the findings are
checked against it (glioma WT, TC and ET volumes within 10%, every hemorrhage subtype
detected, the metastasis count exact). tests/bench/bench_e2e_accuracy.py prints every finding
next to the truth.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from radpipe.api.models import JobSpec, Phase
from radpipe.config import ModelEndpointConfig, S3Config, Settings, StoreConfig
from radpipe.local.runner import LocalRunner
from radpipe.local.summary import job_document
from radpipe.pipeline.contract import read_result
from radpipe.results.synthetic import cached_study
from radpipe.serving.spec import default_models_dir
from radpipe.synth import StudyTruth
from tests.fixtures.minio import MinioServer
from tests.fixtures.model_server import SERVED_MODELS, ModelServerProcess
from tests.fixtures.pacs import OrthancServer

NODE = "orthanc"

#: (app, synthetic study kind, seed). Seeds are outside every training range.
CASES = [
    ("glioma", "mr-glioma", 9101),
    ("hemorrhage", "ct-hemorrhage", 9102),
    ("metastasis", "mr-metastasis", 9104),  # lesions 15.8, 14.0, 7.5 mm
]


@pytest.fixture(scope="module")
def full_model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServerProcess]:
    """The bundled models as shipped (full sliding-window patches), served by KServe."""
    root = tmp_path_factory.mktemp("e2e-model-server")
    server = ModelServerProcess(models_dir=default_models_dir(), log_path=root / "server.log")
    server.start(timeout=180)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def e2e_settings(
    tmp_path_factory: pytest.TempPathFactory,
    orthanc: OrthancServer,
    minio_server: MinioServer,
    full_model_server: ModelServerProcess,
) -> Settings:
    """Orthanc as the PACS, MinIO as the store, the KServe server for every model."""
    root = tmp_path_factory.mktemp("e2e")
    return Settings(
        data_dir=root / "data",
        store=StoreConfig(
            backend="s3",
            s3=S3Config(**minio_server.store_config(prefix=f"e2e-{os.urandom(3).hex()}")),
        ),
        pacs={NODE: orthanc.dimse_node()},
        default_pacs=NODE,
        models={
            "endpoints": {
                name: ModelEndpointConfig(url=full_model_server.url) for name in SERVED_MODELS
            }
        },
        runner={"retry_backoff_seconds": 1.0},
    )


def _run(
    app: str, kind: str, seed: int, settings: Settings, orthanc: OrthancServer
) -> tuple[dict[str, Any], StudyTruth, LocalRunner]:
    folder = cached_study(kind, seed, small=False)
    truth = StudyTruth.load(folder)
    orthanc.upload(sorted((folder / "dicom").rglob("*.dcm")))
    runner = LocalRunner(settings)
    job = runner.submit(
        JobSpec.model_validate(
            {"accession": truth.accession, "app": app, "delivery": {"pacs": [NODE]}}
        )
    )
    done = runner.run(job.uid)
    assert done.status.phase is Phase.SUCCEEDED, done.status.message
    return job_document(done, runner.store), truth, runner


def _findings(runner: LocalRunner, job: str) -> dict[str, Any]:
    result = read_result(runner.store, job, "postprocess")
    assert result is not None and result.complete
    return dict(result.data["findings"])


def _check_common(
    doc: dict[str, Any], truth: StudyTruth, orthanc: OrthancServer, tmp: Path
) -> None:
    """Right series chosen; PDF with the expected text; SEG/SR/PDF in Orthanc, valid."""
    classes = {s.series_instance_uid: s.series_class for s in truth.series}
    assert doc["selectedSeries"], "no series selected"
    for chosen in doc["selectedSeries"]:
        assert classes[chosen["seriesInstanceUID"]] == chosen["role"], chosen

    report_key = doc["report"]["key"]
    assert report_key.endswith("report.pdf")

    kinds = {o["kind"] for o in doc["dicomOutputs"]}
    assert {"sr", "pdf"} <= kinds, kinds
    for output in doc["dicomOutputs"]:
        assert output["deliveredTo"] == [NODE]
        found = orthanc.post_json(
            "/tools/find",
            {"Level": "Instance", "Query": {"SOPInstanceUID": output["sopInstanceUID"]}},
        )
        assert len(found) == 1, f"{output['kind']} not in Orthanc exactly once"
        with urllib.request.urlopen(f"{orthanc.url}/instances/{found[0]}/file") as answer:
            path = tmp / f"{output['kind']}.dcm"
            path.write_bytes(answer.read())
        checked = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        errors = [line for line in checked.stderr.splitlines() if line.startswith("Error")]
        assert not errors, f"{output['kind']}: {errors}"


def _pdf_text(runner: LocalRunner, doc: dict[str, Any], tmp: Path) -> str:
    pdf = tmp / "report.pdf"
    runner.store.get_file(doc["report"]["key"], pdf)
    return subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    for tool in ("dciodvfy", "pdftotext"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: `make test` installs it (scripts/debian-packages.txt)")


def test_glioma_accession_to_report(
    e2e_settings: Settings, orthanc: OrthancServer, tmp_path: Path
) -> None:
    app, kind, seed = CASES[0]
    doc, truth, runner = _run(app, kind, seed, e2e_settings, orthanc)
    _check_common(doc, truth, orthanc, tmp_path)
    assert "seg" in {o["kind"] for o in doc["dicomOutputs"]}
    volumes = doc["findings"]["volumesCm3"]
    assert set(volumes) >= {"ET", "NCR", "ED", "TC", "WT"}
    assert volumes["WT"] >= volumes["TC"] >= volumes["ET"] > 0
    # Accuracy against the ground truth: every BraTS region within 10%. TC and ET differ
    # only by the necrotic core, so they catch a model that calls necrosis enhancing tumour.
    for region in ("WT", "TC", "ET"):
        true = truth.volumes_cm3[region]
        assert abs(volumes[region] - true) <= 0.10 * true, (region, volumes[region], true)
    text = _pdf_text(runner, doc, tmp_path)
    assert truth.accession in text
    assert "Glioma" in text and "research" in text.lower()
    assert doc["modelVersions"], "the model version that made the result is recorded"


def test_hemorrhage_accession_to_report(
    e2e_settings: Settings, orthanc: OrthancServer, tmp_path: Path
) -> None:
    app, kind, seed = CASES[1]
    doc, truth, runner = _run(app, kind, seed, e2e_settings, orthanc)
    _check_common(doc, truth, orthanc, tmp_path)
    found = {f["code"]: f for f in _findings(runner, doc["job"])["findings"]}
    assert {"any", "epidural", "subdural", "subarachnoid"} <= set(found), set(found)
    # Accuracy against the ground truth: hemorrhage and every true subtype detected.
    assert truth.hemorrhage_subtypes, "the case has hemorrhage to find"
    for subtype in ["any", *truth.hemorrhage_subtypes]:
        assert found[subtype]["present"], f"{subtype} missed: p={found[subtype]['probability']}"
    text = _pdf_text(runner, doc, tmp_path)
    assert truth.accession in text and "hemorrhage" in text.lower()


def test_metastasis_accession_to_report(
    e2e_settings: Settings, orthanc: OrthancServer, tmp_path: Path
) -> None:
    app, kind, seed = CASES[2]
    doc, truth, runner = _run(app, kind, seed, e2e_settings, orthanc)
    _check_common(doc, truth, orthanc, tmp_path)
    assert isinstance(doc["findings"]["lesionCount"], int)
    # Accuracy against the ground truth: every lesion found, nothing else (all ≥ 5 mm here).
    assert doc["findings"]["lesionCount"] == len(truth.lesions) == 3
    text = _pdf_text(runner, doc, tmp_path)
    assert truth.accession in text and "metasta" in text.lower()
