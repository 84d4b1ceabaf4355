"""Reading what a stage Job did: finished or not, and why it failed (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from radpipe.kube.cluster import Body
from radpipe.kube.jobspec import CONTAINER


class JobState(StrEnum):
    """The outcome of a stage Job as its conditions say."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    MISSING = "missing"


@dataclass(frozen=True)
class JobOutcome:
    """A stage Job's state, and for a failed Job the reason Kubernetes gave."""

    state: JobState
    reason: str | None = None
    message: str | None = None


def _true_condition(body: Body, kind: str) -> dict[str, Any] | None:
    for condition in body.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            found: dict[str, Any] = condition
            return found
    return None


def job_outcome(body: Body | None) -> JobOutcome:
    """Finished or not. Only the terminal conditions count (``Complete``/``Failed``): they
    are set once every pod has stopped, so a retry never overlaps a dying pod."""
    if body is None:
        return JobOutcome(JobState.MISSING)
    if _true_condition(body, "Complete") is not None:
        return JobOutcome(JobState.SUCCEEDED)
    failed = _true_condition(body, "Failed")
    if failed is not None:
        return JobOutcome(JobState.FAILED, failed.get("reason"), failed.get("message"))
    return JobOutcome(JobState.RUNNING)


def is_finished(body: Body) -> bool:
    """Whether a Job carries a terminal condition (the Job event handler's filter)."""
    return job_outcome(body).state in (JobState.SUCCEEDED, JobState.FAILED)


@dataclass(frozen=True)
class PodFailure:
    """How the stage container of a failed pod ended."""

    exit_code: int | None
    reason: str | None
    log_tail: str | None


def pod_failure(pods: list[Body]) -> PodFailure | None:
    """The newest pod's terminated stage container (exit code, reason, log tail)."""
    if not pods:
        return None
    newest = max(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp") or "")
    for status in newest.get("status", {}).get("containerStatuses") or []:
        if status.get("name") != CONTAINER:
            continue
        state = status.get("state") or {}
        terminated = state.get("terminated") or (status.get("lastState") or {}).get("terminated")
        if terminated:
            return PodFailure(
                terminated.get("exitCode"), terminated.get("reason"), terminated.get("message")
            )
    reason = newest.get("status", {}).get("reason")
    message = newest.get("status", {}).get("message")
    return PodFailure(None, reason, message) if reason or message else None


def tail(text: str | None, lines: int) -> str | None:
    """The last ``lines`` non-empty lines of ``text``."""
    if not text:
        return None
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(kept) or None


def describe_failure(outcome: JobOutcome, pod: PodFailure | None, timeout: int) -> str:
    """One readable sentence on why a stage pod failed when it left no result.json."""
    if outcome.reason == "DeadlineExceeded":
        return f"the stage ran longer than its {timeout} s limit (activeDeadlineSeconds)"
    if pod is not None and pod.reason == "OOMKilled":
        return "the stage pod ran out of memory (OOMKilled): raise its memory limit in the app"
    if pod is not None and pod.exit_code is not None:
        return f"the stage pod exited with code {pod.exit_code} without recording a result"
    detail = outcome.message or outcome.reason or "no reason given"
    return f"the stage Job failed before the stage could record a result: {detail}"
