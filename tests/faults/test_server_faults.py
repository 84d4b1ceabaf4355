"""Faults of the real servers under the local runner: PACS refusing and killed mid-C-MOVE,
MinIO killed mid-upload, the model server killed mid-inference, PostgreSQL restarted.

For each: the job ends Succeeded once the fault clears (or Failed / a StoreError naming
what to check when it does not), every artifact a stage committed matches the checksum
in its result.json, each stage completes once, and nothing is stored twice.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from radpipe.api.models import AnalysisJob, JobSpec
from radpipe.config import Settings
from radpipe.local.runner import LocalRunner
from radpipe.pipeline.contract import Stage, StageContext, StageOutcome, read_result
from radpipe.pipeline.registry import register_stage, unregister_stage
from radpipe.store import ArtifactStore, StoreError
from tests.faults.conftest import FaultRow
from tests.fixtures import toy_app as toy
from tests.fixtures.dicom_studies import make_study
from tests.fixtures.minio import MinioServer
from tests.fixtures.network import wait_until
from tests.fixtures.pacs import OrthancServer
from tests.fixtures.postgres import PostgresServer, _bin_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FETCH_APP = """
apiVersion: radpipe.io/v1alpha1
kind: AnalysisApp
metadata: {name: faultfetch}
spec:
  title: Fetch only (fault tests)
  modality: MR
  stages: [{name: fetch}]
"""


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``work`` in a thread; its value or exception lands in the dict."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as err:
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def assert_committed_outputs_intact(store: ArtifactStore, job: AnalysisJob) -> None:
    """Every output a succeeded stage recorded exists with the recorded checksum, and
    nothing else (a half-written leftover) sits under the stage's prefix."""
    for stage in job.status.stages:
        result = read_result(store, job.uid, stage.name)
        assert result is not None and result.complete, stage.name
        prefix = f"jobs/{job.uid}/{stage.name}/"
        for name, output in result.outputs.items():
            store.get_bytes(prefix + name, output["sha256"])  # raises on a mismatch
        listed = {k[len(prefix) :] for k in store.list(prefix)}
        assert listed == set(result.outputs) | {"result.json"}, listed ^ set(result.outputs)


# -- PACS -----------------------------------------------------------------------------


@pytest.fixture
def fetch_settings(settings: Settings, tmp_path: Path) -> Settings:
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "faultfetch.yaml").write_text(FETCH_APP)
    settings.apps_dir = tmp_path / "apps"
    settings.runner.max_attempts = 6
    settings.runner.retry_backoff_seconds = 0.5
    return settings


def test_pacs_refusing_associations_then_back(
    fetch_settings: Settings, own_orthanc: OrthancServer, tmp_path: Path, fault_table: list
) -> None:
    study = make_study(tmp_path / "study", accession="FLT-REFUSE", series=(("T1", 6), ("T2", 4)))
    own_orthanc.upload(study.files)
    fetch_settings.pacs = {"pacs": own_orthanc.dimse_node(retrieve_attempts=1)}
    runner = LocalRunner(fetch_settings)
    job = runner.submit(JobSpec(accession="FLT-REFUSE", app="faultfetch"))
    own_orthanc.stop()  # the association is refused: connection refused
    started = time.monotonic()
    thread, box = in_thread(lambda: runner.run(job.uid))
    time.sleep(2.0)
    assert thread.is_alive(), box
    own_orthanc.start()
    thread.join(90)
    done: AnalysisJob = box["value"]
    assert done.status.phase.value == "Succeeded", done.status.message
    assert done.status.stages[0].attempts >= 2  # it really was refused first
    assert_committed_outputs_intact(runner.store, done)
    manifest = read_result(runner.store, job.uid, "fetch").data["manifest"]  # type: ignore[union-attr]
    assert manifest["instance_count"] == study.instance_count
    fault_table.append(
        FaultRow("PACS association refused (down 2 s)", "Succeeded", time.monotonic() - started,
                 f"fetch attempts {done.status.stages[0].attempts}")
    )  # fmt: skip

    # The same fault, not clearing within the retry budget: Failed, saying what to check.
    fetch_settings.runner.max_attempts = 2
    fetch_settings.runner.retry_backoff_seconds = 0.1
    runner = LocalRunner(fetch_settings)
    again = runner.submit(JobSpec(accession="FLT-REFUSE", app="faultfetch"))
    own_orthanc.stop()
    started = time.monotonic()
    failed = runner.run(again.uid)
    assert failed.status.phase.value == "Failed"
    message = failed.status.message or ""
    assert "cannot open an association to PACS" in message and "radpipe pacs echo" in message
    fault_table.append(
        FaultRow("PACS down for good (budget 2 attempts)", "Failed", time.monotonic() - started,
                 message[:60])
    )  # fmt: skip


def test_pacs_killed_mid_c_move(
    fetch_settings: Settings, own_orthanc: OrthancServer, tmp_path: Path, fault_table: list
) -> None:
    study = make_study(
        tmp_path / "study", accession="FLT-MOVE", series=(("T1", 40), ("T2", 40)), rows=256
    )
    own_orthanc.upload(study.files)
    fetch_settings.pacs = {
        "pacs": own_orthanc.dimse_node(retrieve="c-move", max_associations=2, retrieve_attempts=4)
    }
    runner = LocalRunner(fetch_settings)
    job = runner.submit(JobSpec(accession="FLT-MOVE", app="faultfetch"))
    prefix = f"jobs/{job.uid}/fetch/instances/"
    thread, box = in_thread(lambda: runner.run(job.uid))
    wait_until(lambda: len(runner.store.list(prefix)) >= 8, 60, "first instances by C-MOVE")
    arrived = len(runner.store.list(prefix))
    own_orthanc.kill()
    killed = time.monotonic()
    time.sleep(1.0)
    own_orthanc.start()
    thread.join(120)
    assert "error" not in box, box.get("error")
    done: AnalysisJob = box["value"]
    assert done.status.phase.value == "Succeeded", done.status.message
    assert arrived < study.instance_count, "the kill came too late to be mid-transfer"
    assert_committed_outputs_intact(runner.store, done)
    keys = runner.store.list(prefix)
    assert len(keys) == study.instance_count == len(set(keys))
    manifest = read_result(runner.store, job.uid, "fetch").data["manifest"]  # type: ignore[union-attr]
    assert all(s["complete"] for s in manifest["series"])
    fault_table.append(
        FaultRow("PACS killed mid-C-MOVE, restarted after 1 s", "Succeeded",
                 time.monotonic() - killed, f"{arrived}/{study.instance_count} in at the kill")
    )  # fmt: skip


# -- MinIO ----------------------------------------------------------------------------


@pytest.fixture
def s3_toy(toy_app: Settings, private_minio: MinioServer) -> Settings:
    toy_app.store.backend = "s3"
    config = private_minio.store_config(bucket="faults")
    toy_app.store.s3 = toy_app.store.s3.model_validate(
        {**config, "attempts": 8, "backoff_seconds": 0.5, "timeout_seconds": 5}
    )
    toy_app.runner.max_attempts = 4
    toy_app.runner.retry_backoff_seconds = 0.5
    return toy_app


def _kill(server: MinioServer) -> None:
    assert server.process is not None
    server.process.kill()
    server.process.wait()
    server.process = None


def test_minio_killed_mid_upload_and_restarted(
    s3_toy: Settings, private_minio: MinioServer, fault_table: list
) -> None:
    runner = LocalRunner(s3_toy)
    size = 48 * 1024 * 1024  # three multipart parts
    job = runner.submit(JobSpec(accession="FLT-S3", app="toy", options={"size": size}))
    thread, box = in_thread(lambda: runner.run(job.uid))
    wait_until(lambda: toy.ATTEMPTS[(job.uid, "toy-produce")] >= 1, 60, "toy-produce started")
    time.sleep(0.2)
    _kill(private_minio)
    killed = time.monotonic()
    time.sleep(1.5)
    private_minio.start()
    thread.join(180)
    assert "error" not in box, box.get("error")
    done: AnalysisJob = box["value"]
    assert done.status.phase.value == "Succeeded", done.status.message
    assert_committed_outputs_intact(runner.store, done)
    assert done.status.results["toyBytes"] == size  # the consumer read the whole, verified
    assert toy.COMPLETED_RUNS[(job.uid, "toy-consume")] == 1
    assert toy.COMPLETED_RUNS[(job.uid, "toy-produce")] == 1
    fault_table.append(
        FaultRow("MinIO killed mid-upload, restarted after 1.5 s", "Succeeded",
                 time.monotonic() - killed,
                 f"produce attempts {toy.ATTEMPTS[(job.uid, 'toy-produce')]}")
    )  # fmt: skip


def test_minio_down_for_good_stops_the_runner_resumably(
    s3_toy: Settings, private_minio: MinioServer, fault_table: list
) -> None:
    s3_toy.store.s3.attempts = 2
    s3_toy.store.s3.backoff_seconds = 0.1
    runner = LocalRunner(s3_toy)
    job = runner.submit(JobSpec(accession="FLT-S3B", app="toy", options={"size": 4096}))
    private_minio.stop()
    started = time.monotonic()
    with pytest.raises(StoreError) as stopped:
        runner.run(job.uid)
    message = str(stopped.value)
    assert private_minio.endpoint in message and "faults" in message
    private_minio.start()
    done = LocalRunner(s3_toy).run(job.uid)  # `radpipe resume`
    assert done.status.phase.value == "Succeeded", done.status.message
    assert_committed_outputs_intact(runner.store, done)
    fault_table.append(
        FaultRow("MinIO down for good, then resumed", "StoreError", time.monotonic() - started,
                 "runner stops naming endpoint+bucket; resume succeeds")
    )  # fmt: skip


# -- PostgreSQL -----------------------------------------------------------------------


class WarehouseWrite(Stage):
    """Records a results document in the configured warehouse (as postprocess does)."""

    name: ClassVar[str] = "fault-warehouse"
    version: ClassVar[str] = "1"
    ATTEMPTS: ClassVar[list[int]] = []

    def run(self, ctx: StageContext) -> StageOutcome:
        from radpipe.results.schema import Measurement, ResultsDocument, StudyRef
        from radpipe.results.warehouse import Warehouse

        self.ATTEMPTS.append(ctx.attempt)
        doc = ResultsDocument(
            job=ctx.job.uid,
            app="faultpg",
            study=StudyRef(study_instance_uid="1.2.3", accession=ctx.job.spec.accession),
            measurements=[Measurement(name="WT", label="Whole tumour", value=1.5, unit="cm3")],
        )
        row = Warehouse(ctx.settings.warehouse.url or "").record(doc)
        return StageOutcome(data={"results": {"warehouseRow": row}})


PG_APP = """
apiVersion: radpipe.io/v1alpha1
kind: AnalysisApp
metadata: {name: faultpg}
spec:
  title: Warehouse write (fault tests)
  modality: MR
  stages: [{name: fault-warehouse, maxAttempts: 8}]
"""


def _pg(server: PostgresServer, action: str) -> None:
    options = (
        f"-p {server.port} -k {server.root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    args = [str(_bin_dir() / "pg_ctl"), "-D", str(server.root / "data"), "-w", "-t", "30"]
    if action == "stop":
        args += ["-m", "immediate", "stop"]
    else:
        args += ["-o", options, "-l", str(server.root / "server.log"), "start"]
    subprocess.run([*server._as_user, *args], check=True, capture_output=True, cwd="/")


@pytest.fixture
def pg_settings(
    settings: Settings, tmp_path: Path, postgres_server: PostgresServer, postgres_url: str
) -> Iterator[Settings]:
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "faultpg.yaml").write_text(PG_APP)
    settings.apps_dir = tmp_path / "apps"
    settings.warehouse.url = postgres_url
    settings.runner.retry_backoff_seconds = 0.5
    register_stage(WarehouseWrite)
    yield settings
    unregister_stage(WarehouseWrite.name)


def test_postgres_restarted_mid_job(
    pg_settings: Settings, postgres_server: PostgresServer, fault_table: list
) -> None:
    from radpipe.results.warehouse import Warehouse

    runner = LocalRunner(pg_settings)
    job = runner.submit(JobSpec(accession="FLT-PG", app="faultpg"))
    _pg(postgres_server, "stop")  # immediate: like a crash
    stopped = time.monotonic()
    try:
        thread, box = in_thread(lambda: runner.run(job.uid))
        time.sleep(2.0)
        assert thread.is_alive()
    finally:
        _pg(postgres_server, "start")
    thread.join(120)
    assert "error" not in box, box.get("error")
    done: AnalysisJob = box["value"]
    assert done.status.phase.value == "Succeeded", done.status.message
    assert done.status.stages[0].attempts >= 2
    warehouse = Warehouse(pg_settings.warehouse.url or "")
    record = warehouse.get(job.uid)
    assert record is not None and record.id == done.status.results["warehouseRow"]
    fault_table.append(
        FaultRow("PostgreSQL stopped (immediate) and restarted", "Succeeded",
                 time.monotonic() - stopped, f"attempts {done.status.stages[0].attempts}, 1 row")
    )  # fmt: skip
