"""One interface over both runners: the web app submits, lists, cancels and retries jobs
through a :class:`JobBackend` and does not care whether they run in this process
(:class:`LocalBackend`) or as AnalysisJob resources in a cluster
(:class:`radpipe.web.cluster.ClusterBackend`).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

import jsonschema

from radpipe.api.models import (
    AnalysisApp,
    AnalysisJob,
    JobSpec,
    Phase,
    Priority,
    StageState,
    utcnow,
)
from radpipe.config import Settings
from radpipe.local.runner import JobNotFound, LocalRunner, SubmitError
from radpipe.logs import accession_hash
from radpipe.pipeline.contract import StageResult
from radpipe.pipeline.state import InvalidTransition
from radpipe.store import ArtifactStore

log = logging.getLogger(__name__)

#: Annotation naming who asked for a job (a login name, not patient data).
REQUESTED_BY = "radpipe.io/requested-by"
#: Annotation naming the requester's department (absent when departments are not used).
DEPARTMENT = "radpipe.io/department"
#: Annotation recording when the job was made (ISO time), as the local runner writes it.
CREATED = "radpipe.io/created"
#: The stage that sends results to the PACS; "retry delivery" re-runs it.
DELIVERY_STAGE = "deliver"

_PRIORITY_RANK = {Priority.STAT: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}

__all__ = [
    "DEPARTMENT",
    "BackendError",
    "JobBackend",
    "JobNotFound",
    "LocalBackend",
    "SubmitError",
    "validate_options",
]


class BackendError(Exception):
    """The backend could not do what was asked; the message says why and what to do."""


def validate_options(spec: JobSpec, apps: dict[str, AnalysisApp]) -> AnalysisApp:
    """Check the app exists and the options fit its schema; SubmitError says what to fix."""
    app = apps.get(spec.app)
    if app is None:
        raise SubmitError(f"unknown app {spec.app!r}; available apps: {', '.join(sorted(apps))}")
    try:
        jsonschema.validate(spec.options, app.spec.options)
    except jsonschema.ValidationError as err:
        where = ".".join(str(p) for p in err.absolute_path) or "options"
        raise SubmitError(f"invalid options for app {spec.app}: {where}: {err.message}") from err
    return app


class JobBackend(ABC):
    """What the web app needs from a runner."""

    #: "local" or "cluster", shown on the page.
    mode: str
    #: Where job artifacts (reports, overlays, reviews) live.
    store: ArtifactStore
    #: Called with each job this process saves (see :meth:`on_change`).
    _listeners: tuple[Callable[[AnalysisJob], None], ...] = ()

    @abstractmethod
    def apps(self) -> dict[str, AnalysisApp]:
        """The analysis apps a job may name."""

    @abstractmethod
    def submit(self, spec: JobSpec, requested_by: str, department: str = "") -> AnalysisJob:
        """Validate and create a job; it starts without the caller waiting for it.

        ``department`` (the requester's, when departments are used) is recorded on the job.
        """

    @abstractmethod
    def get(self, uid: str) -> AnalysisJob:
        """One job by uid; JobNotFound when there is none."""

    @abstractmethod
    def list_jobs(self) -> list[AnalysisJob]:
        """Every job, newest first."""

    @abstractmethod
    def cancel(self, uid: str) -> AnalysisJob:
        """Ask a job to stop."""

    @abstractmethod
    def retry_delivery(self, uid: str) -> AnalysisJob:
        """Send the results of a job whose delivery failed or waits, again."""

    @abstractmethod
    def release(self, uid: str) -> AnalysisJob:
        """Let a job held in AwaitingReview or DeliveryPending go on."""

    def start(self) -> None:  # noqa: B027 - optional hook
        """Start background work (the local worker threads)."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop background work; running stages finish first."""

    def on_change(self, listener: Callable[[AnalysisJob], None]) -> None:
        """Call ``listener`` with a job each time this process saves it (live updates).

        Backends whose jobs change elsewhere (the cluster) do not call it; the event hub
        then finds changes by listing the jobs.
        """
        self._listeners = (*self._listeners, listener)

    def _changed(self, job: AnalysisJob) -> None:
        for listener in self._listeners:
            try:
                listener(job)
            except Exception:  # a listener must never break a save
                log.exception("job change listener failed", extra={"job": job.uid})


class _StoreReporter:
    """A RunReporter that writes stage progress into the job status, at most twice a second
    per stage, so the job page can draw progress bars without hammering the store."""

    def __init__(self, runner: LocalRunner, uid: str) -> None:
        self.runner = runner
        self.uid = uid
        self._last: dict[str, float] = {}

    def stage_started(self, stage: str, attempt: int) -> None:
        self._last[stage] = 0.0

    def stage_progress(self, stage: str, fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - self._last.get(stage, 0.0) >= 0.5 or fraction >= 1.0:
            self._last[stage] = now
            self.runner.progress(self.uid, stage, fraction)

    def stage_finished(self, stage: str, result: StageResult, reused: bool) -> None:
        self._last.pop(stage, None)

    def waiting(self, stage: str, seconds: float) -> None:
        pass


class CachingRunner(LocalRunner):
    """A LocalRunner that re-reads the app definitions at most every few seconds.

    The runner asks for the apps several times per stage and each read parses every YAML
    file; in a long-running web process a short cache saves most of that time.
    """

    APPS_TTL_SECONDS = 10.0

    def __init__(
        self, settings: Settings, on_save: Callable[[AnalysisJob], None] | None = None
    ) -> None:
        super().__init__(settings)
        self.on_save = on_save
        self._apps: dict[str, AnalysisApp] | None = None
        self._apps_read = 0.0
        self._apps_lock = threading.Lock()

    def apps(self) -> dict[str, AnalysisApp]:
        with self._apps_lock:
            now = time.monotonic()
            if self._apps is None or now - self._apps_read > self.APPS_TTL_SECONDS:
                self._apps = super().apps()
                self._apps_read = now
            return dict(self._apps)

    def save(self, job: AnalysisJob) -> None:
        """Save the job and tell the web app (its live updates) that it changed."""
        super().save(job)
        if self.on_save is not None:
            self.on_save(job)


class LocalBackend(JobBackend):
    """Jobs run by the local runner in worker threads of the web process, highest priority
    first; the pages read their status from the artifact store."""

    mode = "local"

    def __init__(
        self, settings: Settings, runner: LocalRunner | None = None, workers: int | None = None
    ) -> None:
        self.runner = runner or CachingRunner(settings, on_save=self._changed)
        self.store = self.runner.store
        self.workers = workers or settings.web.workers or settings.runner.workers
        self._queue: queue.PriorityQueue[tuple[int, int, str | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._threads: list[threading.Thread] = []
        self._queued: set[str] = set()
        self._lock = threading.Lock()

    # -- records ---------------------------------------------------------------------------

    def apps(self) -> dict[str, AnalysisApp]:
        return self.runner.apps()

    def get(self, uid: str) -> AnalysisJob:
        return self.runner.get(uid)

    def list_jobs(self) -> list[AnalysisJob]:
        return self.runner.list_jobs()

    # -- lifecycle -------------------------------------------------------------------------

    def submit(self, spec: JobSpec, requested_by: str, department: str = "") -> AnalysisJob:
        job = self.runner.submit(spec)
        job.metadata.annotations[REQUESTED_BY] = requested_by
        if department:
            job.metadata.annotations[DEPARTMENT] = department
        self.runner.save(job)
        self._enqueue(job)
        return job

    def cancel(self, uid: str) -> AnalysisJob:
        return self.runner.cancel(uid)

    def retry_delivery(self, uid: str) -> AnalysisJob:
        job = self.runner.get(uid)
        if job.status.phase is Phase.DELIVERY_PENDING:
            return self.release(uid)
        job = self._reopen_delivery(uid)
        self._enqueue(job)
        return job

    def release(self, uid: str) -> AnalysisJob:
        try:
            job = self.runner.release(uid)
        except InvalidTransition as err:
            raise BackendError(str(err)) from err
        self._enqueue(job)
        return job

    def _reopen_delivery(self, uid: str) -> AnalysisJob:
        """Set a failed delivery stage back to Pending so the runner sends the results again.

        The runner's own ``release`` covers held deliveries (DeliveryPending); this covers
        a delivery that failed for good (e.g. a refused association) once it is fixed.
        """
        job = self.runner.get(uid)
        try:
            stage = job.status.stage(DELIVERY_STAGE)
        except KeyError:
            raise BackendError(f"app {job.spec.app} has no {DELIVERY_STAGE} stage") from None
        earlier_done = all(
            s.state in (StageState.SUCCEEDED, StageState.SKIPPED)
            for s in job.status.stages
            if s.name != DELIVERY_STAGE
        )
        failed_there = job.status.phase is Phase.FAILED and stage.state is StageState.FAILED
        if not earlier_done or not failed_there:
            raise BackendError(
                f"delivery can be retried only when it failed or waits; the job is "
                f"{job.status.phase.value} (delivery {stage.state.value})"
            )
        stage.state = StageState.PENDING
        stage.finished_at = None
        stage.message = f"retry requested at {utcnow().isoformat(timespec='seconds')}"
        job.status.phase = Phase.RUNNING
        job.status.finished_at = None
        job.status.message = None
        job.status.conditions = []
        self.runner.save(job)
        return job

    def _enqueue(self, job: AnalysisJob) -> None:
        with self._lock:
            if job.uid in self._queued:
                return
            self._queued.add(job.uid)
        rank = _PRIORITY_RANK.get(job.spec.priority, 2)
        self._queue.put((rank, next(self._order), job.uid))

    def start(self) -> None:
        """Start the worker threads and pick up web jobs that never started."""
        if self._threads:
            return
        for number in range(self.workers):
            thread = threading.Thread(
                target=self._work, name=f"radpipe-web-worker-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        for job in self.runner.list_jobs():
            # Only jobs this web app made and that never ran: a Running job may be running in
            # another process (`radpipe run`), which owns it.
            if job.status.phase is Phase.PENDING and REQUESTED_BY in job.metadata.annotations:
                self._enqueue(job)

    def stop(self) -> None:
        """Ask the workers to stop after their current job step and wait briefly."""
        for _ in self._threads:
            self._queue.put((-1, next(self._order), None))
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def _work(self) -> None:
        while True:
            _, _, uid = self._queue.get()
            if uid is None:
                return
            with self._lock:
                self._queued.discard(uid)
            try:
                job = self.runner.run(uid, _StoreReporter(self.runner, uid))
                log.info("job finished: %s", job.status.phase.value, extra={"job": uid})
            except Exception as err:  # a bug or a broken store must not kill the worker
                log.exception("job run failed", extra={"job": uid, "stage": "-"})
                self._fail(uid, err)

    def _fail(self, uid: str, err: Exception) -> None:
        """Record an unexpected runner error on the job, so the page says what happened."""
        try:
            job = self.runner.get(uid)
            if job.status.phase.is_final:
                return
            job.status.phase = Phase.FAILED
            job.status.finished_at = utcnow()
            job.status.message = (
                f"the runner stopped with an internal error ({type(err).__name__}: {err}); "
                "ask an admin to check the web server log for this job id"
            )
            self.runner.save(job)
        except Exception:
            log.exception("could not record the failure", extra={"job": uid, "stage": "-"})


def describe(job: AnalysisJob) -> str:
    """A log-safe one-line description of a job (uid, app, accession hash)."""
    return f"{job.uid} app={job.spec.app} {accession_hash(job.spec.accession)}"
