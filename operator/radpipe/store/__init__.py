"""Artifact store: one interface, a local-directory backend and an S3/MinIO backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from radpipe.store.base import (
    ArtifactStore,
    ChecksumMismatch,
    ObjectInfo,
    ObjectNotFound,
    StoreError,
    StoreUnavailable,
)
from radpipe.store.local import LocalStore

if TYPE_CHECKING:
    from radpipe.config import StoreConfig

__all__ = [
    "ArtifactStore",
    "ChecksumMismatch",
    "LocalStore",
    "ObjectInfo",
    "ObjectNotFound",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]


def open_store(config: StoreConfig) -> ArtifactStore:
    """Build the store the configuration names (``local`` or ``s3``)."""
    if config.backend == "s3":
        from radpipe.store.s3 import S3Store  # minio is imported only when used

        s3 = config.s3
        return S3Store(
            s3.endpoint,
            s3.bucket,
            s3.access_key,
            s3.secret_key.get_secret_value(),
            secure=s3.secure,
            region=s3.region,
            prefix=s3.prefix,
            attempts=s3.attempts,
            backoff_seconds=s3.backoff_seconds,
            timeout_seconds=s3.timeout_seconds,
        )
    if config.root is None:  # Settings fills it from data_dir; a bare StoreConfig may not
        raise StoreError("store.root is not set: give the local store a directory")
    return LocalStore(config.root)
