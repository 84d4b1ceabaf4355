"""The one idempotent reconcile of an AnalysisJob: observe, then take the next step.

Level-based, as Kubernetes' own controllers are: every call reads the AnalysisJob fresh
from the API server, the stage Job of the running attempt and the stage's ``result.json``
in the artifact store, folds what finished into the status with the state machine shared
with the local runner (:mod:`radpipe.pipeline.state`), then takes the single next step
(start the next stage's Job, wait for a retry, or finish). Nothing lives only in memory:
an operator restart is just another reconcile, and stage Job names are deterministic, so
a step taken twice creates nothing twice. The status is written through the status
subresource, only when it changed, with the resourceVersion read as precondition.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from pydantic import ValidationError

from radpipe.api.models import (
    AnalysisApp,
    AnalysisJob,
    Condition,
    JobStatus,
    Phase,
    StageState,
    StageStatus,
    utcnow,
)
from radpipe.kube import names
from radpipe.kube.cluster import Body, Cluster, ClusterError, Conflict
from radpipe.kube.jobspec import build_stage_job
from radpipe.kube.kserve import resolve_model
from radpipe.kube.metrics import Metrics
from radpipe.kube.observe import JobState, describe_failure, job_outcome, pod_failure, tail
from radpipe.kube.queue import PRIORITY_RANK, Entry, Ledger, Slot, entry_for
from radpipe.kube.settings import OperatorSettings
from radpipe.logs import accession_hash
from radpipe.pipeline.contract import StageResult, read_result
from radpipe.pipeline.state import (
    Finished,
    InvalidTransition,
    RetryPolicy,
    RunStage,
    WaitForRetry,
    mark_cancelled,
    mark_failed,
    mark_held,
    mark_started,
    mark_succeeded,
    new_status,
    next_step,
    release_hold,
)
from radpipe.store import ArtifactStore, StoreError

log = logging.getLogger(__name__)

COMPONENT = "radpipe-operator"
TRUTHY = ("1", "true", "yes", "y")
APP_MISSING_RETRY_SECONDS = 15.0


class TransientProblem(Exception):
    """Reconcile could not finish now; try again after ``delay`` seconds."""

    def __init__(self, message: str, delay: float = 5.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentProblem(Exception):
    """The AnalysisJob can never be reconciled as it is (its stored form is invalid)."""


class KeyedLocks:
    """One lock per AnalysisJob: its reconciles run one at a time in this process."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    @contextmanager
    def hold(self, namespace: str, name: str) -> Iterator[None]:
        """Hold the lock of one job."""
        with self._guard:
            lock = self._locks.setdefault((namespace, name), threading.Lock())
        with lock:
            yield

    def forget(self, namespace: str, name: str) -> None:
        """Drop the lock of a deleted job."""
        with self._guard:
            self._locks.pop((namespace, name), None)


class AppCache:
    """AnalysisApps as last seen (kept current by the AnalysisApp watch); misses GET."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._apps: dict[str, AnalysisApp] = {}
        self._lock = threading.Lock()

    def put(self, body: Body) -> None:
        """Record an AnalysisApp seen on the watch."""
        app = AnalysisApp.model_validate(body)
        with self._lock:
            self._apps[app.metadata.name] = app

    def drop(self, name: str) -> None:
        """An AnalysisApp was deleted."""
        with self._lock:
            self._apps.pop(name, None)

    def get(self, name: str) -> AnalysisApp | None:
        """The app, from the cache or the API server; None when it does not exist."""
        with self._lock:
            if name in self._apps:
                return self._apps[name]
        body = self._cluster.get_analysis_app(name)
        if body is None:
            return None
        self.put(body)
        with self._lock:
            return self._apps[name]


@dataclass
class Operator:
    """Everything a reconcile needs; one per operator process."""

    cluster: Cluster
    store: ArtifactStore
    settings: OperatorSettings
    metrics: Metrics
    ledger: Ledger = field(default_factory=Ledger)
    locks: KeyedLocks = field(default_factory=KeyedLocks)
    #: Asks for another reconcile of (namespace, name) after a delay in seconds.
    requeue: Callable[[str, str, float], None] = lambda namespace, name, delay: None
    apps: AppCache = field(init=False)

    def __post_init__(self) -> None:
        self.apps = AppCache(self.cluster)

    @property
    def policy(self) -> RetryPolicy:
        """Retry budget and backoff of stages (an app's maxAttempts overrides the budget)."""
        return RetryPolicy(
            max_attempts=self.settings.max_attempts,
            backoff_seconds=self.settings.retry_backoff_seconds,
            max_backoff_seconds=self.settings.max_backoff_seconds,
        )


@dataclass
class Outcome:
    """What a reconcile left: the job's phase and when to look again (None: on events)."""

    phase: Phase | None
    requeue_after: float | None = None


@dataclass
class _Pass:
    """The working state of one reconcile pass."""

    job: AnalysisJob
    app: AnalysisApp
    body: Body
    status: JobStatus
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after: float | None = None
    slot: Slot = Slot.IDLE
    #: monotonic time at which this pass saw a stage Job finish (for the handoff metric)
    finished_seen: float | None = None

    @property
    def namespace(self) -> str:
        return self.job.metadata.namespace or "default"

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


def reconcile(op: Operator, namespace: str, name: str) -> Outcome:
    """Bring one AnalysisJob one step closer to done. Safe to call any time, any number
    of times, from any handler: it only acts on what it observes."""
    stop = op.metrics.timer()
    try:
        with op.locks.hold(namespace, name):
            for _ in range(4):
                try:
                    return _reconcile_once(op, namespace, name)
                except Conflict:
                    continue  # someone (kopf, a person) wrote the object meanwhile: re-read
            raise TransientProblem("the AnalysisJob kept changing while being reconciled", 1.0)
    except ClusterError as err:
        raise TransientProblem(str(err), 2.0 if err.retryable else 30.0) from err
    except StoreError as err:
        raise TransientProblem(f"artifact store: {err}", 5.0) from err
    finally:
        stop()


def _reconcile_once(op: Operator, namespace: str, name: str) -> Outcome:
    body = op.cluster.get_analysis_job(namespace, name)
    if body is None:
        op.ledger.forget(namespace, name)
        return Outcome(None)
    if body.get("metadata", {}).get("deletionTimestamp"):
        return Outcome(None)  # the finalizer handler cleans up
    try:
        job = AnalysisJob.model_validate(body)
    except ValidationError as err:
        raise PermanentProblem(f"AnalysisJob {namespace}/{name} cannot be read: {err}") from err
    _seed(op, namespace)
    before: Body = body.get("status") or {}
    app = op.apps.get(job.spec.app)
    if app is None:
        return _app_missing(op, job, body, before)

    run = _Pass(job=job, app=app, body=body, status=job.status.model_copy(deep=True))
    _drop_condition(run.status, "AppNotFound")
    if not run.status.stages and not run.status.phase.is_final:
        _start(run)
    annotations = job.metadata.annotations
    if not run.status.phase.is_final and (
        job.spec.cancel or annotations.get(names.ANNOTATION_CANCEL, "").lower() in TRUTHY
    ):
        _cancel(op, run)
    elif names.ANNOTATION_RELEASE in annotations:
        _release(op, run)

    for _ in range(3):
        if not _fold(op, run) or not _step(op, run):
            break  # loop only to fold a Job that was adopted already finished
    return _write(op, run, before)


def _seed(op: Operator, namespace: str) -> None:
    """Load the namespace's jobs into the ledger once, so the limit holds after restarts."""
    if op.ledger.seeded(namespace):
        return
    entries = []
    for item in op.cluster.list_analysis_jobs(namespace):
        try:
            other = AnalysisJob.model_validate(item)
        except ValidationError:
            continue
        created = item.get("metadata", {}).get("creationTimestamp") or ""
        entries.append((other.metadata.name, entry_for(other, created)))
    op.ledger.seed(namespace, entries)


def _app_missing(op: Operator, job: AnalysisJob, body: Body, before: Body) -> Outcome:
    status = job.status.model_copy(deep=True)
    if status.phase.is_final:
        return Outcome(status.phase)
    message = (
        f"AnalysisApp {job.spec.app!r} does not exist: apply it (kubectl get analysisapps "
        "lists the apps) and the job starts by itself"
    )
    status.message = message
    _set_condition(status, "AppNotFound", "True", "AppNotFound", message)
    _patch_status(op, body, status, before)
    return Outcome(status.phase, APP_MISSING_RETRY_SECONDS)


def _start(run: _Pass) -> None:
    """First sight of the job: check its options against the app, then lay out stages."""
    try:
        jsonschema.validate(run.job.spec.options, run.app.spec.options)
    except jsonschema.ValidationError as err:
        where = ".".join(str(p) for p in err.absolute_path) or "options"
        message = (
            f"invalid spec.options for app {run.app.metadata.name}: {where}: {err.message}; "
            "fix the options and create the job again"
        )
        now = utcnow()
        run.status = new_status(run.app.spec)
        for stage in run.status.stages:
            stage.state = StageState.SKIPPED
        run.status.phase = Phase.FAILED
        run.status.message = message
        run.status.finished_at = now
        run.status.conditions = [
            Condition(type="Failed", status="True", reason="InvalidOptions", message=message)
        ]
        run.event("Warning", "InvalidOptions", message)
        return
    run.status = new_status(run.app.spec)
    log.info(
        "new job app=%s %s priority=%s",
        run.job.spec.app,
        accession_hash(run.job.spec.accession),
        run.job.spec.priority.value,
        extra={"job": run.job.uid, "stage": "-"},
    )


def _cancel(op: Operator, run: _Pass) -> None:
    for stage in run.status.stages:
        if stage.state is StageState.RUNNING and stage.pod_job:
            op.cluster.delete_stage_job(run.namespace, stage.pod_job)
    run.status = mark_cancelled(run.status)
    run.event("Normal", "Cancelled", "cancelled on request; running stage Jobs deleted")


def _release(op: Operator, run: _Pass) -> None:
    """``radpipe.io/release`` on a held job lets its waiting stage run again."""
    if run.status.phase in (Phase.DELIVERY_PENDING, Phase.AWAITING_REVIEW):
        run.status = release_hold(run.status)
        run.event("Normal", "Released", "released; the waiting stage runs again")
    op.cluster.patch_analysis_job_annotations(
        run.namespace, run.job.metadata.name, {names.ANNOTATION_RELEASE: None}
    )


def _fold(op: Operator, run: _Pass) -> bool:
    """Fold finished stage Jobs into the status. True when the next step may be taken."""
    if run.status.phase.is_final:
        return False
    for stage in run.status.stages:
        if stage.state is not StageState.RUNNING:
            continue
        job_name = stage.pod_job or names.stage_job_name(
            run.job.metadata.name, run.job.uid, stage.name, stage.attempts
        )
        stage.pod_job = job_name
        body = op.cluster.get_stage_job(run.namespace, job_name)
        outcome = job_outcome(body)
        if outcome.state is JobState.MISSING:
            # Status says it runs but the Job is gone (deleted by hand, or the status was
            # written and the create lost): create that same attempt again.
            manifest = build_stage_job(
                run.job, run.app.spec, stage.name, stage.attempts, op.settings
            )
            op.cluster.create_stage_job(manifest)
            run.slot = Slot.RUNNING
            return False
        if outcome.state is JobState.RUNNING:
            run.slot = Slot.RUNNING
            return False
        run.finished_seen = time.monotonic()
        result = read_result(op.store, run.job.uid, stage.name)
        _finish_stage(op, run, stage, outcome.state, outcome, result)
        return True
    return True


def _finish_stage(
    op: Operator,
    run: _Pass,
    stage: StageStatus,
    state: JobState,
    outcome: Any,
    result: StageResult | None,
) -> None:
    name = stage.name
    app = run.app.metadata.name
    started = stage.started_at
    this_attempt = result is not None and result.attempt == stage.attempts
    if result is not None and result.complete:
        run.status = mark_succeeded(run.status, name, message=result.message)
        _lift_results(op, run, name, result)
        _observe_duration(op, app, name, started, "succeeded")
        return
    if result is not None and this_attempt and result.state == "held" and result.hold:
        run.status = mark_held(run.status, name, result.hold, result.message or "waiting")
        run.event("Normal", "Held", f"stage {name} waits: {result.message}")
        _observe_duration(op, app, name, started, "held")
        return
    pods = op.cluster.list_pods(run.namespace, f"batch.kubernetes.io/job-name={stage.pod_job}")
    pod = pod_failure(pods)
    log_text = pod.log_tail if pod is not None else None
    if not log_text and pods:
        pod_name = pods[-1].get("metadata", {}).get("name", "")
        log_text = op.cluster.pod_log(run.namespace, pod_name, op.settings.log_tail_lines)
    last_log = tail(log_text, op.settings.log_tail_lines)
    if state is JobState.SUCCEEDED:
        message, retryable = "the stage pod exited 0 but left no committed result.json", True
    elif result is not None and this_attempt and result.state == "failed":
        message, retryable = result.message or "failed", result.retryable
    else:
        timeout = run.app.spec.stage(name).timeout_seconds
        message, retryable = describe_failure(outcome, pod, timeout), True
    run.status = mark_failed(
        run.status, run.app.spec, name, message, retryable=retryable, policy=op.policy
    )
    run.status.stage(name).last_log = last_log
    _observe_duration(op, app, name, started, "failed")
    logs = f"\nlast log lines of {stage.pod_job}:\n{last_log}" if last_log else ""
    if run.status.phase is Phase.FAILED:
        run.event("Warning", "StageFailed", f"{run.status.message}{logs}")
    else:
        op.metrics.retries.labels(app, name).inc()
        run.event("Warning", "StageRetry", f"{run.status.message}{logs}")


def _observe_duration(op: Operator, app: str, stage: str, started: Any, outcome: str) -> None:
    if started is not None:
        seconds = max(0.0, (utcnow() - started).total_seconds())
        op.metrics.stage_seconds.labels(app, stage, outcome).observe(seconds)


def _lift_results(op: Operator, run: _Pass, stage: str, result: StageResult) -> None:
    """Copy what people look at (selected series, results, model versions) into status."""
    data = result.data
    status = run.status
    if "selectedSeries" in data:
        status.selected_series = list(data["selectedSeries"])
    if "results" in data:
        status.results.update(data["results"])
    if "modelVersions" in data:
        status.model_versions.update({k: str(v) for k, v in data["modelVersions"].items()})
    if stage == "infer":
        for ref in run.app.spec.models:
            if ref.inference_service in status.model_versions:
                continue
            try:
                model = resolve_model(op.cluster, run.namespace, ref.inference_service)
            except ClusterError as err:
                log.warning("cannot record model version of %s: %s", ref.inference_service, err)
                continue
            if model is not None and model.version:
                status.model_versions[ref.inference_service] = model.version


def _step(op: Operator, run: _Pass) -> bool:
    """Take the next step. True when it adopted a Job that already finished (fold again)."""
    step = next_step(run.status, run.app.spec, op.policy)
    if isinstance(step, Finished):
        if run.status.phase is not step.phase:
            run.status.phase = step.phase
            run.status.finished_at = run.status.finished_at or utcnow()
        if step.phase is Phase.SUCCEEDED:
            run.event("Normal", "Succeeded", "all stages succeeded")
        return False
    if isinstance(step, WaitForRetry):
        run.requeue_after = max(0.05, (step.not_before - utcnow()).total_seconds())
        return False
    if not isinstance(step, RunStage):
        run.slot = Slot.RUNNING  # WaitForStage: a stage Job is out there
        return False
    entry = Entry(
        PRIORITY_RANK[run.job.spec.priority],
        run.body.get("metadata", {}).get("creationTimestamp") or "",
        Slot.WAITING,
        run.status.phase,
    )
    limit = op.settings.limit_for(run.namespace)
    admitted, _ahead = op.ledger.admit(run.namespace, run.job.metadata.name, entry, limit)
    if not admitted:
        run.slot = Slot.WAITING
        _set_condition(
            run.status,
            "Queued",
            "True",
            "ConcurrencyLimit",
            f"waiting to start stage {step.name}: namespace {run.namespace} runs at most "
            f"{limit} stage Jobs at once; stat jobs go first",
        )
        return False
    manifest = build_stage_job(run.job, run.app.spec, step.name, step.attempt, op.settings)
    try:
        created_body, created = op.cluster.create_stage_job(manifest)
    except ClusterError as err:
        op.ledger.release(run.namespace, run.job.metadata.name)
        if err.status in (400, 403, 422):  # refused as it is: retrying will not help
            _refused(op, run, step.name, manifest["metadata"]["name"], err)
            return False
        raise
    if run.finished_seen is not None:
        op.metrics.handoff_seconds.observe(time.monotonic() - run.finished_seen)
        run.finished_seen = None
    try:
        run.status = mark_started(run.status, step.name, pod_job=manifest["metadata"]["name"])
    except InvalidTransition as err:  # the state machine says no: a bug worth surfacing
        raise PermanentProblem(str(err)) from err
    _drop_condition(run.status, "Queued")
    run.slot = Slot.RUNNING
    verb = "created" if created else "adopted existing"
    log.info(
        "%s Job %s (attempt %d)",
        verb,
        manifest["metadata"]["name"],
        step.attempt,
        extra={"job": run.job.uid, "stage": step.name},
    )
    # A Job adopted after a restart may have finished already: fold it right away.
    return not created and job_outcome(created_body).state is not JobState.RUNNING


def _refused(op: Operator, run: _Pass, stage: str, job_name: str, err: ClusterError) -> None:
    """The API server refused the stage's Job (bad resources in the app, RBAC): fail the job
    through the state machine, with the API server's words."""
    message = (
        f"the API server refused the Job for stage {stage}: {err}; fix the AnalysisApp's "
        "stage settings or the operator's permissions, then create the job again"
    )
    run.status = mark_started(run.status, stage, pod_job=job_name)
    run.status = mark_failed(
        run.status, run.app.spec, stage, message, retryable=False, policy=op.policy
    )
    run.slot = Slot.IDLE
    run.event("Warning", "StageFailed", run.status.message or message)


def _patch_status(op: Operator, body: Body, status: JobStatus, before: Body) -> None:
    """Write ``status`` through the status subresource when it differs from ``before``."""
    meta = body.get("metadata", {})
    status.active_stage = None if status.phase.is_final else status.current_stage
    status.observed_generation = meta.get("generation")
    after = status.wire()
    if after == before:
        return
    patch: Body = dict(after)
    for key in before:
        patch.setdefault(key, None)  # merge patch: null removes what is gone
    op.cluster.patch_analysis_job_status(
        meta.get("namespace") or "default", meta["name"], patch, meta.get("resourceVersion")
    )


def _write(op: Operator, run: _Pass, before: Body) -> Outcome:
    """Patch the status when it changed, then record events, ledger and metrics."""
    status = run.status
    was_final = Phase(before["phase"]).is_final if before.get("phase") else False
    _patch_status(op, run.body, status, before)
    for type_, reason, message in run.events:
        op.cluster.post_event(run.body, type_, reason, message, COMPONENT)
    if status.phase.is_final and not was_final:
        op.metrics.finished.labels(run.app.metadata.name, status.phase.value).inc()
    created = run.body.get("metadata", {}).get("creationTimestamp") or ""
    slot = Slot.IDLE if status.phase.is_final else run.slot
    entry = Entry(PRIORITY_RANK[run.job.spec.priority], created, slot, status.phase)
    op.ledger.set(run.namespace, run.job.metadata.name, entry)
    # A slot may have come free: wake the jobs first in line for it.
    limit = op.settings.limit_for(run.namespace)
    for waiting in op.ledger.next_waiting(run.namespace, limit):
        if waiting != run.job.metadata.name:
            op.requeue(run.namespace, waiting, 0.0)
    return Outcome(status.phase, run.requeue_after)


def _set_condition(status: JobStatus, type_: str, value: Any, reason: str, message: str) -> None:
    """Set a condition, keeping its transition time when nothing about it changed."""
    for existing in status.conditions:
        if existing.type == type_:
            if (existing.status, existing.reason, existing.message) != (value, reason, message):
                existing.status, existing.reason, existing.message = value, reason, message
                existing.last_transition_time = utcnow()
            return
    status.conditions.append(Condition(type=type_, status=value, reason=reason, message=message))


def _drop_condition(status: JobStatus, type_: str) -> None:
    status.conditions = [c for c in status.conditions if c.type != type_]
