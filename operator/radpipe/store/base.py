"""The artifact store interface shared by the local-directory and S3/MinIO backends.

Every stage reads and writes its artifacts through an :class:`ArtifactStore`, under
``jobs/<job-uid>/<stage>/``. Writes are atomic per object: a reader either sees the whole
object or nothing, so an interrupted upload can never be read as complete. Objects carry a
SHA-256 checksum computed while streaming; readers may pass the checksum they expect.
"""

from __future__ import annotations

import hashlib
import io
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

#: Streaming block size: large objects are never held in memory whole.
CHUNK_SIZE = 8 * 1024 * 1024


class StoreError(Exception):
    """Base class of artifact-store errors; the message says what to do."""


class ObjectNotFound(StoreError):
    """The key does not exist (or was never committed)."""


class ChecksumMismatch(StoreError):
    """The bytes read back do not match the checksum recorded when they were written."""


class StoreUnavailable(StoreError):
    """The store's backend could not be reached after retries."""


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows about one committed object."""

    key: str
    size: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form, as recorded in a stage's ``result.json`` outputs."""
        return {"key": self.key, "size": self.size, "sha256": self.sha256}


class HashingReader(io.RawIOBase):
    """Wraps a readable stream, hashing and counting the bytes as they pass through."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data:
            self.sha256.update(data)
            self.size += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def validate_key(key: str) -> str:
    """Refuse keys that could escape the store root or that are empty."""
    if not key or key.startswith("/") or "\\" in key:
        raise StoreError(f"invalid artifact key {key!r}: keys are relative, '/'-separated paths")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise StoreError(f"invalid artifact key {key!r}: empty, '.' or '..' path segments")
    return key


#: ``(key, version tag)`` pairs from :meth:`ArtifactStore.list_with_info`.
VersionedKeys = list[tuple[str, str | None]]


class ArtifactStore(ABC):
    """One interface over the local directory and S3/MinIO backends."""

    #: A short description of where objects live (a path or an endpoint/bucket), for messages.
    location: str

    @abstractmethod
    def put_stream(self, key: str, stream: IO[bytes]) -> ObjectInfo:
        """Store everything readable from ``stream`` under ``key``, atomically.

        Until the call returns, no reader can see a partial object at ``key``.
        """

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Open a committed object for streaming reads. Raises :class:`ObjectNotFound`."""

    @abstractmethod
    def info(self, key: str) -> ObjectInfo:
        """Size and checksum of a committed object. Raises :class:`ObjectNotFound`."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a committed object exists at ``key``."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys of committed objects under ``prefix``, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove one object; a missing key is not an error."""

    # Convenience methods built on the primitives above.

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        """Store a bytes value under ``key``."""
        return self.put_stream(key, io.BytesIO(data))

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        """Stream a local file into the store."""
        with open(path, "rb") as handle:
            return self.put_stream(key, handle)

    def put_json(self, key: str, value: Any) -> ObjectInfo:
        """Store a JSON document (UTF-8, indented for people reading it)."""
        return self.put_bytes(key, json.dumps(value, indent=2, sort_keys=True).encode())

    def get_bytes(self, key: str, expected_sha256: str | None = None) -> bytes:
        """Read a whole object; verify it when ``expected_sha256`` is given."""
        with self.open(key) as handle:
            data = handle.read()
        if expected_sha256 is not None:
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected_sha256:
                raise ChecksumMismatch(
                    f"{key} in {self.location}: sha256 {actual} != recorded {expected_sha256}; "
                    "the object was changed after it was written — re-run the stage that made it"
                )
        return data

    def get_json(self, key: str) -> Any:
        """Read a JSON document."""
        return json.loads(self.get_bytes(key))

    def get_file(self, key: str, dest: Path, expected_sha256: str | None = None) -> ObjectInfo:
        """Stream an object to a local file, atomically, verifying its checksum if given."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        digest = hashlib.sha256()
        size = 0
        with self.open(key) as source, open(partial, "wb") as target:
            while chunk := source.read(CHUNK_SIZE):
                digest.update(chunk)
                size += len(chunk)
                target.write(chunk)
        if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
            partial.unlink(missing_ok=True)
            raise ChecksumMismatch(
                f"{key} in {self.location}: sha256 {digest.hexdigest()} != recorded "
                f"{expected_sha256}; re-run the stage that made it"
            )
        partial.replace(dest)
        return ObjectInfo(key=key, size=size, sha256=digest.hexdigest())

    def list_with_info(self, prefix: str = "", suffix: str = "") -> VersionedKeys:
        """``(key, version tag)`` of the committed objects under ``prefix`` whose keys end
        with ``suffix``, sorted by key.

        The tag changes whenever the object is rewritten, so a caller may keep what it
        derived from an object while the tag stays the same; ``None`` means this store cannot
        tell (never reuse). This default lists keys only.
        """
        return [(key, None) for key in self.list(prefix) if key.endswith(suffix)]

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many were deleted."""
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def iter_json(self, prefix: str) -> Iterator[tuple[str, Any]]:
        """Yield ``(key, document)`` for each ``.json`` object under ``prefix``."""
        for key in self.list(prefix):
            if key.endswith(".json"):
                yield key, self.get_json(key)
