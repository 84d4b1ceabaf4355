"""``kubectl apply -f crds/examples/glioma.yaml`` → Succeeded, results in status, and the
PDF, SEG and SR back in the PACS (a real Orthanc), through real stage Jobs.

The model runs in a local KServe ModelServer (``radpipe serve-models``) whose URL the test
writes into the ``glioma-unet`` InferenceService's status, as KServe would; the stage pods
find it there. Runs once every stage of the glioma app is registered (BUILTIN_STAGES).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from radpipe.api.apps import get_app
from radpipe.pipeline.registry import stage_names
from tests.fixtures.cluster import REPO, KubeCluster
from tests.fixtures.network import free_port, http_ok, wait_until
from tests.fixtures.pacs import OrthancServer

GLIOMA_STAGES = [stage.name for stage in get_app("glioma").spec.stages]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_every_glioma_stage_is_registered() -> None:
    """The example below runs every stage of the glioma app; none may be missing."""
    assert [name for name in GLIOMA_STAGES if name not in stage_names()] == []


def example() -> tuple[dict[str, Any], dict[str, Any]]:
    app, job = yaml.safe_load_all((REPO / "crds" / "examples" / "glioma.yaml").read_text())
    return app, job


@pytest.fixture
def model_server(tmp_path: Path) -> Any:
    port = free_port()
    log = open(tmp_path / "models.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "radpipe.cli",
            "serve-models",
            "--http-port",
            str(port),
            "--no-grpc",
            "--models",
            "glioma-unet",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/v2/health/ready"), 120, "models")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.timeout(900)
def test_the_glioma_example_runs_end_to_end(
    kube_cluster: KubeCluster, orthanc: OrthancServer, model_server: str, tmp_path: Path
) -> None:
    from radpipe.synth import generate_study

    plane = kube_cluster.plane
    _app, job = example()
    accession = job["spec"]["accession"]
    study = tmp_path / "study"
    generate_study("mr-glioma", study, seed=11, accession=accession)
    orthanc.upload(sorted(p for p in study.rglob("*.dcm")))
    node = orthanc.dimse_node().model_dump(mode="json", exclude_none=True)
    ns = kube_cluster.namespace("glioma", env={"RADPIPE_PACS": json.dumps({"hospital-pacs": node})})
    plane.apply(
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "glioma-unet", "namespace": ns},
            "spec": {
                "predictor": {
                    "model": {
                        "modelFormat": {"name": "onnx"},
                        "storageUri": "pvc://models/glioma-unet",
                    }
                }
            },
        }
    )
    status = {
        "url": model_server,
        "address": {"url": model_server},
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    plane.kubectl(
        "patch",
        "inferenceservice",
        "glioma-unet",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )

    plane.kubectl("apply", "-n", ns, "-f", str(REPO / "crds" / "examples" / "glioma.yaml"))
    name = job["metadata"]["name"]
    body = kube_cluster.wait_for_phase(ns, name, ("Succeeded", "Failed"), timeout=780)
    result = body["status"]
    assert result["phase"] == "Succeeded", json.dumps(result, indent=1)
    assert result["results"], "the results reach the AnalysisJob status"
    assert result["modelVersions"], "the model version is recorded"
    assert [s["state"] for s in result["stages"]] == ["Succeeded"] * len(GLIOMA_STAGES)
    # The infer pod called the model server it found in the InferenceService's status.
    from radpipe.store.s3 import S3Store
    from tests.fixtures.minio import ACCESS_KEY, SECRET_KEY

    store = S3Store(kube_cluster.minio.endpoint, "radpipe-cluster", ACCESS_KEY, SECRET_KEY)
    infer = store.get_json(f"jobs/{body['metadata']['uid']}/infer/result.json")
    assert [m["where"] for m in infer["provenance"]["models"]] == [model_server]
    # The SEG, the SR and the encapsulated PDF are in the PACS, in the study.
    studies = orthanc.post_json(
        "/tools/find", {"Level": "Series", "Expand": True, "Query": {"AccessionNumber": accession}}
    )
    modalities = {s["MainDicomTags"].get("Modality") for s in studies}
    assert {"SEG", "SR"} <= modalities and modalities & {"DOC", "OT"}, modalities
