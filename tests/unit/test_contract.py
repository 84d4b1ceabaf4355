"""The stage contract: idempotent re-runs, clean restarts after a crash, result.json last."""

from __future__ import annotations

import pytest

from radpipe.api.apps import get_app
from radpipe.api.models import AnalysisJob, JobSpec, ObjectMeta
from radpipe.config import Settings
from radpipe.pipeline.contract import read_result, result_key, stage_prefix
from radpipe.pipeline.executor import execute_stage
from radpipe.pipeline.registry import UnknownStage, get_stage
from radpipe.store import LocalStore
from tests.fixtures.toy_app import COMPLETED_RUNS, SimulatedCrash


def _job(uid: str, **options: object) -> AnalysisJob:
    return AnalysisJob(
        metadata=ObjectMeta(name=uid, uid=uid),
        spec=JobSpec(accession="A1", app="toy", options=options),
    )


@pytest.fixture
def store(toy_app: Settings) -> LocalStore:
    assert toy_app.store.root is not None
    return LocalStore(toy_app.store.root)


def test_stage_writes_outputs_then_result(toy_app: Settings, store: LocalStore) -> None:
    app = get_app("toy", toy_app.apps_dir).spec
    job = _job("c-1", size=3000)
    run = execute_stage(job, app, "toy-produce", store, toy_app)
    assert not run.reused
    result = run.result
    assert result.complete and result.state == "succeeded"
    assert result.outputs["data.bin"]["size"] == 3000
    assert (
        store.info(stage_prefix("c-1", "toy-produce") + "data.bin").sha256
        == (result.outputs["data.bin"]["sha256"])
    )
    assert result.provenance["stage"] == "toy-produce"
    assert result.provenance["software"]["radpipe"]
    assert result.timings is not None and result.timings.seconds >= 0
    assert read_result(store, "c-1", "toy-produce") == result


def test_rerunning_a_finished_stage_does_nothing(toy_app: Settings, store: LocalStore) -> None:
    app = get_app("toy", toy_app.apps_dir).spec
    job = _job("c-2")
    first = execute_stage(job, app, "toy-produce", store, toy_app)
    second = execute_stage(job, app, "toy-produce", store, toy_app)
    assert second.reused
    assert second.result == first.result
    assert COMPLETED_RUNS[("c-2", "toy-produce")] == 1


def test_crash_mid_stage_leaves_no_result_and_next_attempt_starts_clean(
    toy_app: Settings, store: LocalStore
) -> None:
    app = get_app("toy", toy_app.apps_dir).spec
    job = _job("c-3", crashOnce=True)
    execute_stage(job, app, "toy-produce", store, toy_app)
    with pytest.raises(SimulatedCrash):
        execute_stage(job, app, "toy-consume", store, toy_app)
    prefix = stage_prefix("c-3", "toy-consume")
    assert store.list(prefix) == [prefix + "partial.bin"]  # the dead attempt's leftovers
    assert read_result(store, "c-3", "toy-consume") is None
    run = execute_stage(job, app, "toy-consume", store, toy_app, attempt=2)
    assert run.result.complete
    assert store.list(prefix) == [prefix + "result.json", prefix + "summary.json"]
    assert run.result.attempt == 2


def test_failure_is_recorded_and_next_attempt_clears_it(
    toy_app: Settings, store: LocalStore
) -> None:
    app = get_app("toy", toy_app.apps_dir).spec
    job = _job("c-4", failTimes=1)
    execute_stage(job, app, "toy-produce", store, toy_app)
    failed = execute_stage(job, app, "toy-consume", store, toy_app)
    assert failed.result.state == "failed"
    assert failed.result.retryable
    assert "toy server unavailable" in (failed.result.message or "")
    assert store.exists(result_key("c-4", "toy-consume"))
    again = execute_stage(job, app, "toy-consume", store, toy_app, attempt=2)
    assert again.result.complete and not again.reused


def test_permanent_failure_carries_hint(toy_app: Settings, store: LocalStore) -> None:
    app = get_app("toy", toy_app.apps_dir).spec
    job = _job("c-5", failPermanent=True)
    execute_stage(job, app, "toy-produce", store, toy_app)
    result = execute_stage(job, app, "toy-consume", store, toy_app).result
    assert result.state == "failed" and not result.retryable
    assert result.message == "the toy input is unusable — use another toy study"


def test_missing_upstream_result_is_a_clear_failure(toy_app: Settings, store: LocalStore) -> None:
    app = get_app("toy", toy_app.apps_dir).spec
    result = execute_stage(_job("c-6"), app, "toy-consume", store, toy_app).result
    assert result.state == "failed"
    assert "needs the result of stage toy-produce" in (result.message or "")


def test_tampered_input_is_detected(toy_app: Settings, store: LocalStore) -> None:
    app = get_app("toy", toy_app.apps_dir).spec
    job = _job("c-7")
    execute_stage(job, app, "toy-produce", store, toy_app)
    store.put_bytes(stage_prefix("c-7", "toy-produce") + "data.bin", b"changed")
    result = execute_stage(job, app, "toy-consume", store, toy_app).result
    assert result.state == "failed" and result.retryable
    assert "sha256" in (result.message or "")


def test_unknown_stage_lists_known_ones() -> None:
    with pytest.raises(UnknownStage, match="no stage named 'nope'"):
        get_stage("nope")
