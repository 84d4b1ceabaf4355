"""The stage Job manifest and its deterministic name."""

from __future__ import annotations

from radpipe.api.apps import get_app
from radpipe.api.models import AnalysisJob
from radpipe.kube import names
from radpipe.kube.jobspec import build_stage_job
from radpipe.kube.settings import OperatorSettings


def job(name: str = "j1") -> AnalysisJob:
    return AnalysisJob.model_validate(
        {
            "metadata": {"name": name, "namespace": "rad", "uid": "1234-abcd"},
            "spec": {"accession": "A1", "app": "glioma", "priority": "stat"},
        }
    )


def test_infer_asks_for_the_gpu_the_app_names() -> None:
    app = get_app("glioma").spec
    manifest = build_stage_job(job(), app, "infer", 2, OperatorSettings())
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert {"name": "RADPIPE_STAGE_ATTEMPT", "value": "2"} in container["env"]
    assert container["envFrom"] == [{"secretRef": {"name": "radpipe-stage-env"}}]
    assert manifest["metadata"]["labels"][names.LABEL_PRIORITY] == "stat"
    pod = manifest["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "radpipe-stage-runner"
    fetch = build_stage_job(job(), app, "fetch", 1, OperatorSettings())
    assert fetch["spec"]["template"]["spec"]["containers"][0]["resources"] == {}


def test_job_names_are_deterministic_and_short() -> None:
    assert names.stage_job_name("j1", "u", "fetch", 1) == "j1-fetch-1"
    long = "x" * 80
    first = names.stage_job_name(long, "uid-1", "postprocess", 3)
    assert len(first) <= 63 and first.endswith("-postprocess-3")
    assert first == names.stage_job_name(long, "uid-1", "postprocess", 3)
    assert first != names.stage_job_name(long, "uid-2", "postprocess", 3)
