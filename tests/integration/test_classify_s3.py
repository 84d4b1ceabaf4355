"""The classify stage reading instance headers from a real MinIO (as stage pods do)."""

from __future__ import annotations

import os

import pytest

from radpipe.api.apps import get_app
from radpipe.config import S3Config, Settings
from radpipe.pipeline.contract import result_key
from radpipe.pipeline.executor import execute_stage
from radpipe.stages.classify import read_series_header
from radpipe.store import open_store
from tests.fixtures.minio import MinioServer
from tests.unit.test_series_cli import ROUTINE, make_headers
from tests.unit.test_series_stage import _fake_fetch, _job

pytestmark = pytest.mark.integration


def test_classify_reads_headers_from_s3(settings: Settings, minio_server: MinioServer) -> None:
    settings.store.backend = "s3"
    settings.store.s3 = S3Config(**minio_server.store_config(prefix=f"c-{os.urandom(4).hex()}"))
    store = open_store(settings.store)
    series = make_headers(ROUTINE, seed=31, vendor="siemens")
    _fake_fetch(store, "s3-job", series)
    run = execute_stage(
        _job("s3-job", "glioma"), get_app("glioma").spec, "classify", store, settings
    )
    assert run.result.complete, run.result.message
    truth = {s["SeriesInstanceUID"]: s["class"] for s in series}
    assert {r: truth[uid] for r, uid in run.result.data["roles"].items()} == {
        "t1": "t1",
        "t1c": "t1c",
        "t2": "t2",
        "flair": "flair",
    }
    # the headers come from the instances in S3 (the manifest only carries Modality)
    entry = store.get_json(result_key("s3-job", "fetch"))["data"]["manifest"]["series"][1]
    header = read_series_header(store, entry)
    assert header.get("RepetitionTime") == pytest.approx(series[1]["RepetitionTime"])
    assert header.get("SequenceName") == series[1]["SequenceName"]
    assert header.instances == 3
    t1 = next(s for s in run.result.data["series"] if s["class"] == "t1")
    assert t1["probability"] > 0.9
