"""Radiologist review of a result, and the hand-over of rejected cases to retraining.

A review is stored next to the job's artifacts (``jobs/<uid>/review.json``), so it survives
restarts and is the same in local and cluster mode. It keeps every decision made, newest
last; the latest one counts.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from radpipe.api.models import AnalysisJob, utcnow
from radpipe.pipeline.contract import job_prefix
from radpipe.store import ArtifactStore, ObjectNotFound

log = logging.getLogger(__name__)

Decision = Literal["accepted", "rejected"]
REVIEW_FILE = "review.json"
MAX_COMMENT = 2000


def get_review(store: ArtifactStore, uid: str) -> dict[str, Any] | None:
    """The review record of a job, or None when nobody reviewed it yet."""
    try:
        record: dict[str, Any] = store.get_json(job_prefix(uid) + REVIEW_FILE)
        return record
    except ObjectNotFound:
        return None


def record_review(
    store: ArtifactStore,
    job: AnalysisJob,
    decision: Decision,
    comment: str,
    reviewer: str,
    warehouse_url: str | None = None,
) -> dict[str, Any]:
    """Store a decision (who, when, comment); a rejection goes to the retraining set."""
    if decision not in ("accepted", "rejected"):
        raise ValueError("decision must be 'accepted' or 'rejected'")
    comment = comment.strip()[:MAX_COMMENT]
    if decision == "rejected" and not comment:
        raise ValueError("say why the result is rejected: the comment guides retraining")
    entry = {"decision": decision, "comment": comment, "reviewer": reviewer}
    entry["at"] = utcnow().isoformat(timespec="seconds")
    previous = get_review(store, job.uid) or {"history": []}
    history = [*previous.get("history", []), entry]
    record = {**history[-1], "job": job.uid, "app": job.spec.app, "history": history}
    if decision == "rejected":
        record["retraining"] = send_to_retraining(store, job, record, warehouse_url)
    store.put_json(job_prefix(job.uid) + REVIEW_FILE, record)
    return record


def send_to_retraining(
    store: ArtifactStore, job: AnalysisJob, review: dict[str, Any], warehouse_url: str | None
) -> str:
    """Queue a rejected case in the retraining set (radpipe.results.retraining); returns
    the case's store prefix. The warehouse marks the result rejected when it holds it."""
    from radpipe.results import retraining
    from radpipe.results.warehouse import open_warehouse

    detail = f"{review['reviewer']}: {review['comment']}"
    warehouse = None
    try:
        warehouse = open_warehouse(warehouse_url)
    except Exception:  # the case still goes to the store; the warehouse can import it later
        log.warning("warehouse unavailable; retraining case kept in the store only")
    try:
        if warehouse is not None:
            try:
                return retraining.reject(store, warehouse, job.uid, detail)
            except KeyError:
                pass  # no results row (e.g. an app without a warehouse step): queue directly
        return retraining.queue_case(
            store,
            warehouse,
            job_uid=job.uid,
            app=job.spec.app,
            reason="rejected",
            detail=detail,
            images=retraining.job_images(job.uid),
            labels=retraining.job_labels(job.uid),
        )
    finally:
        if warehouse is not None:
            warehouse.close()
