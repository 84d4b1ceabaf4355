"""Faults of the real servers under the local runner: PACS refusing and killed mid-C-MOVE,
MinIO killed mid-upload, the model server killed mid-inference, PostgreSQL restarted.

For each: the job ends Succeeded once the fault clears (or Failed / a StoreError naming
what to check when it does not), every artifact a stage committed matches the checksum
in its result.json, each stage completes once, and nothing is stored twice.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from radpipe.api.models import AnalysisJob, JobSpec
from radpipe.config import ModelEndpointConfig, Settings
from radpipe.local.runner import LocalRunner
from radpipe.pipeline.contract import (
    Stage,
    StageContext,
    StageOutcome,
    read_result,
    result_key,
    stage_prefix,
)
from radpipe.pipeline.registry import register_stage, unregister_stage
from radpipe.preprocessing import grid
from radpipe.serving.spec import default_models_dir
from radpipe.store import ArtifactStore, LocalStore, StoreError
from tests.faults.conftest import FaultRow
from tests.fixtures import toy_app as toy
from tests.fixtures.dicom_studies import make_study
from tests.fixtures.minio import MinioServer
from tests.fixtures.model_server import ModelServerProcess, bundled_version
from tests.fixtures.network import wait_until
from tests.fixtures.pacs import OrthancServer
from tests.fixtures.postgres import PostgresServer, _bin_dir
from tests.integration.test_infer_stage import commit_mr_preprocess

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


# -- Model server ---------------------------------------------------------------------

INFER_APP = """
apiVersion: radpipe.io/v1alpha1
kind: AnalysisApp
metadata: {name: faultinfer}
spec:
  title: Glioma inference only (fault tests)
  modality: MR
  models:
    - {role: segmenter, inferenceService: glioma-unet, version: latest}
  stages: [{name: infer}]
"""

#: The test "brain": its bounding box plus the stage's 4-voxel margin fits one 128³ patch of
#: the bundled glioma model, so a request costs one full-size patch (seconds, not ms).
BRAIN = (slice(64, 184), slice(60, 180), slice(20, 130))


class RecordingStore(LocalStore):
    """The real local store, also recording the key of every committed write in order."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.writes: list[str] = []

    def put_stream(self, key: str, stream: Any) -> Any:
        info = super().put_stream(key, stream)
        self.writes.append(key)
        return info


def _commit_preprocess(store: ArtifactStore, uid: str) -> None:
    """A committed preprocess result for ``uid``, as the preprocess stage leaves it."""
    rng = np.random.default_rng(11)
    mask = np.zeros(grid.SHAPE, np.uint8)
    mask[BRAIN] = 1
    volume = np.zeros((len(grid.MR_CHANNELS), *grid.SHAPE), np.float32)
    volume[(slice(None), *BRAIN)] = rng.standard_normal(
        (len(grid.MR_CHANNELS), *mask[BRAIN].shape), dtype=np.float32
    )
    volume[1, 110:126, 100:116, 60:76] += 4.0  # an enhancing blob on T1c
    commit_mr_preprocess(store, uid, volume, mask)


@pytest.fixture
def glioma_server(tmp_path: Path) -> Iterator[ModelServerProcess]:
    """A ModelServer of the test's own with the bundled glioma model (full 128³ patches)."""
    models = tmp_path / "models"
    shutil.copytree(default_models_dir() / "glioma-unet", models / "glioma-unet")
    server = ModelServerProcess(models, tmp_path / "server.log", names=("glioma-unet",))
    server.start()
    yield server
    server.stop()


def test_model_server_killed_mid_inference_and_restarted(
    settings: Settings, glioma_server: ModelServerProcess, tmp_path: Path, fault_table: list
) -> None:
    server = glioma_server
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "faultinfer.yaml").write_text(INFER_APP)
    settings.apps_dir = tmp_path / "apps"
    settings.models.dir = server.models_dir
    # Enough client retries to ride out a restart: the stage itself runs once.
    settings.models.endpoints["glioma-unet"] = ModelEndpointConfig(
        url=server.url, attempts=80, backoff_seconds=0.25, max_backoff_seconds=1.0
    )
    assert settings.store.root is not None
    store = RecordingStore(settings.store.root)
    runner = LocalRunner(settings, store=store)
    job = runner.submit(JobSpec(accession="FLT-KSV", app="faultinfer"))
    _commit_preprocess(store, job.uid)
    started_line, finished_line = "inference started: model glioma-unet", "inference finished"

    thread, box = in_thread(lambda: runner.run(job.uid))
    # The server has decoded the request and is running the network: kill it now.
    wait_until(lambda: len(server.log_lines(started_line)) == 1, 120, "inference started")
    server.kill()
    killed = time.monotonic()
    assert not server.log_lines(finished_line), "the kill came after the inference ended"
    assert thread.is_alive(), box
    # Nothing of the stage is committed while the server is down: no result.json to misread.
    assert read_result(store, job.uid, "infer") is None
    assert not store.list(stage_prefix(job.uid, "infer"))
    server.start()  # same ports; the client's retry finds it
    restarted = time.monotonic() - killed
    thread.join(300)
    assert "error" not in box, box.get("error")
    done: AnalysisJob = box["value"]
    recovered = time.monotonic() - killed

    assert done.status.phase.value == "Succeeded", done.status.message
    (infer,) = done.status.stages
    assert infer.name == "infer" and infer.state.value == "Succeeded"
    assert infer.attempts == 1  # the V2 client retried the call; the stage ran once
    assert len(server.log_lines(started_line)) == 2  # the killed request, then the retry
    assert len(server.log_lines(finished_line)) == 1
    prefix = stage_prefix(job.uid, "infer")
    infer_writes = [k for k in store.writes if k.startswith(prefix)]
    assert infer_writes.count(result_key(job.uid, "infer")) == 1, infer_writes
    assert infer_writes[-1] == result_key(job.uid, "infer")  # written last, once complete
    assert_committed_outputs_intact(store, done)
    result = read_result(store, job.uid, "infer")
    assert result is not None and result.attempt == 1
    assert result.data["modelVersions"] == {"glioma-unet": bundled_version("glioma-unet")}

    # The same input through an unfaulted job on the restarted server: the same answer.
    clean = runner.submit(JobSpec(accession="FLT-KSV2", app="faultinfer"))
    _commit_preprocess(store, clean.uid)
    reference = runner.run(clean.uid)
    assert reference.status.phase.value == "Succeeded", reference.status.message
    faulted_labels = np.load(io.BytesIO(store.get_bytes(prefix + "prediction.npy")))
    clean_labels = np.load(
        io.BytesIO(store.get_bytes(stage_prefix(clean.uid, "infer") + "prediction.npy"))
    )
    assert faulted_labels.shape == grid.SHAPE and faulted_labels.dtype == np.uint8
    np.testing.assert_array_equal(faulted_labels, clean_labels)
    clean_result = read_result(store, clean.uid, "infer")
    assert clean_result is not None
    assert result.data["volumesCm3"] == clean_result.data["volumesCm3"]
    assert result.data["volumesCm3"]["WT"] > 0  # the network did find something to compare
    fault_table.append(
        FaultRow("model server killed mid-inference, restarted", "Succeeded", recovered,
                 f"restart {restarted:.1f} s; stage attempts 1; result.json written once")
    )  # fmt: skip
