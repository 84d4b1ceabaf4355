"""The review gate: results wait for a radiologist before anything is delivered.

A job needs review when its app says ``reviewRequired`` or its spec says
``review.required`` (a routing rule sets it). The deliver stage calls :func:`review_gate`
first:

* no decision yet → :class:`AwaitingReview` (the job waits in phase AwaitingReview; the
  web app's "accept" releases it and delivery runs);
* accepted → delivery goes on;
* rejected → :class:`StageError` "rejected by …": nothing is sent, the job ends Failed
  with that reason, and the case is in the retraining set with the comment.

The decision is the one the web app records in ``jobs/<uid>/review.json`` (the latest
entry counts); this module only reads it, so stages do not depend on the web package.
"""

from __future__ import annotations

from typing import Any

from radpipe.pipeline.contract import AwaitingReview, StageContext, StageError, job_prefix
from radpipe.store import ArtifactStore, ObjectNotFound

REVIEW_FILE = "review.json"


def review_required(ctx: StageContext) -> bool:
    """Whether this job's results must be accepted before delivery."""
    return bool(ctx.app.review_required or ctx.job.spec.review.required)


def read_review(store: ArtifactStore, job_uid: str) -> dict[str, Any] | None:
    """The job's review record (as the web app writes it), or None."""
    try:
        record = store.get_json(job_prefix(job_uid) + REVIEW_FILE)
    except ObjectNotFound:
        return None
    return record if isinstance(record, dict) else None


def _ensure_retraining(ctx: StageContext, record: dict[str, Any]) -> None:
    """A rejection recorded without the web app (e.g. a script) still reaches retraining."""
    if record.get("retraining"):
        return
    from radpipe.results import retraining

    retraining.queue_case(
        ctx.store,
        None,
        job_uid=ctx.job.uid,
        app=ctx.job.spec.app,
        reason="rejected",
        detail=f"{record.get('reviewer', '?')}: {record.get('comment', '')}",
        images=retraining.job_images(ctx.job.uid),
        labels=retraining.job_labels(ctx.job.uid),
    )


def review_gate(ctx: StageContext) -> dict[str, Any] | None:
    """Let delivery go on, hold it, or refuse it (see the module docstring).

    Returns the accepted review record (None when no review is needed).
    """
    if not review_required(ctx):
        return None
    record = read_review(ctx.store, ctx.job.uid)
    decision = (record or {}).get("decision")
    if record is None or decision not in ("accepted", "rejected"):
        raise AwaitingReview(
            "results wait for a radiologist's review before delivery",
            hint="a radiologist accepts or rejects them on the job page (or the review "
            "worklist, /review); nothing is sent before that",
        )
    if decision == "rejected":
        _ensure_retraining(ctx, record)
        comment = record.get("comment") or "no comment"
        raise StageError(
            f"results rejected by {record.get('reviewer', 'a radiologist')} "
            f"({record.get('at', 'time unknown')}): {comment}; nothing was delivered",
            hint="the case is in the retraining set; request a new analysis if one is needed",
        )
    return record
