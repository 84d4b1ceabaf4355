"""Faults of the cluster tier on the real control plane (tests/fixtures/cluster.py): the
operator killed at each stage boundary, a stage pod killed, the node agent dropping a pod.

App ``faulttoy`` is kubetoy with a short stage timeout. For each fault: the AnalysisJob
ends Succeeded, no stage Job is created twice for one attempt, each stage completes once,
and its committed output matches the checksum its result.json records.
"""

from __future__ import annotations

import copy
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.stages import KUBETOY_APP
from tests.faults.conftest import FaultRow
from tests.fixtures.cluster import REPO, KubeCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAULTTOY_APP = copy.deepcopy(KUBETOY_APP)
FAULTTOY_APP["metadata"]["name"] = "faulttoy"
FAULTTOY_APP["spec"]["stages"] = [
    {"name": "kt-produce", "timeoutSeconds": 60},
    {"name": "kt-infer", "maxAttempts": 3, "timeoutSeconds": 12},
]


def faulttoy_job(name: str, **options: Any) -> dict[str, Any]:
    return {
        "apiVersion": "radpipe.io/v1alpha1",
        "kind": "AnalysisJob",
        "metadata": {"name": name},
        "spec": {"accession": "FT0001", "app": "faulttoy", "options": options},
    }


def stage_jobs(cluster: KubeCluster, namespace: str) -> list[str]:
    return sorted(j["metadata"]["name"] for j in cluster.plane.list("jobs", namespace))


def job_succeeded(cluster: KubeCluster, namespace: str, name: str) -> bool:
    found = cluster.plane.get("job", name, namespace) or {}
    return bool(found.get("status", {}).get("succeeded"))


def assert_outputs_intact(cluster: KubeCluster, body: dict[str, Any]) -> None:
    """kt-produce's data.bin and kt-infer's summary.json match their recorded checksums."""
    from radpipe.pipeline.contract import read_result
    from radpipe.store.s3 import S3Store
    from tests.fixtures.minio import ACCESS_KEY, SECRET_KEY

    store = S3Store(cluster.minio.endpoint, "radpipe-cluster", ACCESS_KEY, SECRET_KEY)
    uid = body["metadata"]["uid"]
    for stage in ("kt-produce", "kt-infer"):
        result = read_result(store, uid, stage)
        assert result is not None and result.complete, stage
        prefix = f"jobs/{uid}/{stage}/"
        for name, output in result.outputs.items():
            store.get_bytes(prefix + name, output["sha256"])
        assert {k[len(prefix) :] for k in store.list(prefix)} == {*result.outputs, "result.json"}


@pytest.fixture(scope="module")
def faulttoy(kube_cluster: KubeCluster) -> KubeCluster:
    kube_cluster.plane.apply(FAULTTOY_APP)
    return kube_cluster


BOUNDARIES = ["created", "produce-done", "infer-done"]


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_operator_killed_at_a_stage_boundary(
    faulttoy: KubeCluster, boundary: str, fault_table: list[FaultRow]
) -> None:
    cluster = faulttoy
    ns = cluster.namespace("opkill")
    name = "ft"
    cluster.plane.apply(faulttoy_job(name, sleepSeconds=2), namespace=ns)
    if boundary == "produce-done":
        cluster.wait(lambda: job_succeeded(cluster, ns, f"{name}-kt-produce-1"), 60, "produce")
    elif boundary == "infer-done":
        cluster.wait(lambda: f"{name}-kt-infer-1" in stage_jobs(cluster, ns), 60, "infer Job")
    cluster.operator.kill()
    killed = time.monotonic()
    try:
        if boundary == "infer-done":
            cluster.wait(lambda: job_succeeded(cluster, ns, f"{name}-kt-infer-1"), 60, "infer")
        else:
            time.sleep(1.0)
    finally:
        cluster.operator.start()
    body = cluster.wait_for_phase(ns, name, ("Succeeded", "Failed"))
    status = body["status"]
    assert status["phase"] == "Succeeded", status
    assert stage_jobs(cluster, ns) == [f"{name}-kt-infer-1", f"{name}-kt-produce-1"]
    assert [s["attempts"] for s in status["stages"]] == [1, 1]
    assert_outputs_intact(cluster, body)
    fault_table.append(
        FaultRow(f"operator SIGKILLed at boundary '{boundary}'", "Succeeded",
                 time.monotonic() - killed, "one Job per stage, attempts [1, 1]")
    )  # fmt: skip


def _pod_processes(cluster: KubeCluster, namespace: str, job_name: str) -> list[int]:
    """PIDs of the local processes running the pod of stage Job ``job_name``."""
    pods = cluster.plane.list("pods", namespace, f"job-name={job_name}")
    if not pods:
        return []
    command = pods[0]["spec"]["containers"][0]["command"][1:]
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "tests.cluster.stage_shim" in argv and all(part in argv for part in command):
            found.append(int(proc.name))
    return found


def test_a_stage_pod_killed_is_retried(faulttoy: KubeCluster, fault_table: list[FaultRow]) -> None:
    cluster = faulttoy
    ns = cluster.namespace("podkill")
    cluster.plane.apply(faulttoy_job("fp", sleepSeconds=4), namespace=ns)
    pids: list[int] = []
    cluster.wait(
        lambda: bool(pids.extend(_pod_processes(cluster, ns, "fp-kt-infer-1")) or pids),
        60,
        "the infer pod's process",
    )
    for pid in pids:
        os.kill(pid, signal.SIGKILL)  # as the OOM killer would
    killed = time.monotonic()
    status = cluster.wait_for_phase(ns, "fp", ("Succeeded", "Failed"))["status"]
    assert status["phase"] == "Succeeded", status
    infer = status["stages"][1]
    assert infer["attempts"] == 2
    assert stage_jobs(cluster, ns) == ["fp-kt-infer-1", "fp-kt-infer-2", "fp-kt-produce-1"]
    assert status["results"]["attempt"] == 2
    fault_table.append(
        FaultRow("stage pod SIGKILLed mid-stage", "Succeeded", time.monotonic() - killed,
                 "infer attempts 2")
    )  # fmt: skip


def _node_agent_argv(cluster: KubeCluster) -> list[str]:
    plane = cluster.plane
    return [
        sys.executable, "-m", "tests.cluster.node_agent",
        "--kubeconfig", str(plane.admin_kubeconfig),
        "--workdir", str(plane.workdir / "node"),
        "--entrypoint", f"radpipe={sys.executable} -m tests.cluster.stage_shim",
        "--max-running", "24",
    ]  # fmt: skip


def test_the_node_agent_dropping_a_pod(faulttoy: KubeCluster, fault_table: list[FaultRow]) -> None:
    """The node goes away with a running pod: no process, no status report. The stage's
    deadline fails that attempt; the retry runs when the node is back."""
    cluster, plane = faulttoy, faulttoy.plane
    ns = cluster.namespace("nodedrop")
    plane.apply(faulttoy_job("fn", sleepSeconds=4), namespace=ns)
    pids: list[int] = []
    cluster.wait(
        lambda: bool(pids.extend(_pod_processes(cluster, ns, "fn-kt-infer-1")) or pids),
        60,
        "the infer pod's process",
    )
    agent = plane.processes["node-agent"]
    agent.kill()
    agent.wait()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    dropped = time.monotonic()
    try:
        # The pod stays "Running" in the API with nothing behind it. Its Job's deadline
        # (12 s) passes while the node is away; a pod bound to a node is only removed once
        # that node confirms, as with a real kubelet.
        time.sleep(15)
    finally:
        plane._spawn(
            "node-agent", _node_agent_argv(cluster), env=dict(os.environ, PYTHONPATH=str(REPO))
        )
    status = cluster.wait_for_phase(ns, "fn", ("Succeeded", "Failed"), timeout=120)["status"]
    assert status["phase"] == "Succeeded", status
    infer = status["stages"][1]
    # the result is the last attempt's, and that attempt's Job is the only one to succeed
    assert status["results"]["attempt"] == infer["attempts"]
    done = [j for j in stage_jobs(cluster, ns) if "kt-infer" in j and job_succeeded(cluster, ns, j)]
    assert done == [f"fn-kt-infer-{infer['attempts']}"], done
    fault_table.append(
        FaultRow("node agent dropped a running pod", "Succeeded", time.monotonic() - dropped,
                 f"node away 15 s; infer attempts {infer['attempts']}")
    )  # fmt: skip
