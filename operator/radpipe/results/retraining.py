"""The retraining set: cases the models got wrong or were unsure of, kept for the ML team.

A case goes in when postprocess's quality checks flag it, when the model's confidence is
low, or when a radiologist later rejects the result. It is copied, inside the artifact
store, to ``retraining/<app>/<job-uid>/``: ``images/`` (the model input), ``labels/`` (the
model output, to be corrected), and ``reason.json``; the warehouse lists the cases.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

from radpipe.results.warehouse import Warehouse
from radpipe.store import ArtifactStore, ObjectNotFound

Reason = Literal["qc", "low-confidence", "rejected"]

#: Model confidence below this sends a case to the retraining set.
LOW_CONFIDENCE = 0.6


def case_prefix(app: str, job_uid: str) -> str:
    """Store prefix of one retraining case."""
    return f"retraining/{app}/{job_uid}/"


def _copy(store: ArtifactStore, source: str, target: str) -> bool:
    try:
        with store.open(source) as stream:
            store.put_stream(target, stream)
    except ObjectNotFound:
        return False
    return True


def queue_case(
    store: ArtifactStore,
    warehouse: Warehouse | None,
    *,
    job_uid: str,
    app: str,
    reason: Reason,
    detail: str,
    images: Mapping[str, str],
    labels: Mapping[str, str],
) -> str:
    """Copy a case's images and labels (store keys by file name) and record why.

    Idempotent: queuing the same job for the same reason again changes nothing but the
    copies. Returns the case's store prefix.
    """
    prefix = case_prefix(app, job_uid)
    copied: dict[str, list[str]] = {"images": [], "labels": []}
    for kind, items in (("images", images), ("labels", labels)):
        for name, key in items.items():
            if _copy(store, key, f"{prefix}{kind}/{name}"):
                copied[kind].append(name)
    reasons_key = prefix + "reason.json"
    entries = store.get_json(reasons_key)["reasons"] if store.exists(reasons_key) else []
    if not any(e["reason"] == reason for e in entries):
        entries.append({"reason": reason, "detail": detail, "at": datetime.now(UTC).isoformat()})
    store.put_json(reasons_key, {"job": job_uid, "app": app, "reasons": entries, "files": copied})
    if warehouse is not None:
        warehouse.queue_retraining(job_uid, app, reason, detail, location=prefix)
    return prefix


def reject(store: ArtifactStore, warehouse: Warehouse, job_uid: str, detail: str) -> str:
    """A radiologist rejected a job's result: mark it and queue the case for retraining.

    The images and labels are taken from the job's own artifacts (preprocess input,
    infer prediction), so nothing is recomputed.
    """
    row = warehouse.get(job_uid)
    if row is None:
        raise KeyError(f"no results for job {job_uid} in the warehouse")
    warehouse.set_status(job_uid, "rejected")
    return queue_case(
        store,
        warehouse,
        job_uid=job_uid,
        app=row.app,
        reason="rejected",
        detail=detail,
        images=job_images(job_uid),
        labels=job_labels(job_uid),
    )


def job_images(job_uid: str) -> dict[str, str]:
    """Store keys of a job's model input (what preprocess wrote)."""
    base = f"jobs/{job_uid}/preprocess/"
    return {"input.npy": base + "input.npy", "mask.nii.gz": base + "mask.nii.gz"}


def job_labels(job_uid: str) -> dict[str, str]:
    """Store keys of a job's model output and postprocessed labels."""
    return {
        "prediction.npy": f"jobs/{job_uid}/infer/prediction.npy",
        "segmentation.npz": f"jobs/{job_uid}/postprocess/segmentation.npz",
    }
