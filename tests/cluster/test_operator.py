"""The operator on a real control plane: real Jobs, real Job controller, real RBAC.

The stage pods are local processes started by tests/cluster/node_agent.py; artifacts go
through a real MinIO. The app is ``kubetoy`` (tests/cluster/stages.py), whose stages
behave as the job options say.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml

from tests.cluster.stages import KUBETOY_APP
from tests.fixtures.cluster import REPO, ControlPlane, KubeCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def kubetoy_job(name: str, **options: Any) -> dict[str, Any]:
    return {
        "apiVersion": "radpipe.io/v1alpha1",
        "kind": "AnalysisJob",
        "metadata": {"name": name},
        "spec": {"accession": "KT0001", "app": "kubetoy", "options": options},
    }


def stage_jobs(cluster: KubeCluster, namespace: str) -> list[str]:
    return sorted(j["metadata"]["name"] for j in cluster.plane.list("jobs", namespace))


def events(cluster: KubeCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.name={name}"
    found = cluster.plane.kubectl(
        "get", "events", "-n", namespace, "--field-selector", selector, "-o", "json"
    )
    items: list[dict[str, Any]] = json.loads(found.stdout)["items"]
    return items


def isvc(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "kubetoy-model",
            "namespace": namespace,
            "annotations": {"radpipe.io/model-version": "kubetoy-2030.1"},
        },
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "onnx"}, "storageUri": "pvc://models/kubetoy"}
            }
        },
    }


def test_a_job_runs_through_real_jobs_to_success_and_cleans_up(kube_cluster: KubeCluster) -> None:
    cluster, plane = kube_cluster, kube_cluster.plane
    ns = cluster.namespace("ok")
    plane.apply(isvc(ns))
    url = "http://127.0.0.1:18080"
    plane.kubectl(
        "patch",
        "inferenceservice",
        "kubetoy-model",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(
            {
                "status": {
                    "url": url,
                    "address": {"url": url},
                    "conditions": [{"type": "Ready", "status": "True"}],
                }
            }
        ),
    )
    plane.apply(kubetoy_job("kt1", size=2048), namespace=ns)
    body = cluster.wait_for_phase(ns, "kt1", ("Succeeded", "Failed"))
    status = body["status"]
    assert status["phase"] == "Succeeded", status
    assert status["results"]["toyBytes"] == 2048
    assert status["results"]["modelUrl"] == url  # the stage found it in the InferenceService
    assert [s["state"] for s in status["stages"]] == ["Succeeded", "Succeeded"]

    jobs = plane.list("jobs", ns)
    assert sorted(j["metadata"]["name"] for j in jobs) == ["kt1-kt-infer-1", "kt1-kt-produce-1"]
    for job in jobs:
        owner = job["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "AnalysisJob",
            "kt1",
            body["metadata"]["uid"],
        )
        pod = job["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "radpipe-stage-runner"
        assert pod["containers"][0]["command"][:4] == ["radpipe", "stage", "run", "--job"]

    table = plane.kubectl("get", "aj", "-n", ns).stdout
    assert table.split()[:6] == ["NAME", "PHASE", "STAGE", "APP", "ACCESSION", "AGE"]
    assert "Succeeded" in table and "kubetoy" in table and "KT0001" in table
    assert "Succeeded" in [e["reason"] for e in events(cluster, ns, "kt1")]

    metrics = cluster.operator.metrics()
    assert 'radpipe_stage_duration_seconds_count{app="kubetoy",outcome="succeeded"' in metrics
    assert "radpipe_analysisjobs{" in metrics and "radpipe_queue_depth{" in metrics

    # Deleting the AnalysisJob: the finalizer deletes its artifacts, GC its Jobs.
    from radpipe.store.s3 import S3Store
    from tests.fixtures.minio import ACCESS_KEY, SECRET_KEY

    store = S3Store(cluster.minio.endpoint, "radpipe-cluster", ACCESS_KEY, SECRET_KEY)
    prefix = f"jobs/{body['metadata']['uid']}/"
    assert store.list(prefix)
    plane.kubectl("delete", "analysisjob", "kt1", "-n", ns, "--timeout=60s")
    assert store.list(prefix) == []
    cluster.wait(lambda: stage_jobs(cluster, ns) == [], 60, "stage Jobs garbage-collected")


def test_a_stage_that_fails_twice_then_succeeds(kube_cluster: KubeCluster) -> None:
    cluster = kube_cluster
    ns = cluster.namespace("retry")
    cluster.plane.apply(kubetoy_job("kt2", failTimes=2), namespace=ns)
    status = cluster.wait_for_phase(ns, "kt2", ("Succeeded", "Failed"))["status"]
    assert status["phase"] == "Succeeded", status
    infer = status["stages"][1]
    assert infer["attempts"] == 3 and status["results"]["attempt"] == 3
    assert stage_jobs(cluster, ns) == [
        "kt2-kt-infer-1",
        "kt2-kt-infer-2",
        "kt2-kt-infer-3",
        "kt2-kt-produce-1",
    ]
    reasons = [e["reason"] for e in events(cluster, ns, "kt2")]
    assert reasons.count("StageRetry") == 2


def test_a_stage_that_always_fails_fails_the_job_readably(kube_cluster: KubeCluster) -> None:
    cluster = kube_cluster
    ns = cluster.namespace("fail")
    cluster.plane.apply(kubetoy_job("kt3", crash=True), namespace=ns)
    status = cluster.wait_for_phase(ns, "kt3", ("Succeeded", "Failed"))["status"]
    assert status["phase"] == "Failed"
    assert status["message"].startswith("stage kt-infer failed after 3 attempts: ")
    assert "exited with code 3" in status["message"]
    infer = status["stages"][1]
    assert "simulated out-of-memory" in infer["lastLog"]
    assert status["conditions"][0]["reason"] == "StageFailed"
    failed = [e for e in events(cluster, ns, "kt3") if e["reason"] == "StageFailed"]
    assert failed and "simulated out-of-memory" in failed[0]["message"]
    assert failed[0]["type"] == "Warning"


def test_a_hopeless_stage_error_fails_at_once(kube_cluster: KubeCluster) -> None:
    cluster = kube_cluster
    ns = cluster.namespace("hopeless")
    cluster.plane.apply(kubetoy_job("kt4", failPermanent=True), namespace=ns)
    status = cluster.wait_for_phase(ns, "kt4", ("Succeeded", "Failed"))["status"]
    assert status["phase"] == "Failed"
    assert "the toy study has no usable series" in status["message"]
    assert status["stages"][1]["attempts"] == 1


def test_operator_killed_mid_job_resumes_without_duplicates(kube_cluster: KubeCluster) -> None:
    cluster = kube_cluster
    ns = cluster.namespace("restart")
    cluster.plane.apply(kubetoy_job("kt5", sleepSeconds=4), namespace=ns)
    cluster.wait(lambda: "kt5-kt-infer-1" in stage_jobs(cluster, ns), 60, "infer Job created")
    cluster.operator.kill()
    try:
        # The stage finishes while nobody watches; then the operator comes back.
        cluster.wait(
            lambda: (
                (cluster.plane.get("job", "kt5-kt-infer-1", ns) or {})
                .get("status", {})
                .get("succeeded")
                == 1
            ),
            60,
            "infer Job finished with the operator down",
        )
    finally:
        cluster.operator.start()
    status = cluster.wait_for_phase(ns, "kt5", ("Succeeded", "Failed"))["status"]
    assert status["phase"] == "Succeeded", status
    assert stage_jobs(cluster, ns) == ["kt5-kt-infer-1", "kt5-kt-produce-1"]
    assert [s["attempts"] for s in status["stages"]] == [1, 1]


def test_cancel_by_annotation_stops_the_job(kube_cluster: KubeCluster) -> None:
    cluster = kube_cluster
    ns = cluster.namespace("cancel")
    cluster.plane.apply(kubetoy_job("kt6", sleepSeconds=60), namespace=ns)
    cluster.wait(lambda: "kt6-kt-infer-1" in stage_jobs(cluster, ns), 60, "infer Job created")
    cluster.plane.kubectl("annotate", "analysisjob", "kt6", "-n", ns, "radpipe.io/cancel=true")
    status = cluster.wait_for_phase(ns, "kt6", ("Cancelled",), timeout=30)["status"]
    assert status["stages"][1]["state"] == "Failed" and status["stages"][1]["message"] == (
        "cancelled"
    )
    cluster.wait(lambda: "kt6-kt-infer-1" not in stage_jobs(cluster, ns), 30, "running Job deleted")


BAD = [
    ({"accession": "not valid!", "app": "kubetoy"}, "accession must be 1-16 characters"),
    ({"accession": "A1", "app": "kubetoy", "priority": "asap"}, 'supported values: "stat"'),
    ({"accession": "A1"}, "spec.app: Required value"),
    ({"accession": "A1", "app": "Glioma_App"}, "app must be an AnalysisApp name"),
    ({"accession": "A1", "app": "kubetoy", "colour": "red"}, 'unknown field "spec.colour"'),
]


@pytest.mark.parametrize(("spec", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_manifests_are_refused_with_a_clear_message(
    control_plane: ControlPlane, spec: dict[str, Any], message: str
) -> None:
    manifest = {
        "apiVersion": "radpipe.io/v1alpha1",
        "kind": "AnalysisJob",
        "metadata": {"name": "bad", "namespace": "default"},
        "spec": spec,
    }
    result = control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_spec_is_immutable_but_cancel_is_not(control_plane: ControlPlane) -> None:
    plane = control_plane
    job = kubetoy_job("immutable")
    job["metadata"]["namespace"] = "default"
    plane.kubectl("create", "-f", "-", input=yaml.safe_dump(job))
    changed = plane.kubectl(
        "patch",
        "aj",
        "immutable",
        "--type=merge",
        "-p",
        '{"spec": {"accession": "OTHER"}}',
        check=False,
    )
    assert changed.returncode != 0 and "spec is immutable after creation" in changed.stderr
    plane.kubectl("patch", "aj", "immutable", "--type=merge", "-p", '{"spec": {"cancel": true}}')
    back = plane.kubectl(
        "patch", "aj", "immutable", "--type=merge", "-p", '{"spec": {"cancel": false}}', check=False
    )
    assert back.returncode != 0 and "cannot be resumed" in back.stderr
    plane.kubectl("delete", "aj", "immutable", "--wait=false")


def test_an_app_with_duplicate_stages_is_refused(control_plane: ControlPlane) -> None:
    app = json.loads(json.dumps(KUBETOY_APP))
    app["metadata"]["name"] = "dupe"
    app["spec"]["stages"].append({"name": "kt-produce"})
    result = control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(app), check=False)
    assert result.returncode != 0 and "Duplicate value" in result.stderr, result.stderr


def test_the_example_manifests_are_accepted(control_plane: ControlPlane) -> None:
    for path in sorted((REPO / "crds" / "examples").glob("*.yaml")):
        result = control_plane.kubectl(
            "apply", "--dry-run=server", "-n", "default", "-f", str(path), check=False
        )
        assert result.returncode == 0, f"{path.name}: {result.stderr}"


def test_the_operator_rbac_is_enough_and_no_more(kube_cluster: KubeCluster) -> None:
    """The stage account can read its job but not change it, nor touch Jobs or Secrets."""
    plane = kube_cluster.plane
    ns = kube_cluster.namespace("rbac")
    who = f"system:serviceaccount:{ns}:radpipe-stage-runner"

    def can(verb: str, resource: str) -> bool:
        out = plane.kubectl("auth", "can-i", verb, resource, "-n", ns, "--as", who, check=False)
        return out.stdout.strip() == "yes"

    assert can("get", "analysisjobs.radpipe.io") and can("get", "analysisapps.radpipe.io")
    assert not can("patch", "analysisjobs.radpipe.io")
    assert not can("create", "jobs.batch") and not can("get", "secrets")
    time.sleep(0)  # keep the namespace for inspection on failure
