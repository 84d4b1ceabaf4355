"""The local runner with its artifacts in a real MinIO (as stage pods use it in a cluster)."""

from __future__ import annotations

import os

import pytest

from radpipe.api.models import JobSpec, Phase
from radpipe.config import S3Config, Settings
from radpipe.local.runner import LocalRunner
from tests.fixtures.minio import MinioServer
from tests.fixtures.toy_app import COMPLETED_RUNS, SimulatedCrash


def test_job_over_minio_survives_a_runner_crash(
    toy_app: Settings, minio_server: MinioServer
) -> None:
    toy_app.store.backend = "s3"
    toy_app.store.s3 = S3Config(**minio_server.store_config(prefix=f"r-{os.urandom(4).hex()}"))
    runner = LocalRunner(toy_app)
    job = runner.submit(JobSpec(accession="S3ACC", app="toy", options={"crashOnce": True}))
    with pytest.raises(SimulatedCrash):
        runner.run(job.uid)
    done = LocalRunner(toy_app).run(job.uid)
    assert done.status.phase is Phase.SUCCEEDED
    assert COMPLETED_RUNS[(job.uid, "toy-consume")] == 1
    keys = runner.store.list(f"jobs/{job.uid}/")
    assert f"jobs/{job.uid}/toy-consume/partial.bin" not in keys
    assert f"jobs/{job.uid}/toy-consume/result.json" in keys
