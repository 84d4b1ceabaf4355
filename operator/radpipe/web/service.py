"""What pages and the JSON API both do: user-aware job operations, each audited.

Who sees which job:

* admins see every job;
* a job that records a department (its requester's, when departments are configured) is
  refused to everyone else outside that department: 403, audited as denied;
* within that (or for jobs without a department), radiologists see every job and
  requesters only the jobs they asked for; another requester's job is reported as not
  found, so its existence does not leak.

With no departments configured no job records one, and the rules are the role rules alone.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from radpipe.api.models import AnalysisJob, JobSpec, Phase, StageState
from radpipe.local.runner import JobNotFound
from radpipe.web.artifacts import image_keys, report_key
from radpipe.web.audit import AuditLog
from radpipe.web.backend import CREATED, DEPARTMENT, REQUESTED_BY, JobBackend, describe
from radpipe.web.review import Decision, get_review, record_review
from radpipe.web.users import User

log = logging.getLogger(__name__)

#: Repeated views of the same job by the same person (page polling) are audited once per
#: this many seconds.
VIEW_AUDIT_WINDOW = 300.0


class DepartmentDenied(PermissionError):
    """The job belongs to another department (answered with 403)."""


#: What :meth:`JobService.access` answers.
ALLOWED, NOT_YOURS, OTHER_DEPARTMENT = "allowed", "not-yours", "other-department"


def access(user: User, requested_by: str, department: str) -> str:
    """Whether ``user`` may see a job asked for by ``requested_by`` for ``department``."""
    if user.has("admin"):
        return ALLOWED
    if department and department != user.department:
        return OTHER_DEPARTMENT
    if user.has("radiologist") or requested_by == user.name:
        return ALLOWED
    return NOT_YOURS


def job_access(user: User, job: AnalysisJob) -> str:
    """:func:`access` for a job."""
    annotations = job.metadata.annotations
    return access(user, annotations.get(REQUESTED_BY, ""), annotations.get(DEPARTMENT, ""))


@dataclass(frozen=True)
class JobView:
    """A job with what the job page shows besides its status."""

    job: AnalysisJob
    report: str | None
    images: list[str]
    review: dict[str, Any] | None


class JobService:
    """User-aware operations over a :class:`JobBackend`, writing the audit log."""

    def __init__(
        self, backend: JobBackend, audit: AuditLog, warehouse_url: str | None = None
    ) -> None:
        self.backend = backend
        self.audit = audit
        self.warehouse_url = warehouse_url
        self._seen: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------

    @staticmethod
    def visible(user: User, job: AnalysisJob) -> bool:
        """Whether ``user`` may see ``job``."""
        return job_access(user, job) == ALLOWED

    def list(
        self, user: User, phase: str | None = None, app: str | None = None, limit: int = 200
    ) -> list[AnalysisJob]:
        """The jobs the user may see, newest first, filtered by phase and app."""
        jobs = [j for j in self.backend.list_jobs() if self.visible(user, j)]
        if phase:
            jobs = [j for j in jobs if j.status.phase.value == phase]
        if app:
            jobs = [j for j in jobs if j.spec.app == app]
        return jobs[:limit]

    def _viewed(self, user: User, action: str, job: AnalysisJob, client: str | None) -> None:
        key = (user.name, action, job.uid)
        now = time.monotonic()
        with self._lock:
            if now - self._seen.get(key, -VIEW_AUDIT_WINDOW) < VIEW_AUDIT_WINDOW:
                return
            self._seen[key] = now
        self.audit.record(
            user.name, action, job=job.uid, accession=job.spec.accession, client=client
        )

    def get(self, user: User, uid: str, client: str | None = None) -> AnalysisJob:
        """One job the user may see (audited as a view); otherwise DepartmentDenied for
        another department's job, JobNotFound for anything else (both audited as denied)."""
        return self._get(user, uid, "job.view", client)

    def _get(self, user: User, uid: str, action: str, client: str | None) -> AnalysisJob:
        job = self.backend.get(uid)
        verdict = job_access(user, job)
        if verdict == OTHER_DEPARTMENT:
            self.audit.record(
                user.name,
                action,
                job=uid,
                outcome="denied",
                client=client,
                reason="department",
                department=user.department or "-",
            )
            raise DepartmentDenied(f"job {uid} belongs to another department")
        if verdict != ALLOWED:
            self.audit.record(user.name, action, job=uid, outcome="denied", client=client)
            raise JobNotFound(f"no job {uid!r}")
        self._viewed(user, "job.view", job, client)
        return job

    def view(self, user: User, uid: str, client: str | None = None) -> JobView:
        """A job with its report, images and review, for the job page."""
        job = self.get(user, uid, client)
        store = self.backend.store
        return JobView(
            job=job,
            report=report_key(store, job),
            images=image_keys(store, job),
            review=get_review(store, job.uid),
        )

    def report(
        self, user: User, uid: str, *, download: bool, client: str | None = None
    ) -> tuple[AnalysisJob, str]:
        """The store key of a job's PDF, audited as a view or a download."""
        action = "report.download" if download else "report.view"
        job = self._get(user, uid, action, client)
        key = report_key(self.backend.store, job)
        if key is None:
            raise JobNotFound(f"job {uid} has no report yet")
        self._viewed(user, action, job, client)
        return job, key

    def image(self, user: User, uid: str, key: str, client: str | None = None) -> str:
        """An overlay image key of a job, when it is one the page may show."""
        job = self._get(user, uid, "image.view", client)
        if key not in image_keys(self.backend.store, job):
            raise JobNotFound(f"job {uid} has no image {key}")
        return key

    # -- changing --------------------------------------------------------------------------

    def submit(self, user: User, spec: JobSpec, via: str, client: str | None = None) -> AnalysisJob:
        """Create a job for ``user`` (audited as a request)."""
        job = self.backend.submit(spec, requested_by=user.name, department=user.department)
        self.audit.record(
            user.name,
            "job.request",
            job=job.uid,
            accession=spec.accession,
            client=client,
            app=spec.app,
            priority=spec.priority.value,
            via=via,
            **({"department": user.department} if user.department else {}),
        )
        log.info("web request: %s by %s", describe(job), via, extra={"job": job.uid})
        return job

    def _own_or(self, user: User, job: AnalysisJob, role: str) -> bool:
        return user.has(role) or job.metadata.annotations.get(REQUESTED_BY) == user.name

    def cancel(self, user: User, uid: str, client: str | None = None) -> AnalysisJob:
        """Cancel a job (its requester, or an admin)."""
        job = self._get(user, uid, "job.cancel", client)
        if not self._own_or(user, job, "admin"):
            raise PermissionError("only the requester or an admin may cancel this job")
        job = self.backend.cancel(uid)
        self.audit.record(user.name, "job.cancel", job=uid, client=client)
        return job

    def retry_delivery(self, user: User, uid: str, client: str | None = None) -> AnalysisJob:
        """Deliver a job's results again (radiologist or admin, or the requester)."""
        job = self._get(user, uid, "delivery.retry", client)
        if not self._own_or(user, job, "radiologist"):
            raise PermissionError("only the requester, a radiologist or an admin may retry")
        job = self.backend.retry_delivery(uid)
        self.audit.record(user.name, "delivery.retry", job=uid, client=client)
        return job

    def review(
        self, user: User, uid: str, decision: Decision, comment: str, client: str | None = None
    ) -> dict[str, Any]:
        """Record a radiologist's decision on a finished result."""
        if not user.has("radiologist"):
            raise PermissionError("reviewing results needs the radiologist role")
        job = self._get(user, uid, f"review.{decision}", client)
        if job.status.phase not in (
            Phase.SUCCEEDED,
            Phase.AWAITING_REVIEW,
            Phase.DELIVERY_PENDING,
        ) and not any(
            s.name == "deliver" and s.state is StageState.FAILED for s in job.status.stages
        ):
            raise ValueError(
                f"there is no result to review yet: the job is {job.status.phase.value}"
            )
        record = record_review(
            self.backend.store, job, decision, comment, user.name, self.warehouse_url
        )
        self.audit.record(user.name, f"review.{decision}", job=uid, client=client)
        if job.status.phase is Phase.AWAITING_REVIEW:
            # Delivery is held for review: acceptance lets it go on; after a rejection the
            # deliver stage's review gate ends the job without sending anything.
            self.backend.release(uid)
            self.audit.record(user.name, "job.release", job=uid, client=client)
        return record


def created_at(job: AnalysisJob) -> str:
    """When the job was made (ISO), for ages and sorting."""
    return job.metadata.annotations.get(CREATED, "")
