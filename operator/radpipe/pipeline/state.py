"""The job state machine shared by the local runner and the Kubernetes operator.

Everything here is a pure function of the observed :class:`JobStatus` (and the clock):
no state lives in memory between calls, so a runner or operator restart is just another
call. ``next_step`` says what to do next; the ``mark_*`` functions return the status
after an event, refusing transitions that make no sense.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from radpipe.api.models import (
    AppSpec,
    Condition,
    JobStatus,
    Phase,
    StageState,
    StageStatus,
    utcnow,
)


class InvalidTransition(Exception):
    """An event that the job's current state does not allow."""


@dataclass(frozen=True)
class RunStage:
    """Start (or retry) this stage now; ``attempt`` counts from 1."""

    name: str
    attempt: int


@dataclass(frozen=True)
class WaitForStage:
    """The stage is running somewhere; wait for it to finish."""

    name: str


@dataclass(frozen=True)
class WaitForRetry:
    """The stage failed with a retryable error; retry it no earlier than ``not_before``."""

    name: str
    not_before: datetime


@dataclass(frozen=True)
class Finished:
    """Nothing more to run; the job is in ``phase``."""

    phase: Phase


Step = RunStage | WaitForStage | WaitForRetry | Finished


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing stage is retried and how long to wait between tries."""

    max_attempts: int = 3
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 300.0

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (exponential)."""
        seconds = self.backoff_seconds * (2 ** max(0, attempts - 1))
        return timedelta(seconds=min(seconds, self.max_backoff_seconds))


def new_status(app: AppSpec) -> JobStatus:
    """The status of a job that has not started: every stage of the app Pending."""
    return JobStatus(
        phase=Phase.PENDING, stages=[StageStatus(name=stage.name) for stage in app.stages]
    )


def _attempts_allowed(app: AppSpec, name: str, policy: RetryPolicy) -> int:
    spec = app.stage(name)
    return spec.max_attempts if spec.max_attempts is not None else policy.max_attempts


def next_step(
    status: JobStatus, app: AppSpec, policy: RetryPolicy, now: datetime | None = None
) -> Step:
    """What to do next for a job in ``status``: the single next action, or Finished."""
    now = now or utcnow()
    if status.phase.is_final:
        return Finished(status.phase)
    if status.phase in (Phase.AWAITING_REVIEW, Phase.DELIVERY_PENDING):
        return Finished(status.phase)
    for stage in status.stages:
        if stage.state in (StageState.SUCCEEDED, StageState.SKIPPED):
            continue
        if stage.state is StageState.RUNNING:
            return WaitForStage(stage.name)
        if stage.state is StageState.PENDING:
            return RunStage(stage.name, stage.attempts + 1)
        # FAILED with attempts left (a hopeless failure already ended the job)
        if stage.attempts >= _attempts_allowed(app, stage.name, policy):
            return Finished(Phase.FAILED)
        not_before = (stage.finished_at or now) + policy.delay(stage.attempts)
        if now < not_before:
            return WaitForRetry(stage.name, not_before)
        return RunStage(stage.name, stage.attempts + 1)
    return Finished(Phase.SUCCEEDED)


def _copy(status: JobStatus) -> JobStatus:
    return status.model_copy(deep=True)


def _require_open(status: JobStatus, event: str) -> None:
    if status.phase.is_final:
        raise InvalidTransition(f"cannot {event}: the job is already {status.phase.value}")


def mark_started(
    status: JobStatus, name: str, now: datetime | None = None, pod_job: str | None = None
) -> JobStatus:
    """A stage started (attempts counted here, so a crash mid-stage still uses one)."""
    now = now or utcnow()
    _require_open(status, f"start stage {name}")
    new = _copy(status)
    for earlier in new.stages:
        if earlier.name == name:
            break
        if earlier.state not in (StageState.SUCCEEDED, StageState.SKIPPED):
            raise InvalidTransition(
                f"cannot start stage {name}: stage {earlier.name} is {earlier.state.value}"
            )
    stage = new.stage(name)
    if stage.state in (StageState.RUNNING, StageState.SUCCEEDED, StageState.SKIPPED):
        raise InvalidTransition(f"cannot start stage {name}: it is {stage.state.value}")
    stage.state = StageState.RUNNING
    stage.attempts += 1
    stage.started_at = now
    stage.finished_at = None
    stage.message = None
    stage.progress = 0.0
    stage.pod_job = pod_job
    new.phase = Phase.RUNNING
    new.started_at = new.started_at or now
    new.message = None
    return new


def mark_progress(status: JobStatus, name: str, fraction: float) -> JobStatus:
    """A running stage reported progress (0..1)."""
    new = _copy(status)
    stage = new.stage(name)
    if stage.state is StageState.RUNNING:
        stage.progress = max(0.0, min(1.0, fraction))
    return new


def mark_succeeded(
    status: JobStatus, name: str, now: datetime | None = None, message: str | None = None
) -> JobStatus:
    """A stage finished well; the job succeeds when it was the last one."""
    now = now or utcnow()
    _require_open(status, f"complete stage {name}")
    new = _copy(status)
    stage = new.stage(name)
    if stage.state is not StageState.RUNNING:
        raise InvalidTransition(f"cannot complete stage {name}: it is {stage.state.value}")
    stage.state = StageState.SUCCEEDED
    stage.finished_at = now
    stage.progress = 1.0
    stage.message = message
    if all(s.state in (StageState.SUCCEEDED, StageState.SKIPPED) for s in new.stages):
        new.phase = Phase.SUCCEEDED
        new.finished_at = now
        new.conditions = [Condition(type="Succeeded", status="True", reason="AllStagesSucceeded")]
    return new


def mark_failed(
    status: JobStatus,
    app: AppSpec,
    name: str,
    message: str,
    *,
    retryable: bool,
    policy: RetryPolicy,
    now: datetime | None = None,
) -> JobStatus:
    """A stage failed. The job fails when the error is hopeless or the retries are spent."""
    now = now or utcnow()
    _require_open(status, f"fail stage {name}")
    new = _copy(status)
    stage = new.stage(name)
    if stage.state is not StageState.RUNNING:
        raise InvalidTransition(f"cannot fail stage {name}: it is {stage.state.value}")
    stage.state = StageState.FAILED
    stage.finished_at = now
    stage.message = message
    allowed = _attempts_allowed(app, name, policy)
    if not retryable or stage.attempts >= allowed:
        tries = f" after {stage.attempts} attempts" if retryable else ""
        new.phase = Phase.FAILED
        new.finished_at = now
        new.message = f"stage {name} failed{tries}: {message}"
        new.conditions = [
            Condition(type="Failed", status="True", reason="StageFailed", message=new.message)
        ]
    else:
        retry_at = now + policy.delay(stage.attempts)
        new.message = (
            f"stage {name} attempt {stage.attempts}/{allowed} failed: {message}; "
            f"retrying at {retry_at.isoformat(timespec='seconds')}"
        )
    return new


def mark_interrupted(
    status: JobStatus, app: AppSpec, policy: RetryPolicy, now: datetime | None = None
) -> JobStatus:
    """Stages left Running by a runner that died are failed (retryable), so they re-run."""
    new = status
    for stage in status.stages:
        if stage.state is StageState.RUNNING:
            new = mark_failed(
                new,
                app,
                stage.name,
                "interrupted (the runner stopped while the stage was running)",
                retryable=True,
                policy=policy,
                now=now,
            )
    return new


HOLD_PHASES = (Phase.DELIVERY_PENDING, Phase.AWAITING_REVIEW)


def mark_held(
    status: JobStatus, name: str, phase: Phase, message: str, now: datetime | None = None
) -> JobStatus:
    """A stage cannot finish now; the job waits in ``phase`` until :func:`release_hold`.

    The stage goes back to Pending (its attempt still counted), so releasing the job
    runs it again from its start; nothing before it is recomputed.
    """
    now = now or utcnow()
    _require_open(status, f"hold stage {name}")
    if phase not in HOLD_PHASES:
        raise InvalidTransition(f"cannot hold a job in phase {phase.value}")
    new = _copy(status)
    stage = new.stage(name)
    if stage.state is not StageState.RUNNING:
        raise InvalidTransition(f"cannot hold stage {name}: it is {stage.state.value}")
    stage.state = StageState.PENDING
    stage.finished_at = now
    stage.progress = None
    stage.message = message
    new.phase = phase
    new.message = f"stage {name} is waiting: {message}"
    new.conditions = [
        Condition(type=phase.value, status="True", reason=f"{phase.value}", message=message)
    ]
    return new


def release_hold(status: JobStatus) -> JobStatus:
    """Let a held job (DeliveryPending, AwaitingReview) go on with its waiting stage."""
    if status.phase not in HOLD_PHASES:
        raise InvalidTransition(
            f"cannot release the job: it is {status.phase.value}, not waiting for release"
        )
    new = _copy(status)
    new.phase = Phase.RUNNING
    new.message = None
    new.conditions = []
    return new


def mark_cancelled(status: JobStatus, now: datetime | None = None) -> JobStatus:
    """Someone cancelled the job; running stages are abandoned."""
    now = now or utcnow()
    _require_open(status, "cancel")
    new = _copy(status)
    for stage in new.stages:
        if stage.state is StageState.PENDING:
            stage.state = StageState.SKIPPED
        elif stage.state is StageState.RUNNING:
            stage.state = StageState.FAILED
            stage.finished_at = now
            stage.message = "cancelled"
    new.phase = Phase.CANCELLED
    new.finished_at = now
    new.message = "cancelled on request"
    new.conditions = [Condition(type="Cancelled", status="True", reason="CancelRequested")]
    return new
