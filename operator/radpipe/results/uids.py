"""Deterministic DICOM UIDs derived from the job uid.

A resend after a failure must carry the same UIDs (so the PACS sees the same instances,
not duplicates), and a re-run of the report stage must make the same objects: every UID
radpipe creates is a function of the job uid and what the UID names. They are ``2.25``
UIDs of name-based (version 5) UUIDs, as PS3.5 B.2 allows.
"""

from __future__ import annotations

import uuid

#: Namespace of radpipe's name-based UUIDs (itself a v5 UUID of the project URL).
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://radpipe.io/dicom-uids")


def derived_uid(job_uid: str, *parts: object) -> str:
    """A ``2.25.<n>`` UID that depends only on the job uid and ``parts``."""
    name = "/".join(["radpipe", job_uid, *(str(p) for p in parts)])
    return f"2.25.{uuid.uuid5(NAMESPACE, name).int}"
