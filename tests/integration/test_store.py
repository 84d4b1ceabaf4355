"""The artifact store: one suite, run against the local directory and a real MinIO."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from radpipe.config import S3Config, StoreConfig
from radpipe.store import (
    ArtifactStore,
    ChecksumMismatch,
    LocalStore,
    ObjectNotFound,
    StoreError,
    StoreUnavailable,
    open_store,
)
from radpipe.store.s3 import S3Store
from tests.fixtures.minio import MinioServer


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    """The same tests on both backends; S3 uses the session's real MinIO server."""
    if request.param == "local":
        yield LocalStore(tmp_path / "artifacts")
        return
    server: MinioServer = request.getfixturevalue("minio_server")
    # A key prefix per test keeps tests apart in the shared bucket.
    config = StoreConfig(
        backend="s3", s3=S3Config(**server.store_config(prefix=f"t-{os.urandom(4).hex()}"))
    )
    yield open_store(config)


class FailingStream(io.RawIOBase):
    """Yields ``good`` bytes, then fails as a dropped connection would."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.left <= 0:
            raise ConnectionResetError("source went away")
        n = min(len(buffer), self.left, 1 << 20)
        buffer[:n] = b"\x01" * n
        self.left -= n
        return n


def test_roundtrip_bytes_json_and_info(store: ArtifactStore) -> None:
    info = store.put_bytes("jobs/j1/fetch/a.bin", b"hello")
    assert info.size == 5
    assert info.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert store.get_bytes("jobs/j1/fetch/a.bin", info.sha256) == b"hello"
    assert store.info("jobs/j1/fetch/a.bin") == info
    store.put_json("jobs/j1/fetch/result.json", {"state": "succeeded"})
    assert store.get_json("jobs/j1/fetch/result.json") == {"state": "succeeded"}
    assert store.exists("jobs/j1/fetch/a.bin")
    assert not store.exists("jobs/j1/fetch/b.bin")


def test_large_object_streams_in_parts_and_keeps_checksum(
    store: ArtifactStore, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    with open(source, "wb") as handle:
        for _ in range(40):  # 40 MiB: several 16 MiB parts on S3
            handle.write(block)
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    info = store.put_file("jobs/j2/preprocess/volume.bin", source)
    assert info.size == 40 << 20 and info.sha256 == expected
    copy = store.get_file("jobs/j2/preprocess/volume.bin", tmp_path / "copy.bin", expected)
    assert copy.sha256 == expected
    assert (tmp_path / "copy.bin").stat().st_size == 40 << 20


def test_interrupted_upload_leaves_nothing_readable(store: ArtifactStore) -> None:
    with pytest.raises(ConnectionResetError):
        store.put_stream("jobs/j3/infer/out.bin", io.BufferedReader(FailingStream(3 << 20)))
    assert not store.exists("jobs/j3/infer/out.bin")
    assert store.list("jobs/j3/") == []
    with pytest.raises(ObjectNotFound):
        store.get_bytes("jobs/j3/infer/out.bin")


def test_overwrite_is_atomic_for_readers(store: ArtifactStore) -> None:
    store.put_bytes("jobs/j4/x", b"old" * 1000)
    store.put_bytes("jobs/j4/x", b"new" * 1000)
    assert store.get_bytes("jobs/j4/x") == b"new" * 1000


def test_checksum_mismatch_is_reported(store: ArtifactStore, tmp_path: Path) -> None:
    store.put_bytes("jobs/j5/a", b"abc")
    with pytest.raises(ChecksumMismatch, match="re-run the stage"):
        store.get_bytes("jobs/j5/a", "0" * 64)
    with pytest.raises(ChecksumMismatch):
        store.get_file("jobs/j5/a", tmp_path / "a", "0" * 64)
    assert not (tmp_path / "a").exists()


def test_list_and_delete_prefix(store: ArtifactStore) -> None:
    for key in ("jobs/j6/fetch/1", "jobs/j6/fetch/sub/2", "jobs/j6/classify/3", "jobs/j66/x"):
        store.put_bytes(key, b"1")
    assert store.list("jobs/j6/fetch/") == ["jobs/j6/fetch/1", "jobs/j6/fetch/sub/2"]
    assert len(store.list("jobs/j6/")) == 3
    assert store.delete_prefix("jobs/j6/fetch/") == 2
    assert store.list("jobs/j6/") == ["jobs/j6/classify/3"]
    store.delete("jobs/j6/never-existed")  # not an error


def test_list_with_info_tags_change_on_rewrite(store: ArtifactStore) -> None:
    store.put_bytes("jobs/t1/job.json", b"{}")
    store.put_bytes("jobs/t2/job.json", b"{}")
    before = dict(store.list_with_info("jobs/"))
    assert sorted(before) == ["jobs/t1/job.json", "jobs/t2/job.json"]
    assert all(before.values())
    store.put_bytes("jobs/t1/job.json", b'{"a": 1}')
    after = dict(store.list_with_info("jobs/"))
    assert after["jobs/t1/job.json"] != before["jobs/t1/job.json"]
    assert after["jobs/t2/job.json"] == before["jobs/t2/job.json"]
    store.put_bytes("jobs/t1/fetch/x.dcm", b"1")
    assert [k for k, _ in store.list_with_info("jobs/", suffix="/job.json")] == sorted(before)


def test_bad_keys_are_refused(store: ArtifactStore) -> None:
    for key in ("", "/abs", "a/../b", "a//b"):
        with pytest.raises(StoreError, match="invalid artifact key"):
            store.put_bytes(key, b"x")


def test_unreachable_minio_retries_then_names_the_endpoint() -> None:
    from tests.fixtures.network import free_port

    port = free_port()  # nothing listens here: a real refused connection
    store = S3Store(f"127.0.0.1:{port}", "radpipe", "k", "s", attempts=3, backoff_seconds=0.05)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as err:
        store.put_bytes("jobs/x/a", b"1")
    assert f"127.0.0.1:{port}" in str(err.value)
    assert "after 3 attempts" in str(err.value)
    assert time.monotonic() - started >= 0.15  # backed off 0.05 + 0.1 between the tries


def test_minio_restart_within_retry_budget_is_survived(private_minio: MinioServer) -> None:
    store = open_store(
        StoreConfig(backend="s3", s3=S3Config(**private_minio.store_config(), attempts=8))
    )
    store.put_bytes("jobs/r/a", b"before")
    private_minio.stop()
    restart = threading.Timer(1.0, private_minio.start)
    restart.start()
    try:
        info = store.put_bytes("jobs/r/b", b"after")  # retried until MinIO is back
    finally:
        restart.join()
    assert store.get_bytes("jobs/r/b", info.sha256) == b"after"
    assert store.get_bytes("jobs/r/a") == b"before"
