"""The local runner drives the shared state machine over real stage executions."""

from __future__ import annotations

import pytest

from radpipe.api.models import JobSpec, Phase, StageState
from radpipe.config import Settings
from radpipe.local.runner import JobNotFound, LocalRunner, SubmitError
from radpipe.pipeline.contract import StageResult
from tests.fixtures.toy_app import ATTEMPTS, COMPLETED_RUNS, SimulatedCrash


class Recorder:
    """A RunReporter that remembers what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def stage_started(self, stage: str, attempt: int) -> None:
        self.events.append(("start", f"{stage}#{attempt}"))

    def stage_progress(self, stage: str, fraction: float, message: str) -> None:
        self.events.append(("progress", f"{stage}:{fraction}"))

    def stage_finished(self, stage: str, result: StageResult, reused: bool) -> None:
        self.events.append(("end", f"{stage}:{result.state}"))

    def waiting(self, stage: str, seconds: float) -> None:
        self.events.append(("wait", stage))


def _spec(**options: object) -> JobSpec:
    return JobSpec(accession="ACC1", app="toy", options=options)


def test_job_runs_to_success_and_status_is_stored(toy_app: Settings) -> None:
    runner = LocalRunner(toy_app)
    job = runner.submit(_spec(size=512))
    assert job.status.phase is Phase.PENDING
    recorder = Recorder()
    done = runner.run(job.uid, recorder)
    assert done.status.phase is Phase.SUCCEEDED
    assert [s.state for s in done.status.stages] == [StageState.SUCCEEDED] * 2
    assert done.status.results == {"toyBytes": 512}
    assert ("progress", "toy-produce:0.5") in recorder.events
    assert recorder.events[-1] == ("end", "toy-consume:succeeded")
    assert runner.get(job.uid).status.phase is Phase.SUCCEEDED
    assert [j.uid for j in runner.list_jobs()] == [job.uid]


def test_transient_failures_are_retried(toy_app: Settings) -> None:
    toy_app.runner.retry_backoff_seconds = 0.2  # long enough to be seen waiting
    runner = LocalRunner(toy_app)
    job = runner.submit(_spec(failTimes=2))
    recorder = Recorder()
    done = runner.run(job.uid, recorder)
    assert done.status.phase is Phase.SUCCEEDED
    assert done.status.stage("toy-consume").attempts == 3
    assert ("start", "toy-consume#3") in recorder.events
    assert ("wait", "toy-consume") in recorder.events


def test_retry_budget_exhausted_fails_with_readable_reason(toy_app: Settings) -> None:
    runner = LocalRunner(toy_app)
    job = runner.submit(_spec(failTimes=5))
    done = runner.run(job.uid)
    assert done.status.phase is Phase.FAILED
    assert done.status.message == (
        "stage toy-consume failed after 3 attempts: toy server unavailable (attempt 3)"
    )


def test_permanent_failure_is_not_retried(toy_app: Settings) -> None:
    runner = LocalRunner(toy_app)
    job = runner.submit(_spec(failPermanent=True))
    done = runner.run(job.uid)
    assert done.status.phase is Phase.FAILED
    assert done.status.stage("toy-consume").attempts == 1
    assert "use another toy study" in (done.status.message or "")


def test_runner_crash_mid_stage_resumes_without_rerunning_finished_stages(
    toy_app: Settings,
) -> None:
    runner = LocalRunner(toy_app)
    job = runner.submit(_spec(crashOnce=True))
    with pytest.raises(SimulatedCrash):
        runner.run(job.uid)
    crashed = runner.get(job.uid)
    assert crashed.status.stage("toy-consume").state is StageState.RUNNING
    # A new runner (a new process, as after a restart) picks the job up.
    done = LocalRunner(toy_app).run(job.uid)
    assert done.status.phase is Phase.SUCCEEDED
    assert COMPLETED_RUNS[(job.uid, "toy-produce")] == 1
    assert COMPLETED_RUNS[(job.uid, "toy-consume")] == 1
    assert ATTEMPTS[(job.uid, "toy-consume")] == 2


def test_held_job_waits_then_release_continues_without_recomputing(toy_app: Settings) -> None:
    runner = LocalRunner(toy_app)
    job = runner.submit(_spec(holdOnce=True))
    held = runner.run(job.uid)
    assert held.status.phase is Phase.DELIVERY_PENDING
    assert held.status.stage("toy-consume").state is StageState.PENDING
    assert "toy PACS down" in (held.status.message or "")
    assert runner.run(job.uid).status.phase is Phase.DELIVERY_PENDING  # stays until released
    runner.release(job.uid)
    done = runner.run(job.uid)
    assert done.status.phase is Phase.SUCCEEDED
    assert COMPLETED_RUNS[(job.uid, "toy-produce")] == 1
    assert ATTEMPTS[(job.uid, "toy-consume")] == 2


def test_cancel_stops_a_pending_job(toy_app: Settings) -> None:
    runner = LocalRunner(toy_app)
    job = runner.submit(_spec())
    runner.cancel(job.uid)
    done = runner.run(job.uid)
    assert done.status.phase is Phase.CANCELLED
    assert COMPLETED_RUNS[(job.uid, "toy-produce")] == 0


def test_submit_refuses_unknown_app_bad_options_and_unknown_pacs(toy_app: Settings) -> None:
    runner = LocalRunner(toy_app)
    with pytest.raises(SubmitError, match=r"unknown app 'nope'; available apps: .*glioma"):
        runner.submit(JobSpec(accession="A", app="nope"))
    with pytest.raises(SubmitError, match="invalid options for app toy: size"):
        runner.submit(_spec(size=-1))
    with pytest.raises(SubmitError, match="unknown PACS node 'x'"):
        runner.submit(JobSpec(accession="A", app="toy", source={"pacs": "x"}))


def test_unknown_job_names_the_store(toy_app: Settings) -> None:
    with pytest.raises(JobNotFound, match="no job 'rp-missing'"):
        LocalRunner(toy_app).get("rp-missing")


def test_list_jobs_rereads_only_changed_records(
    toy_app: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = LocalRunner(toy_app)
    first, second = runner.submit(_spec()), runner.submit(_spec())
    reads: list[str] = []
    get_json = runner.store.get_json

    def counting(key: str) -> object:
        reads.append(key)
        return get_json(key)

    monkeypatch.setattr(runner.store, "get_json", counting)
    assert {j.uid for j in runner.list_jobs()} == {first.uid, second.uid}
    assert len(reads) == 2
    reads.clear()
    listed = runner.list_jobs()
    assert reads == []  # unchanged records are not read again
    listed[0].spec.accession = "MUTATED"  # callers get copies: the cache is not touched
    assert all(j.spec.accession == "ACC1" for j in runner.list_jobs())

    runner.cancel(first.uid)
    reads.clear()
    by_uid = {j.uid: j for j in runner.list_jobs()}
    assert reads == [runner._key(first.uid)]
    assert by_uid[first.uid].status.phase is runner.get(first.uid).status.phase
    assert by_uid[first.uid].status.phase is not Phase.PENDING
