"""Artifact store backend: an S3 bucket (MinIO in the cluster and in tests).

An S3 object becomes visible only when its PUT (or the CompleteMultipartUpload of a
multipart upload) succeeds, so the object key itself is the commit point: an upload
interrupted half-way leaves nothing at the key. The SHA-256 of the content is computed
before the upload and stored as object metadata, so readers can verify what they read.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
import time
from collections.abc import Callable
from typing import IO, Any, BinaryIO, TypeVar, cast

import urllib3
from minio import Minio
from minio.error import S3Error, ServerError
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from radpipe.store.base import (
    CHUNK_SIZE,
    ArtifactStore,
    ObjectInfo,
    ObjectNotFound,
    StoreError,
    StoreUnavailable,
    VersionedKeys,
    validate_key,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Objects above this size are uploaded in parts of this size.
PART_SIZE = 16 * 1024 * 1024
#: Streams up to this size are spooled in memory before upload, larger ones on disk.
SPOOL_IN_MEMORY = 64 * 1024 * 1024
_SHA256_META = "sha256"
_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}


#: S3 error codes that mean "not now" rather than "no".
_TRANSIENT_CODES = {"XMinioServerNotInitialized", "SlowDown", "ServiceUnavailable", "InternalError"}


def _transient(err: S3Error) -> bool:
    """Whether an S3 error answer is worth retrying (server busy or starting)."""
    status = getattr(getattr(err, "response", None), "status", 0) or 0
    return err.code in _TRANSIENT_CODES or status >= 500


class _ReleasingReader(io.RawIOBase):
    """A readable stream over an S3 GET response that returns its connection when closed."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return cast(bytes, self._response.read())
        return cast(bytes, self._response.read(size))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
            self._response.release_conn()
        super().close()


class S3Store(ArtifactStore):
    """Objects live in one S3 bucket; every call retries transient failures with backoff."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        *,
        secure: bool = False,
        region: str | None = None,
        prefix: str = "",
        attempts: int = 5,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.attempts = max(1, attempts)
        self.backoff_seconds = backoff_seconds
        scheme = "https" if secure else "http"
        self.location = f"{scheme}://{endpoint}/{bucket}/{self.prefix}"
        # urllib3's own retries are off: our loop below owns retrying, so the total wait
        # and the final message are ours to control.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(5.0, timeout_seconds), read=timeout_seconds),
            retries=False,
            maxsize=16,
        )
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        self._bucket_checked = False

    # -- retry machinery -------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn``, retrying connection errors and 5xx answers with exponential backoff."""
        delay = self.backoff_seconds
        last: Exception | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except (S3Error, Urllib3HTTPError, ServerError, OSError) as err:
                # 404, 403 ... are definite answers; a 5xx (MinIO still starting:
                # XMinioServerNotInitialized, SlowDown ...) is worth retrying.
                if isinstance(err, S3Error) and not _transient(err):
                    raise
                last = err
                if attempt == self.attempts:
                    break
                log.warning(
                    "store %s: %s failed (attempt %d/%d): %s; retrying in %.1fs",
                    self.endpoint,
                    what,
                    attempt,
                    self.attempts,
                    type(err).__name__,
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        raise StoreUnavailable(
            f"S3/MinIO endpoint {self.endpoint} (bucket {self.bucket!r}) did not answer {what} "
            f"after {self.attempts} attempts ({type(last).__name__}: {last}). Check that the "
            "server is running and reachable, and store.s3.endpoint / credentials in the config."
        )

    def _ensure_bucket(self) -> None:
        if self._bucket_checked:
            return

        def ensure() -> None:
            if not self._client.bucket_exists(self.bucket):
                try:
                    self._client.make_bucket(self.bucket)
                except S3Error as err:
                    if err.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise

        try:
            self._call("bucket check", ensure)
        except S3Error as err:
            raise StoreError(
                f"cannot use bucket {self.bucket!r} at {self.endpoint}: {err.code} "
                f"({err.message}); check the access key's permissions"
            ) from err
        self._bucket_checked = True

    def _object(self, key: str) -> str:
        return self.prefix + validate_key(key)

    # -- primitives ----------------------------------------------------------------------

    def put_stream(self, key: str, stream: IO[bytes]) -> ObjectInfo:
        self._ensure_bucket()
        name = self._object(key)
        # Spool and hash first: the checksum goes into the object's metadata, and a
        # seekable copy lets a retried attempt resend from the start.
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            digest = hashlib.sha256()
            size = 0
            while chunk := stream.read(CHUNK_SIZE):
                digest.update(chunk)
                size += len(chunk)
                spool.write(chunk)
            sha256 = digest.hexdigest()

            def upload() -> None:
                spool.seek(0)
                self._client.put_object(
                    self.bucket,
                    name,
                    cast(BinaryIO, spool),
                    length=size,
                    part_size=PART_SIZE,
                    metadata={_SHA256_META: sha256},
                )

            self._call(f"upload of {key}", upload)
        return ObjectInfo(key=key, size=size, sha256=sha256)

    def open(self, key: str) -> BinaryIO:
        self._ensure_bucket()
        name = self._object(key)
        try:
            response = self._call(
                f"download of {key}", lambda: self._client.get_object(self.bucket, name)
            )
        except S3Error as err:
            if err.code in _NOT_FOUND_CODES:
                raise ObjectNotFound(f"no artifact {key!r} in {self.location}") from err
            raise StoreError(f"cannot read {key!r} from {self.location}: {err.code}") from err
        return cast(BinaryIO, io.BufferedReader(_ReleasingReader(response), CHUNK_SIZE))

    def info(self, key: str) -> ObjectInfo:
        self._ensure_bucket()
        name = self._object(key)
        try:
            stat = self._call(f"stat of {key}", lambda: self._client.stat_object(self.bucket, name))
        except S3Error as err:
            if err.code in _NOT_FOUND_CODES:
                raise ObjectNotFound(f"no artifact {key!r} in {self.location}") from err
            raise StoreError(f"cannot stat {key!r} in {self.location}: {err.code}") from err
        metadata = {k.lower(): v for k, v in (stat.metadata or {}).items()}
        sha256 = metadata.get(f"x-amz-meta-{_SHA256_META}", "")
        return ObjectInfo(key=key, size=int(stat.size or 0), sha256=sha256)

    def exists(self, key: str) -> bool:
        try:
            self.info(key)
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str = "") -> list[str]:
        self._ensure_bucket()
        full_prefix = self.prefix + prefix

        def listing() -> list[str]:
            objects = self._client.list_objects(self.bucket, prefix=full_prefix, recursive=True)
            return [obj.object_name[len(self.prefix) :] for obj in objects if obj.object_name]

        return sorted(self._call(f"listing of {prefix or '/'}", listing))

    def list_with_info(self, prefix: str = "", suffix: str = "") -> VersionedKeys:
        """Tags are ``etag:last_modified:size`` from the same listing call as the keys."""
        self._ensure_bucket()
        full_prefix = self.prefix + prefix

        def listing() -> list[tuple[str, str | None]]:
            objects = self._client.list_objects(self.bucket, prefix=full_prefix, recursive=True)
            listed: list[tuple[str, str | None]] = []
            for obj in objects:
                if not obj.object_name or not obj.object_name.endswith(suffix):
                    continue
                modified = obj.last_modified.isoformat() if obj.last_modified else ""
                tag = f"{obj.etag}:{modified}:{obj.size}" if obj.etag else None
                listed.append((obj.object_name[len(self.prefix) :], tag))
            return listed

        return sorted(self._call(f"listing of {prefix or '/'}", listing))

    def delete(self, key: str) -> None:
        self._ensure_bucket()
        name = self._object(key)
        self._call(f"delete of {key}", lambda: self._client.remove_object(self.bucket, name))
