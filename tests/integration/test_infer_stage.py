"""The infer stage end to end: in-process ONNX Runtime and the served model give the same
outputs; a model server killed mid-job is retried until it is back; clear failures."""

from __future__ import annotations

import io
import json
import logging
import tempfile
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from radpipe.api.apps import get_app
from radpipe.api.models import AnalysisJob, JobSpec, ObjectMeta
from radpipe.config import ModelEndpointConfig, Settings
from radpipe.pipeline.contract import StageResult, result_key, stage_prefix
from radpipe.pipeline.executor import execute_stage
from radpipe.preprocessing import grid
from radpipe.store import ArtifactStore, LocalStore, ObjectInfo
from tests.fixtures.model_server import ModelServerProcess, bundled_version

pytestmark = pytest.mark.integration

MODELS = {"glioma": "glioma-unet", "metastasis": "metastasis-unet", "hemorrhage": "hemorrhage-cnn"}


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def commit_mr_preprocess(
    store: ArtifactStore, uid: str, volume: np.ndarray, mask: np.ndarray
) -> None:
    """Commit ``volume`` and ``mask`` as the MR preprocess stage leaves them."""
    prefix = stage_prefix(uid, "preprocess")
    outputs = {"input.npy": store.put_bytes(prefix + "input.npy", _npy(volume))}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mask.nii.gz"
        nib.save(nib.Nifti1Image(mask, grid.affine_ras()), str(path))
        outputs["mask.nii.gz"] = store.put_file(prefix + "mask.nii.gz", path)
    _commit(store, uid, outputs)


def _commit(store: ArtifactStore, uid: str, outputs: dict[str, ObjectInfo]) -> None:
    result = StageResult(
        job=uid,
        stage="preprocess",
        state="succeeded",
        attempt=1,
        outputs={k: v.as_dict() for k, v in outputs.items()},
    )
    store.put_json(result_key(uid, "preprocess"), result.model_dump(mode="json"))


def _preprocessed(store: LocalStore, uid: str, app: str) -> None:
    """A committed preprocess result, as the preprocess stage leaves it (small brain)."""
    rng = np.random.default_rng(7)
    if app == "hemorrhage":
        prefix = stage_prefix(uid, "preprocess")
        slices = rng.random((5, 3, 256, 256), dtype=np.float32)
        table = [{"index": k, "z": float(k * 5)} for k in range(5)]
        outputs = {
            "input.npy": store.put_bytes(prefix + "input.npy", _npy(slices)),
            "slices.json": store.put_json(prefix + "slices.json", table),
        }
        _commit(store, uid, outputs)
        return
    volume = np.zeros((4, *grid.SHAPE), np.float32)
    mask = np.zeros(grid.SHAPE, np.uint8)
    # A small "brain" keeps the test fast: the stage crops to the mask's bounding box.
    mask[100:136, 100:140, 60:92] = 1
    volume[:, mask > 0] = rng.standard_normal((4, int(mask.sum())), dtype=np.float32)
    volume[1, 110:118, 110:118, 70:78] = 4.0  # a bright "enhancing" blob on T1c
    commit_mr_preprocess(store, uid, volume, mask)


def _job(uid: str, app: str) -> AnalysisJob:
    return AnalysisJob(
        metadata=ObjectMeta(name=uid, uid=uid), spec=JobSpec(accession="A1", app=app)
    )


def _run(settings: Settings, uid: str, app: str) -> tuple[StageResult, LocalStore]:
    assert settings.store.root is not None
    store = LocalStore(settings.store.root)
    if not store.exists(result_key(uid, "preprocess")):
        _preprocessed(store, uid, app)
    run = execute_stage(_job(uid, app), get_app(app).spec, "infer", store, settings)
    return run.result, store


def _prediction(store: LocalStore, uid: str, name: str = "prediction.npy") -> np.ndarray:
    return np.load(io.BytesIO(store.get_bytes(stage_prefix(uid, "infer") + name)))


@pytest.fixture
def model_settings(
    settings: Settings, served_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Settings using the test copy of the models; one ORT thread, as the test server."""
    monkeypatch.setenv("RADPIPE_ORT_THREADS", "1")
    settings.models.dir = served_models_dir
    return settings


@pytest.mark.parametrize("app", ["glioma", "metastasis", "hemorrhage"])
def test_served_and_in_process_outputs_are_the_same(
    model_settings: Settings, model_server: ModelServerProcess, app: str
) -> None:
    uid = f"same-{app}"
    local, store = _run(model_settings, uid, app)
    assert local.state == "succeeded", local.message
    name = MODELS[app]
    assert local.data["modelVersions"] == {name: bundled_version(name)}
    assert local.provenance["models"][0]["where"].startswith("in-process")
    a = _prediction(store, uid)
    pa = _prediction(store, uid, "probability.npy") if app == "metastasis" else None

    # The same job's infer stage again, now against the server (the preprocess output stays).
    store.delete_prefix(stage_prefix(uid, "infer"))
    model_settings.models.endpoints[name] = ModelEndpointConfig(url=model_server.url)
    served, _ = _run(model_settings, uid, app)
    assert served.state == "succeeded", served.message
    assert served.data["modelVersions"] == {name: bundled_version(name)}
    assert served.provenance["models"][0]["where"] == model_server.url
    sha = local.provenance["models"][0]["onnxSha256"]
    assert served.provenance["models"][0]["onnxSha256"] == sha

    b = _prediction(store, uid)
    assert a.dtype == b.dtype and a.shape == b.shape
    if app == "hemorrhage":
        assert a.shape == (5, 6)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        assert set(served.data["studyProbabilities"]) >= {"any", "subdural"}
    elif app == "glioma":
        assert a.shape == grid.SHAPE and a.dtype == np.uint8
        assert set(np.unique(a)) <= {0, 1, 2, 4}
        np.testing.assert_array_equal(a, b)
        assert served.data["volumesCm3"] == local.data["volumesCm3"]
    else:
        assert pa is not None
        pb = _prediction(store, uid, "probability.npy")
        np.testing.assert_allclose(pa.astype(np.float32), pb.astype(np.float32), atol=1e-3)
        np.testing.assert_array_equal(a, b)
        lesions = json.loads(store.get_bytes(stage_prefix(uid, "infer") + "lesions.json"))
        assert len(lesions) == served.data["lesionCount"]


def test_a_killed_server_is_retried_until_it_is_back(
    model_settings: Settings,
    restartable_model_server: ModelServerProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = restartable_model_server
    model_settings.models.endpoints["hemorrhage-cnn"] = ModelEndpointConfig(
        url=server.url, attempts=30, backoff_seconds=0.5, max_backoff_seconds=2.0
    )
    assert model_settings.store.root is not None
    _preprocessed(LocalStore(model_settings.store.root), "retry-1", "hemorrhage")
    outcome: dict[str, StageResult] = {}

    def job() -> None:
        outcome["result"] = _run(model_settings, "retry-1", "hemorrhage")[0]

    server.kill()  # the server dies as the job reaches inference
    caplog.set_level(logging.WARNING, logger="radpipe.serving.v2_client")
    worker = threading.Thread(target=job)
    worker.start()
    time.sleep(1.5)
    assert worker.is_alive(), "the stage should be waiting and retrying"
    server.start()
    worker.join(timeout=120)
    result = outcome["result"]
    assert result.state == "succeeded", result.message
    assert result.data["modelVersions"] == {"hemorrhage-cnn": bundled_version("hemorrhage-cnn")}
    assert any("retry" in r.getMessage() and server.url in r.getMessage() for r in caplog.records)


def test_a_server_that_stays_down_is_a_retryable_failure_naming_the_url(
    model_settings: Settings,
) -> None:
    url = "http://127.0.0.1:9"  # discard port: nothing listens
    model_settings.models.endpoints["hemorrhage-cnn"] = ModelEndpointConfig(
        url=url, attempts=2, backoff_seconds=0.01
    )
    result, _ = _run(model_settings, "down-1", "hemorrhage")
    assert result.state == "failed" and result.retryable
    assert url in (result.message or "")


def test_input_of_the_wrong_shape_is_a_permanent_failure(model_settings: Settings) -> None:
    assert model_settings.store.root is not None
    store = LocalStore(model_settings.store.root)
    prefix = stage_prefix("bad-1", "preprocess")
    info = store.put_bytes(prefix + "input.npy", _npy(np.zeros((4, 10, 10, 10), np.float32)))
    mask = store.put_bytes(prefix + "mask.nii.gz", b"unused")
    result = StageResult(
        job="bad-1",
        stage="preprocess",
        state="succeeded",
        attempt=1,
        outputs={"input.npy": info.as_dict(), "mask.nii.gz": mask.as_dict()},
    )
    store.put_json(result_key("bad-1", "preprocess"), result.model_dump(mode="json"))
    run = execute_stage(
        _job("bad-1", "glioma"), get_app("glioma").spec, "infer", store, model_settings
    )
    assert run.result.state == "failed" and not run.result.retryable
    assert "shape" in (run.result.message or "")
