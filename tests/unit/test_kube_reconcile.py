"""The operator's reconcile against an in-memory API server: every decision, fast.

The real API server, Job controller and stage pods are exercised by tests/cluster/; here
the stage Jobs are finished by hand and the stages' result.json files written by the real
executor (toy stages), so each rule of the reconcile is checked in milliseconds.
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import pytest

from radpipe.api.apps import get_app
from radpipe.api.models import AnalysisApp, AnalysisJob
from radpipe.config import Settings
from radpipe.kube import names
from radpipe.kube.cluster import Body, ClusterError, Conflict
from radpipe.kube.metrics import Metrics
from radpipe.kube.queue import Ledger
from radpipe.kube.reconcile import Operator, reconcile
from radpipe.kube.settings import OperatorSettings
from radpipe.pipeline.executor import execute_stage
from radpipe.store import LocalStore

NS = "radiology"
_uids = itertools.count(1)


class FakeCluster:
    """Just enough of an API server: objects as dicts, resourceVersions, 409s."""

    def __init__(self) -> None:
        self.jobs: dict[str, Body] = {}
        self.apps: dict[str, Body] = {}
        self.stage_jobs: dict[str, Body] = {}
        self.pods: dict[str, list[Body]] = {}
        self.events: list[tuple[str, str, str]] = []
        self.creates: list[str] = []
        self.deleted: list[str] = []
        self.status_patches = 0
        self.isvcs: dict[str, Body] = {}
        self.refuse = False
        self._rv = itertools.count(1)

    def add_job(self, name: str, spec: dict[str, Any], **meta: Any) -> None:
        self.jobs[name] = {
            "apiVersion": "radpipe.io/v1alpha1",
            "kind": "AnalysisJob",
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": f"uid-{next(_uids)}",
                "generation": 1,
                "resourceVersion": str(next(self._rv)),
                "creationTimestamp": f"2030-01-01T00:00:{len(self.jobs):02d}Z",
                **meta,
            },
            "spec": {"priority": "routine", **spec},
        }

    def add_app(self, app: AnalysisApp) -> None:
        self.apps[app.metadata.name] = app.wire()

    def get_analysis_job(self, namespace: str, name: str) -> Body | None:
        return copy.deepcopy(self.jobs.get(name))

    def list_analysis_jobs(self, namespace: str | None) -> list[Body]:
        return [copy.deepcopy(j) for j in self.jobs.values()]

    def patch_analysis_job_status(
        self, namespace: str, name: str, status: Body, resource_version: str | None
    ) -> Body:
        job = self.jobs[name]
        if resource_version and resource_version != job["metadata"]["resourceVersion"]:
            raise Conflict("conflict", 409)
        merged = dict(job.get("status", {}))
        for key, value in status.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        job["status"] = merged
        job["metadata"]["resourceVersion"] = str(next(self._rv))
        self.status_patches += 1
        return copy.deepcopy(job)

    def patch_analysis_job_annotations(
        self, namespace: str, name: str, annotations: dict[str, str | None]
    ) -> None:
        current = self.jobs[name]["metadata"].setdefault("annotations", {})
        for key, value in annotations.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        self.jobs[name]["metadata"]["resourceVersion"] = str(next(self._rv))

    def get_analysis_app(self, name: str) -> Body | None:
        return copy.deepcopy(self.apps.get(name))

    def get_stage_job(self, namespace: str, name: str) -> Body | None:
        return copy.deepcopy(self.stage_jobs.get(name))

    def create_stage_job(self, manifest: Body) -> tuple[Body, bool]:
        name = manifest["metadata"]["name"]
        if self.refuse:
            raise ClusterError("Job.batch is invalid: resources.limits: bad quantity", 422)
        if name in self.stage_jobs:
            return copy.deepcopy(self.stage_jobs[name]), False
        self.creates.append(name)
        self.stage_jobs[name] = copy.deepcopy(manifest) | {"status": {}}
        return copy.deepcopy(manifest), True

    def delete_stage_job(self, namespace: str, name: str) -> None:
        self.deleted.append(name)
        self.stage_jobs.pop(name, None)

    def list_pods(self, namespace: str, selector: str) -> list[Body]:
        return self.pods.get(selector.split("=", 1)[1], [])

    def pod_log(self, namespace: str, pod: str, tail_lines: int) -> str | None:
        return None

    def post_event(self, obj: Body, type_: str, reason: str, message: str, component: str) -> None:
        self.events.append((obj["metadata"]["name"], reason, message))

    def get_inference_service(self, namespace: str, name: str) -> Body | None:
        return self.isvcs.get(name)

    # -- playing the Job controller ------------------------------------------------------

    def finish(self, job_name: str, ok: bool, exit_code: int = 1, log: str = "") -> None:
        kind = "Complete" if ok else "Failed"
        reason = None if ok else "BackoffLimitExceeded"
        self.stage_jobs[job_name]["status"] = {
            "conditions": [{"type": kind, "status": "True", "reason": reason}]
        }
        if not ok:
            terminated = {"exitCode": exit_code, "reason": "Error", "message": log}
            self.pods[job_name] = [
                {
                    "metadata": {"name": f"{job_name}-x", "creationTimestamp": "2030"},
                    "status": {
                        "containerStatuses": [
                            {"name": "stage", "state": {"terminated": terminated}}
                        ]
                    },
                }
            ]


@pytest.fixture
def world(toy_app: Settings, tmp_path: Path) -> tuple[Operator, FakeCluster, Settings]:
    cluster = FakeCluster()
    cluster.add_app(get_app("toy", toy_app.apps_dir))
    ledger = Ledger()
    op = Operator(
        cluster=cluster,
        store=LocalStore(tmp_path / "store"),
        settings=OperatorSettings(retry_backoff_seconds=0, metrics_port=None),
        metrics=Metrics(ledger),
        ledger=ledger,
    )
    requeued: list[tuple[str, str, float]] = []
    op.requeue = lambda ns, name, delay: requeued.append((ns, name, delay))
    return op, cluster, toy_app


def run_stage(op: Operator, cluster: FakeCluster, settings: Settings, name: str) -> str:
    """Play the stage pod: run the stage the job's running Job stands for, finish the Job."""
    body = cluster.jobs[name]
    job = AnalysisJob.model_validate(body)
    stage = job.status.active_stage
    assert stage is not None
    entry = job.status.stage(stage)
    app = AnalysisApp.model_validate(cluster.apps[job.spec.app])
    run = execute_stage(job, app.spec, stage, op.store, settings, attempt=entry.attempts)
    assert entry.pod_job is not None
    cluster.finish(entry.pod_job, run.result.complete or run.result.state == "held", log="boom")
    return entry.pod_job


def status(cluster: FakeCluster, name: str) -> dict[str, Any]:
    result: dict[str, Any] = cluster.jobs[name]["status"]
    return result


def test_a_new_job_gets_its_first_stage_job(world: Any) -> None:
    op, cluster, _ = world
    cluster.add_job("a1", {"accession": "ACC1", "app": "toy"})
    outcome = reconcile(op, NS, "a1")
    assert outcome.phase and outcome.phase.value == "Running"
    st = status(cluster, "a1")
    assert st["activeStage"] == "toy-produce"
    assert [s["state"] for s in st["stages"]] == ["Running", "Pending"]
    assert cluster.creates == ["a1-toy-produce-1"]
    job = cluster.stage_jobs["a1-toy-produce-1"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == cluster.jobs["a1"]["metadata"]["uid"]
    assert job["metadata"]["labels"][names.LABEL_STAGE] == "toy-produce"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == [
        "radpipe",
        "stage",
        "run",
        "--job",
        f"{NS}/a1",
        "--stage",
        "toy-produce",
    ]
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 1800


def test_reconcile_is_idempotent(world: Any) -> None:
    op, cluster, _ = world
    cluster.add_job("a1", {"accession": "ACC1", "app": "toy"})
    reconcile(op, NS, "a1")
    patches = cluster.status_patches
    for _ in range(3):
        reconcile(op, NS, "a1")
    assert cluster.creates == ["a1-toy-produce-1"]
    assert cluster.status_patches == patches


def test_stages_run_in_order_to_success(world: Any) -> None:
    op, cluster, settings = world
    cluster.add_job("a1", {"accession": "ACC1", "app": "toy", "options": {"size": 300}})
    reconcile(op, NS, "a1")
    run_stage(op, cluster, settings, "a1")
    reconcile(op, NS, "a1")
    assert cluster.creates == ["a1-toy-produce-1", "a1-toy-consume-1"]
    run_stage(op, cluster, settings, "a1")
    outcome = reconcile(op, NS, "a1")
    assert outcome.phase and outcome.phase.value == "Succeeded"
    st = status(cluster, "a1")
    assert st["results"] == {"toyBytes": 300}
    assert "activeStage" not in st
    assert ("a1", "Succeeded", "all stages succeeded") in cluster.events


def test_a_lost_status_write_adopts_the_existing_job(world: Any) -> None:
    """The operator died after creating a Job but before writing status: no duplicate."""
    op, cluster, settings = world
    cluster.add_job("a1", {"accession": "ACC1", "app": "toy"})
    reconcile(op, NS, "a1")
    run_stage(op, cluster, settings, "a1")  # finished while the operator was away
    del cluster.jobs["a1"]["status"]
    reconcile(op, NS, "a1")
    assert cluster.creates == ["a1-toy-produce-1", "a1-toy-consume-1"]
    st = status(cluster, "a1")
    assert [s["state"] for s in st["stages"]] == ["Succeeded", "Running"]


def test_a_crashing_stage_is_retried_then_fails_with_its_log(world: Any) -> None:
    op, cluster, settings = world
    cluster.add_job("a1", {"accession": "ACC1", "app": "toy"})
    reconcile(op, NS, "a1")
    run_stage(op, cluster, settings, "a1")
    reconcile(op, NS, "a1")
    for attempt in (1, 2, 3):
        job_name = f"a1-toy-consume-{attempt}"
        cluster.finish(job_name, ok=False, exit_code=137, log="loading\nKilled: out of patience")
        reconcile(op, NS, "a1")
    st = status(cluster, "a1")
    assert st["phase"] == "Failed"
    consume = st["stages"][1]
    assert consume["attempts"] == 3
    assert "exited with code 137" in consume["message"]
    assert consume["lastLog"] == "loading\nKilled: out of patience"
    reasons = [reason for _, reason, _ in cluster.events]
    assert reasons.count("StageRetry") == 2 and reasons.count("StageFailed") == 1
    failed = next(m for _, r, m in cluster.events if r == "StageFailed")
    assert "stage toy-consume failed after 3 attempts" in failed and "out of patience" in failed


def test_a_hopeless_stage_failure_fails_at_once_with_the_stage_message(world: Any) -> None:
    op, cluster, settings = world
    cluster.add_job("a1", {"accession": "ACC1", "app": "toy", "options": {"failPermanent": True}})
    reconcile(op, NS, "a1")
    run_stage(op, cluster, settings, "a1")
    reconcile(op, NS, "a1")
    run_stage(op, cluster, settings, "a1")
    reconcile(op, NS, "a1")
    st = status(cluster, "a1")
    assert st["phase"] == "Failed"
    assert "the toy input is unusable" in st["message"]
    assert st["conditions"][0]["reason"] == "StageFailed"


def test_cancel_by_annotation_deletes_the_running_job(world: Any) -> None:
    op, cluster, _ = world
    cluster.add_job("a1", {"accession": "ACC1", "app": "toy"})
    reconcile(op, NS, "a1")
    cluster.patch_analysis_job_annotations(NS, "a1", {names.ANNOTATION_CANCEL: "true"})
    reconcile(op, NS, "a1")
    assert cluster.deleted == ["a1-toy-produce-1"]
    assert status(cluster, "a1")["phase"] == "Cancelled"


def test_cancel_by_spec_field(world: Any) -> None:
    op, cluster, _ = world
    cluster.add_job("a1", {"accession": "ACC1", "app": "toy", "cancel": True})
    reconcile(op, NS, "a1")
    assert status(cluster, "a1")["phase"] == "Cancelled"


def test_stat_jobs_start_before_routine_ones_at_the_limit(world: Any) -> None:
    op, cluster, settings = world
    op.settings.max_running_per_namespace = 1
    cluster.add_job("r1", {"accession": "R1", "app": "toy"})
    cluster.add_job("r2", {"accession": "R2", "app": "toy"})
    for name in ("r1", "r2"):
        reconcile(op, NS, name)
    cluster.add_job("s1", {"accession": "S1", "app": "toy", "priority": "stat"})
    reconcile(op, NS, "s1")
    assert cluster.creates == ["r1-toy-produce-1"]
    assert status(cluster, "s1")["conditions"][0]["type"] == "Queued"
    run_stage(op, cluster, settings, "r1")
    reconcile(op, NS, "r1")  # r1 wants its next stage, but s1 is first in line
    assert cluster.creates == ["r1-toy-produce-1"]
    reconcile(op, NS, "s1")
    reconcile(op, NS, "r2")
    assert cluster.creates == ["r1-toy-produce-1", "s1-toy-produce-1"]


def test_invalid_options_fail_the_job_with_the_reason(world: Any) -> None:
    op, cluster, _ = world
    cluster.add_job("a1", {"accession": "ACC1", "app": "toy", "options": {"size": -1}})
    reconcile(op, NS, "a1")
    st = status(cluster, "a1")
    assert st["phase"] == "Failed"
    assert st["conditions"][0]["reason"] == "InvalidOptions"
    assert "size" in st["message"]
    assert cluster.creates == []


def test_a_missing_app_keeps_the_job_pending_and_says_so(world: Any) -> None:
    op, cluster, _ = world
    cluster.add_job("a1", {"accession": "ACC1", "app": "nosuchapp"})
    outcome = reconcile(op, NS, "a1")
    assert outcome.requeue_after and outcome.requeue_after > 0
    st = status(cluster, "a1")
    assert st["phase"] == "Pending"
    assert "nosuchapp" in st["message"] and st["conditions"][0]["reason"] == "AppNotFound"


def test_a_job_deleted_by_hand_is_recreated(world: Any) -> None:
    op, cluster, _ = world
    cluster.add_job("a1", {"accession": "ACC1", "app": "toy"})
    reconcile(op, NS, "a1")
    del cluster.stage_jobs["a1-toy-produce-1"]
    reconcile(op, NS, "a1")
    assert cluster.creates == ["a1-toy-produce-1", "a1-toy-produce-1"]


def test_a_job_the_api_server_refuses_fails_the_analysis_job(world: Any) -> None:
    op, cluster, _ = world
    cluster.refuse = True
    cluster.add_job("a1", {"accession": "ACC1", "app": "toy"})
    reconcile(op, NS, "a1")
    st = status(cluster, "a1")
    assert st["phase"] == "Failed"
    assert "the API server refused the Job for stage toy-produce" in st["message"]
    assert "bad quantity" in st["message"]
