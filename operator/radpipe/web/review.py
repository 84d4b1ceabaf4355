"""Radiologist review of a result, and the hand-over of rejected cases to retraining.

A review is stored next to the job's artifacts (``jobs/<uid>/review.json``), so it survives
restarts and is the same in local and cluster mode. It keeps every decision made, newest
last; the latest one counts.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Literal

from radpipe.api.models import AnalysisJob, utcnow
from radpipe.pipeline.contract import job_prefix
from radpipe.store import ArtifactStore, ObjectNotFound

log = logging.getLogger(__name__)

Decision = Literal["accepted", "rejected"]
REVIEW_FILE = "review.json"
RETRAINING_FILE = "retraining.json"
MAX_COMMENT = 2000


def get_review(store: ArtifactStore, uid: str) -> dict[str, Any] | None:
    """The review record of a job, or None when nobody reviewed it yet."""
    try:
        record: dict[str, Any] = store.get_json(job_prefix(uid) + REVIEW_FILE)
        return record
    except ObjectNotFound:
        return None


def record_review(
    store: ArtifactStore, job: AnalysisJob, decision: Decision, comment: str, reviewer: str
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
        record["retraining"] = send_to_retraining(store, job, record)
    store.put_json(job_prefix(job.uid) + REVIEW_FILE, record)
    return record


def send_to_retraining(store: ArtifactStore, job: AnalysisJob, review: dict[str, Any]) -> str:
    """Queue a rejected case for retraining; returns where it went.

    Uses the results package's retraining queue when it exists; until then the case is
    written to ``jobs/<uid>/retraining.json``, which that queue can import.
    """
    try:
        retraining = importlib.import_module("radpipe.results.retraining")
    except ImportError:
        retraining = None
    hook = getattr(retraining, "add_rejected_case", None)
    if callable(hook):
        hook(job=job, reason=review["comment"], reviewer=review["reviewer"])
        return "results.retraining"
    case = {
        "job": job.uid,
        "app": job.spec.app,
        "reason": review["comment"],
        "reviewer": review["reviewer"],
        "at": review["at"],
        "modelVersions": job.status.model_versions,
        "selectedSeries": [s.get("seriesInstanceUID") for s in job.status.selected_series],
    }
    store.put_json(job_prefix(job.uid) + RETRAINING_FILE, case)
    log.info("rejected case queued for retraining", extra={"job": job.uid, "stage": "-"})
    return job_prefix(job.uid) + RETRAINING_FILE
