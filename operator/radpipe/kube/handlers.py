"""kopf handlers: they only call :func:`radpipe.kube.reconcile.reconcile`.

- ``on.resume`` / ``on.create`` / ``on.update`` (spec, labels, annotations: cancel,
  release) of an AnalysisJob reconcile it, with kopf's own retries on a
  :class:`kopf.TemporaryError`;
- ``on.event`` of a stage Job that reached a terminal condition reconciles its owner
  (only Jobs labelled as ours are watched, and only finished ones wake anything);
- a slow ``timer`` reconciles every unfinished AnalysisJob as a safety net;
- ``on.delete`` (kopf's finalizer ``radpipe.io/artifacts``) deletes the job's artifacts
  as the retention setting says; ownerReferences garbage-collect its Jobs;
- requeues asked for by a reconcile (retry backoff, a freed slot) run on a small delay
  queue: losing them in a restart is harmless, since ``on.resume`` reconciles everything.

Handlers are registered into a registry built per operator, so tests can run several.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from radpipe.api.models import API_GROUP, API_VERSION, Phase
from radpipe.kube import names
from radpipe.kube.observe import is_finished
from radpipe.kube.reconcile import Operator, PermanentProblem, TransientProblem, reconcile
from radpipe.pipeline.contract import job_prefix, stage_prefix
from radpipe.store import StoreError

log = logging.getLogger(__name__)

JOBS = (API_GROUP, API_VERSION, "analysisjobs")
APPS = (API_GROUP, API_VERSION, "analysisapps")
FINALIZER = f"{API_GROUP}/artifacts"


class Requeuer:
    """Delayed reconciles, deduplicated per job (the earliest request wins)."""

    def __init__(self, op: Operator, workers: int) -> None:
        self.op = op
        self.loop: asyncio.AbstractEventLoop | None = None
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="requeue")
        self._pending: dict[tuple[str, str], asyncio.TimerHandle] = {}

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Use the operator's event loop (called at startup)."""
        self.loop = loop

    def __call__(self, namespace: str, name: str, delay: float) -> None:
        """Reconcile (namespace, name) after ``delay`` seconds; callable from any thread."""
        if self.loop is None or self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self._schedule, (namespace, name), max(0.0, delay))

    def _schedule(self, key: tuple[str, str], delay: float) -> None:
        assert self.loop is not None
        existing = self._pending.get(key)
        if existing is not None:
            if existing.when() <= self.loop.time() + delay:
                return
            existing.cancel()
        self._pending[key] = self.loop.call_later(delay, self._fire, key)

    def _fire(self, key: tuple[str, str]) -> None:
        assert self.loop is not None
        self._pending.pop(key, None)
        self.loop.run_in_executor(self.executor, self._run, key)

    def _run(self, key: tuple[str, str]) -> None:
        namespace, name = key
        try:
            outcome = reconcile(self.op, namespace, name)
        except TransientProblem as err:
            log.warning("reconcile of %s/%s will be retried: %s", namespace, name, err)
            self(namespace, name, err.delay)
            return
        except PermanentProblem as err:
            log.error("cannot reconcile %s/%s: %s", namespace, name, err)
            return
        except Exception:  # never let a bug kill the requeue loop
            log.exception("reconcile of %s/%s crashed", namespace, name)
            self(namespace, name, 30.0)
            return
        if outcome.requeue_after is not None:
            self(namespace, name, outcome.requeue_after)

    def shutdown(self) -> None:
        """Stop accepting work."""
        self.loop = None
        self.executor.shutdown(wait=False, cancel_futures=True)


def _reconcile_from_handler(op: Operator, namespace: str, name: str) -> None:
    """Reconcile for a change handler: kopf retries what is temporary."""
    try:
        outcome = reconcile(op, namespace, name)
    except TransientProblem as err:
        raise kopf.TemporaryError(str(err), delay=err.delay) from err
    except PermanentProblem as err:
        raise kopf.PermanentError(str(err)) from err
    if outcome.requeue_after is not None:
        op.requeue(namespace, name, outcome.requeue_after)


def _reconcile_soon(op: Operator, namespace: str, name: str) -> None:
    """Reconcile for event/timer handlers (kopf does not retry those): requeue instead."""
    try:
        outcome = reconcile(op, namespace, name)
    except TransientProblem as err:
        op.requeue(namespace, name, err.delay)
        return
    except PermanentProblem as err:
        log.error("cannot reconcile %s/%s: %s", namespace, name, err)
        return
    if outcome.requeue_after is not None:
        op.requeue(namespace, name, outcome.requeue_after)


def _owner(body: Any) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == "AnalysisJob" and ref.get("apiVersion", "").startswith(API_GROUP):
            return str(ref.get("name"))
    return None


def _not_final(status: Any, **_: Any) -> bool:
    phase = (status or {}).get("phase")
    return not (phase and Phase(phase).is_final)


def delete_artifacts(op: Operator, uid: str, retention: str) -> int:
    """Apply the retention setting to one job's artifacts; returns objects deleted."""
    if retention == "keep":
        return 0
    keep = stage_prefix(uid, "report") if retention == "keep-reports" else None
    deleted = 0
    for key in op.store.list(job_prefix(uid)):
        if keep is None or not key.startswith(keep):
            op.store.delete(key)
            deleted += 1
    return deleted


def kopf_settings(op: Operator) -> kopf.OperatorSettings:
    """kopf's settings, chosen deliberately rather than left at their defaults."""
    settings = kopf.OperatorSettings()
    # Our own names for kopf's bookkeeping; nothing of kopf's in our status schema.
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    # Handler chatter as Events would flood the API server: only problems are posted.
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = op.settings.workers
    # Watches: reconnect promptly, back off on errors, never hang on a dead socket.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    settings.networking.error_backoffs = [1, 2, 5, 10, 30]
    settings.batching.error_delays = [1, 2, 5, 10, 30, 60]
    # Events of one object arriving within 50 ms are handled once, on the latest state.
    settings.batching.batch_window = 0.05
    return settings


def build_registry(op: Operator, requeuer: Requeuer) -> kopf.OperatorRegistry:
    """A kopf registry with the operator's handlers bound to ``op``."""
    registry = kopf.OperatorRegistry()
    settings = op.settings

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A registry of our own has none of kopf's default login handlers: use the same
        # credentials as the kubernetes client (in-cluster account, else KUBECONFIG).
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def started(**_: Any) -> None:
        requeuer.attach(asyncio.get_running_loop())
        if op.settings.metrics_port is not None:
            op.metrics.serve(op.settings.metrics_port)

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        requeuer.shutdown()

    @kopf.on.resume(*JOBS, registry=registry)
    @kopf.on.create(*JOBS, registry=registry)
    @kopf.on.update(*JOBS, registry=registry)
    def job_changed(namespace: str | None, name: str, **_: Any) -> None:
        _reconcile_from_handler(op, namespace or "default", name)

    @kopf.on.delete(*JOBS, registry=registry)
    def job_deleted(namespace: str | None, name: str, uid: str, annotations: Any, **_: Any) -> None:
        namespace = namespace or "default"
        retention = annotations.get(names.ANNOTATION_RETENTION) or op.settings.retention
        try:
            deleted = delete_artifacts(op, uid, retention)
        except StoreError as err:
            raise kopf.TemporaryError(f"cannot delete artifacts yet: {err}", delay=10) from err
        log.info(
            "deleted %d artifacts (retention %s)",
            deleted,
            retention,
            extra={"job": uid, "stage": "-"},
        )
        op.ledger.forget(namespace, name)
        op.locks.forget(namespace, name)
        limit = op.settings.limit_for(namespace)
        for waiting in op.ledger.next_waiting(namespace, limit):
            op.requeue(namespace, waiting, 0.0)

    @kopf.timer(
        *JOBS,
        interval=settings.resync_seconds,
        initial_delay=settings.resync_seconds,
        when=_not_final,
        registry=registry,
    )
    def job_resync(namespace: str | None, name: str, **_: Any) -> None:
        _reconcile_soon(op, namespace or "default", name)

    @kopf.on.event(
        "batch",
        "v1",
        "jobs",
        labels=dict(names.OWNED_SELECTOR),
        when=lambda body, type, **_: type != "DELETED" and is_finished(body),
        registry=registry,
    )
    def stage_job_finished(body: Any, namespace: str | None, **_: Any) -> None:
        owner = _owner(body)
        if owner is not None:
            _reconcile_soon(op, namespace or "default", owner)

    @kopf.on.event(*APPS, registry=registry)
    def app_changed(body: Any, type: str | None, name: str, **_: Any) -> None:
        if type == "DELETED":
            op.apps.drop(name)
            return
        try:
            op.apps.put(dict(body))
        except ValueError as err:
            log.warning("AnalysisApp %s is invalid: %s", name, err)

    @kopf.on.probe(id="queue", registry=registry)
    def queue_probe(**_: Any) -> dict[str, int]:
        _phases, waiting, running = op.ledger.counts()
        return {"waiting": sum(waiting.values()), "running": sum(running.values())}

    return registry
