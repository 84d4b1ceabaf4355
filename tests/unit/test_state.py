"""The job state machine on its own: every transition, pure functions of the status."""

from __future__ import annotations

from datetime import timedelta

import pytest

from radpipe.api.models import AppSpec, Phase, StageSpec, StageState, utcnow
from radpipe.pipeline.state import (
    Finished,
    InvalidTransition,
    RetryPolicy,
    RunStage,
    WaitForRetry,
    WaitForStage,
    mark_cancelled,
    mark_failed,
    mark_held,
    mark_interrupted,
    mark_started,
    mark_succeeded,
    new_status,
    next_step,
    release_hold,
)

APP = AppSpec(
    title="t",
    modality="MR",
    stages=[StageSpec(name="a"), StageSpec(name="b", max_attempts=2), StageSpec(name="c")],
)
POLICY = RetryPolicy(max_attempts=3, backoff_seconds=10)


def test_new_job_is_pending_and_runs_first_stage() -> None:
    status = new_status(APP)
    assert status.phase is Phase.PENDING
    assert [s.state for s in status.stages] == [StageState.PENDING] * 3
    assert next_step(status, APP, POLICY) == RunStage("a", 1)


def test_stages_run_in_order_to_success() -> None:
    status = new_status(APP)
    for name in ("a", "b", "c"):
        step = next_step(status, APP, POLICY)
        assert step == RunStage(name, 1)
        status = mark_started(status, name)
        assert status.phase is Phase.RUNNING
        assert next_step(status, APP, POLICY) == WaitForStage(name)
        status = mark_succeeded(status, name)
    assert status.phase is Phase.SUCCEEDED
    assert status.finished_at is not None
    assert next_step(status, APP, POLICY) == Finished(Phase.SUCCEEDED)
    assert status.conditions[0].type == "Succeeded"


def test_retryable_failure_waits_for_backoff_then_retries() -> None:
    now = utcnow()
    status = mark_started(new_status(APP), "a", now=now)
    status = mark_failed(status, APP, "a", "PACS down", retryable=True, policy=POLICY, now=now)
    assert status.phase is Phase.RUNNING
    assert "attempt 1/3" in (status.message or "")
    step = next_step(status, APP, POLICY, now=now + timedelta(seconds=1))
    assert isinstance(step, WaitForRetry)
    assert step.not_before == now + timedelta(seconds=10)
    assert next_step(status, APP, POLICY, now=now + timedelta(seconds=11)) == RunStage("a", 2)


def test_backoff_doubles_per_attempt() -> None:
    assert POLICY.delay(1) == timedelta(seconds=10)
    assert POLICY.delay(3) == timedelta(seconds=40)
    assert RetryPolicy(backoff_seconds=100, max_backoff_seconds=150).delay(5).total_seconds() == 150


def test_retries_exhausted_fails_job_with_stage_and_reason() -> None:
    status = new_status(APP)
    status = mark_succeeded(mark_started(status, "a"), "a")
    for _ in range(2):  # stage b allows 2 attempts
        status = mark_started(status, "b")
        status = mark_failed(status, APP, "b", "timeout", retryable=True, policy=POLICY)
    assert status.phase is Phase.FAILED
    assert status.message == "stage b failed after 2 attempts: timeout"
    assert status.conditions[0].reason == "StageFailed"
    assert next_step(status, APP, POLICY) == Finished(Phase.FAILED)


def test_permanent_failure_fails_at_once() -> None:
    status = mark_started(new_status(APP), "a")
    status = mark_failed(status, APP, "a", "no T1c series", retryable=False, policy=POLICY)
    assert status.phase is Phase.FAILED
    assert status.message == "stage a failed: no T1c series"
    with pytest.raises(InvalidTransition):
        mark_started(status, "a")


def test_invalid_transitions_are_refused() -> None:
    status = new_status(APP)
    with pytest.raises(InvalidTransition, match="stage a is Pending"):
        mark_started(status, "b")
    with pytest.raises(InvalidTransition, match="it is Pending"):
        mark_succeeded(status, "a")
    running = mark_started(status, "a")
    with pytest.raises(InvalidTransition, match="it is Running"):
        mark_started(running, "a")


def test_interrupted_stage_is_failed_retryably() -> None:
    status = mark_started(new_status(APP), "a")
    status = mark_interrupted(status, APP, POLICY)
    assert status.stage("a").state is StageState.FAILED
    assert status.stage("a").attempts == 1
    assert "interrupted" in (status.stage("a").message or "")
    assert status.phase is Phase.RUNNING


def test_cancel_skips_pending_and_is_final() -> None:
    status = mark_started(new_status(APP), "a")
    status = mark_cancelled(status)
    assert status.phase is Phase.CANCELLED
    assert [s.state for s in status.stages] == [
        StageState.FAILED,
        StageState.SKIPPED,
        StageState.SKIPPED,
    ]
    with pytest.raises(InvalidTransition, match="already Cancelled"):
        mark_cancelled(status)


def test_transitions_do_not_mutate_their_input() -> None:
    status = new_status(APP)
    mark_started(status, "a")
    assert status.stage("a").state is StageState.PENDING


def test_hold_waits_in_phase_and_release_reruns_the_stage() -> None:
    status = mark_succeeded(mark_started(new_status(APP), "a"), "a")
    status = mark_started(status, "b")
    status = mark_held(status, "b", Phase.DELIVERY_PENDING, "PACS down")
    assert status.phase is Phase.DELIVERY_PENDING
    assert status.conditions[0].type == "DeliveryPending"
    assert next_step(status, APP, POLICY) == Finished(Phase.DELIVERY_PENDING)
    released = release_hold(status)
    assert released.phase is Phase.RUNNING
    assert next_step(released, APP, POLICY) == RunStage("b", 2)
    with pytest.raises(InvalidTransition, match="not waiting for release"):
        release_hold(released)
    with pytest.raises(InvalidTransition, match="cannot hold a job in phase Failed"):
        mark_held(mark_started(released, "b"), "b", Phase.FAILED, "x")
