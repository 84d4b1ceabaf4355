"""Deterministic names and labels of the objects the operator creates.

A stage Job's name is a function of the AnalysisJob, the stage and the attempt number
only, so an operator that restarts (or two reconciles that race) can never create the same
attempt twice: the second create answers 409 and the existing Job is used.
"""

from __future__ import annotations

import hashlib

GROUP = "radpipe.io"
MANAGED_BY = "radpipe-operator"

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_JOB = f"{GROUP}/job"
LABEL_JOB_UID = f"{GROUP}/job-uid"
LABEL_STAGE = f"{GROUP}/stage"
LABEL_ATTEMPT = f"{GROUP}/attempt"
LABEL_PRIORITY = f"{GROUP}/priority"

ANNOTATION_CANCEL = f"{GROUP}/cancel"
ANNOTATION_RELEASE = f"{GROUP}/release"
ANNOTATION_RETENTION = f"{GROUP}/retention"

#: Kubernetes Job names end up in pod labels (batch.kubernetes.io/job-name): at most 63.
MAX_JOB_NAME = 63

#: Selector of everything this operator owns.
OWNED_SELECTOR = {LABEL_MANAGED_BY: MANAGED_BY}


def _short_hash(text: str, length: int = 6) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def stage_job_name(job_name: str, job_uid: str, stage: str, attempt: int) -> str:
    """The batch/v1 Job name of one attempt of one stage: ``<job>-<stage>-<attempt>``.

    Long names are shortened with a hash of the AnalysisJob's uid, so they stay unique.
    """
    suffix = f"-{stage}-{attempt}"
    name = job_name + suffix
    if len(name) <= MAX_JOB_NAME:
        return name
    keep = MAX_JOB_NAME - len(suffix) - 7
    return f"{job_name[:keep].rstrip('-.')}-{_short_hash(job_uid)}{suffix}"


def label_value(text: str) -> str:
    """``text`` made a valid label value (63 chars, alphanumeric ends)."""
    if len(text) <= 63:
        return text
    return text[:56].rstrip("-._") + "-" + _short_hash(text)


def stage_labels(job_name: str, job_uid: str, stage: str, attempt: int) -> dict[str, str]:
    """Labels on a stage Job and its pod: who made it and which job/stage/attempt it is."""
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_PART_OF: "radpipe",
        LABEL_COMPONENT: "stage",
        LABEL_JOB: label_value(job_name),
        LABEL_JOB_UID: job_uid,
        LABEL_STAGE: stage,
        LABEL_ATTEMPT: str(attempt),
    }
