"""Artifact store backend: a directory on the local filesystem (the embedded default)."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import IO, BinaryIO

from radpipe.store.base import (
    CHUNK_SIZE,
    ArtifactStore,
    ObjectInfo,
    ObjectNotFound,
    VersionedKeys,
    validate_key,
)

#: Uploads land here first and are renamed into place only when complete.
_STAGING_DIR = ".staging"


class LocalStore(ArtifactStore):
    """Objects are files under ``root``; a write is a temporary file renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.location = str(self.root)
        (self.root / _STAGING_DIR).mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put_stream(self, key: str, stream: IO[bytes]) -> ObjectInfo:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = self.root / _STAGING_DIR / f"{uuid.uuid4().hex}.partial"
        digest = hashlib.sha256()
        size = 0
        try:
            with open(staging, "wb") as handle:
                while chunk := stream.read(CHUNK_SIZE):
                    digest.update(chunk)
                    size += len(chunk)
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            # rename is atomic within one filesystem: readers see all of it or none.
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
        return ObjectInfo(key=key, size=size, sha256=digest.hexdigest())

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(f"no artifact {key!r} in {self.location}")
        return open(path, "rb")

    def info(self, key: str) -> ObjectInfo:
        digest = hashlib.sha256()
        size = 0
        with self.open(key) as handle:
            while chunk := handle.read(CHUNK_SIZE):
                digest.update(chunk)
                size += len(chunk)
        return ObjectInfo(key=key, size=size, sha256=digest.hexdigest())

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        base = self.root / prefix.rstrip("/") if prefix else self.root
        if prefix and not prefix.endswith("/") and base.is_file():
            return [prefix]
        search_root = base if base.is_dir() else base.parent
        root = str(self.root)
        cut = len(root) + 1
        keys: list[str] = []
        # Plain string paths: Path objects per file cost more than the walk itself.
        for dirpath, dirnames, filenames in os.walk(search_root):
            if dirpath == root:
                dirnames[:] = [d for d in dirnames if d != _STAGING_DIR]
            rel = dirpath[cut:]
            for name in filenames:
                key = f"{rel}/{name}" if rel else name
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def list_with_info(self, prefix: str = "", suffix: str = "") -> VersionedKeys:
        """Tags are ``inode:mtime_ns:size``: a write renames a new file into place, so any
        rewrite changes the inode even within the file system's timestamp resolution."""
        listed: list[tuple[str, str | None]] = []
        root = str(self.root)
        for key in self.list(prefix):
            if not key.endswith(suffix):
                continue
            try:
                st = os.stat(f"{root}/{key}")
            except FileNotFoundError:
                continue  # deleted since it was listed
            listed.append((key, f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"))
        return listed

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Tidy empty directories so a deleted job leaves nothing behind.
        parent = path.parent
        while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
