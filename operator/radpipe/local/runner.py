"""The local runner: runs jobs in-process with the shared state machine.

Job records live in the artifact store (``jobs/<uid>/job.json``) in the AnalysisJob shape,
so ``radpipe status`` works from any process and a crashed run resumes where it stopped.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Protocol

import jsonschema

from radpipe.api.apps import AppError, load_apps
from radpipe.api.models import (
    AnalysisApp,
    AnalysisJob,
    AppSpec,
    JobSpec,
    ObjectMeta,
    Phase,
    utcnow,
)
from radpipe.config import Settings
from radpipe.logs import accession_hash
from radpipe.pipeline.contract import StageResult, job_prefix
from radpipe.pipeline.executor import StageRun, execute_stage
from radpipe.pipeline.state import (
    Finished,
    RetryPolicy,
    RunStage,
    WaitForRetry,
    WaitForStage,
    mark_cancelled,
    mark_failed,
    mark_held,
    mark_interrupted,
    mark_progress,
    mark_started,
    mark_succeeded,
    new_status,
    next_step,
    release_hold,
)
from radpipe.store import ArtifactStore, ObjectNotFound, open_store

log = logging.getLogger(__name__)

JOB_FILE = "job.json"


class JobNotFound(LookupError):
    """No job with that id in the artifact store."""


class SubmitError(ValueError):
    """A job request was refused; the message says what to fix."""


class RunReporter(Protocol):
    """Receives what happens while a job runs (the CLI shows it as progress bars)."""

    def stage_started(self, stage: str, attempt: int) -> None: ...

    def stage_progress(self, stage: str, fraction: float, message: str) -> None: ...

    def stage_finished(self, stage: str, result: StageResult, reused: bool) -> None: ...

    def waiting(self, stage: str, seconds: float) -> None: ...


def new_job_uid() -> str:
    """A fresh job id: short, URL- and Kubernetes-name-safe, free of patient data."""
    return f"rp-{uuid.uuid4().hex[:12]}"


class LocalRunner:
    """Submits, runs, inspects and cancels jobs on this machine."""

    def __init__(self, settings: Settings, store: ArtifactStore | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.store)
        self.policy = RetryPolicy(
            max_attempts=settings.runner.max_attempts,
            backoff_seconds=settings.runner.retry_backoff_seconds,
        )
        # list_jobs cache: job.json key -> (the store's version tag, the parsed record).
        self._records: dict[str, tuple[str, AnalysisJob]] = {}
        self._records_lock = threading.Lock()

    # -- records -------------------------------------------------------------------------

    def apps(self) -> dict[str, AnalysisApp]:
        """The apps this runner knows (bundled plus the configured apps_dir)."""
        return load_apps(self.settings.apps_dir)

    def _key(self, uid: str) -> str:
        return job_prefix(uid) + JOB_FILE

    def get(self, uid: str) -> AnalysisJob:
        """The stored job record."""
        try:
            return AnalysisJob.model_validate(self.store.get_json(self._key(uid)))
        except ObjectNotFound as err:
            raise JobNotFound(
                f"no job {uid!r} in {self.store.location}; `radpipe jobs` lists the jobs"
            ) from err

    def save(self, job: AnalysisJob) -> None:
        """Write the job record (atomically)."""
        self.store.put_json(self._key(job.uid), job.model_dump(mode="json", by_alias=True))

    def list_jobs(self) -> list[AnalysisJob]:
        """Every job in the store, newest first.

        A record is parsed again only when the store's version tag of it changed since the
        last call (see :meth:`ArtifactStore.list_with_info`); callers get their own copies.
        """
        listed = [
            (key, tag)
            for key, tag in self.store.list_with_info("jobs/", suffix="/" + JOB_FILE)
            if key.count("/") == 2 and key.endswith("/" + JOB_FILE)
        ]
        with self._records_lock:
            cached = {key: self._records[key] for key, _ in listed if key in self._records}
        fresh: dict[str, tuple[str, AnalysisJob]] = {}
        jobs: list[AnalysisJob] = []
        for key, tag in listed:
            hit = cached.get(key)
            if tag is not None and hit is not None and hit[0] == tag:
                job = hit[1]
            else:
                try:
                    job = AnalysisJob.model_validate(self.store.get_json(key))
                except ObjectNotFound:
                    continue  # deleted since it was listed
            if tag is not None:
                fresh[key] = (tag, job)
            jobs.append(job.model_copy(deep=True))
        with self._records_lock:
            self._records = fresh  # forgets deleted jobs
        return sorted(
            jobs, key=lambda j: j.metadata.annotations.get("radpipe.io/created", ""), reverse=True
        )

    # -- lifecycle -----------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> AnalysisJob:
        """Validate a request against its app and store it as a Pending job."""
        try:
            app = self.apps()[spec.app]
        except KeyError:
            raise SubmitError(
                f"unknown app {spec.app!r}; available apps: {', '.join(sorted(self.apps()))}"
            ) from None
        except AppError as err:
            raise SubmitError(str(err)) from err
        try:
            jsonschema.validate(spec.options, app.spec.options)
        except jsonschema.ValidationError as err:
            where = ".".join(str(p) for p in err.absolute_path) or "options"
            raise SubmitError(
                f"invalid options for app {spec.app}: {where}: {err.message}"
            ) from err
        if spec.source.pacs and spec.source.pacs not in self.settings.pacs:
            raise SubmitError(
                f"unknown PACS node {spec.source.pacs!r}; configured nodes: "
                f"{', '.join(sorted(self.settings.pacs)) or '(none: add one under pacs:)'}"
            )
        uid = new_job_uid()
        job = AnalysisJob(
            metadata=ObjectMeta(
                name=uid, uid=uid, annotations={"radpipe.io/created": utcnow().isoformat()}
            ),
            spec=spec,
            status=new_status(app.spec),
        )
        self.save(job)
        log.info(
            "submitted app=%s %s",
            spec.app,
            accession_hash(spec.accession),
            extra={"job": uid, "stage": "-"},
        )
        return job

    def cancel(self, uid: str) -> AnalysisJob:
        """Ask for a job to stop; it stops before its next stage."""
        job = self.get(uid)
        if job.status.phase.is_final:
            return job
        job.spec.cancel = True
        job.status = mark_cancelled(job.status)
        self.save(job)
        return job

    def release(self, uid: str) -> AnalysisJob:
        """Release a job waiting in DeliveryPending or AwaitingReview; ``run`` goes on."""
        job = self.get(uid)
        job.status = release_hold(job.status)
        self.save(job)
        return job

    def run_stage(
        self,
        uid: str,
        stage: str,
        reporter: RunReporter | None = None,
        app: AppSpec | None = None,
    ) -> tuple[AnalysisJob, StageRun]:
        """Run one stage of a job and record the outcome in its status."""
        job = self.get(uid)
        app = app or self.apps()[job.spec.app].spec
        status = job.status
        current = status.stage(stage)
        attempt = current.attempts + 1
        if reporter is not None:
            reporter.stage_started(stage, attempt)
        if current.state.value != "Succeeded":
            status = mark_started(status, stage)
            job.status = status
            self.save(job)

        def on_progress(fraction: float, message: str) -> None:
            if reporter is not None:
                reporter.stage_progress(stage, fraction, message)

        run = execute_stage(
            job, app, stage, self.store, self.settings, attempt=attempt, progress=on_progress
        )
        job = self.get(uid)  # a cancel may have arrived meanwhile
        if job.status.phase.is_final:
            return job, run
        if run.result.complete:
            if job.status.stage(stage).state.value == "Running":
                job.status = mark_succeeded(job.status, stage, message=run.result.message)
            self._copy_results(job, stage, run.result)
        elif run.result.hold is not None:
            job.status = mark_held(
                job.status, stage, run.result.hold, run.result.message or "waiting"
            )
        else:
            job.status = mark_failed(
                job.status,
                app,
                stage,
                run.result.message or "failed",
                retryable=run.result.retryable,
                policy=self.policy,
            )
        self.save(job)
        if reporter is not None:
            reporter.stage_finished(stage, run.result, run.reused)
        return job, run

    def run(self, uid: str, reporter: RunReporter | None = None) -> AnalysisJob:
        """Drive a job to a final phase (or a review/delivery wait), stage by stage."""
        job = self.get(uid)
        app = self.apps()[job.spec.app].spec
        # Stages left Running mean an earlier runner died mid-stage: retry them cleanly.
        if any(s.state.value == "Running" for s in job.status.stages):
            job.status = mark_interrupted(job.status, app, self.policy)
            self.save(job)
        while True:
            job = self.get(uid)
            if job.spec.cancel and not job.status.phase.is_final:
                job.status = mark_cancelled(job.status)
                self.save(job)
            step = next_step(job.status, app, self.policy)
            if isinstance(step, Finished):
                if job.status.phase is not step.phase:
                    job.status.phase = step.phase
                    job.status.finished_at = job.status.finished_at or utcnow()
                    self.save(job)
                return job
            if isinstance(step, WaitForRetry):
                seconds = max(0.0, (step.not_before - utcnow()).total_seconds())
                if reporter is not None:
                    reporter.waiting(step.name, seconds)
                time.sleep(seconds)
                continue
            if isinstance(step, WaitForStage):  # only another process could be running it
                time.sleep(1.0)
                continue
            assert isinstance(step, RunStage)
            self.run_stage(uid, step.name, reporter, app)

    def _copy_results(self, job: AnalysisJob, stage: str, result: StageResult) -> None:
        """Lift what people look at (selected series, findings) from a result into status."""
        data = result.data
        if "selectedSeries" in data:
            job.status.selected_series = list(data["selectedSeries"])
        if "results" in data:
            job.status.results.update(data["results"])
        if "modelVersions" in data:
            job.status.model_versions.update(data["modelVersions"])

    def progress(self, uid: str, stage: str, fraction: float) -> None:
        """Record a running stage's progress in the job status."""
        job = self.get(uid)
        job.status = mark_progress(job.status, stage, fraction)
        self.save(job)


__all__ = ["JobNotFound", "LocalRunner", "Phase", "RunReporter", "SubmitError"]
