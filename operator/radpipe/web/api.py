"""The JSON API under /api/v1. The pages use it for live updates; scripts use it with a
session or HTTP Basic. Writes from a browser session need the ``X-CSRF-Token`` header."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from radpipe.api.models import AnalysisJob, JobSpec, Phase
from radpipe.local.runner import JobNotFound, SubmitError
from radpipe.web.auth import api_user, require_role
from radpipe.web.backend import BackendError
from radpipe.web.events import Change, JobEvents
from radpipe.web.forms import ACCESSION_RULE
from radpipe.web.review import MAX_COMMENT
from radpipe.web.security import CSRF_HEADER, check_csrf
from radpipe.web.service import ALLOWED, JobService, access
from radpipe.web.users import User

router = APIRouter(prefix="/api/v1", tags=["jobs"])
ApiUser = Annotated[User, Depends(api_user)]


def _service(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def writer(request: Request, user: ApiUser) -> User:
    """Dependency of API writes: a session caller must send the CSRF header too."""
    if getattr(request.state, "via_session", False):
        check_csrf(request, request.headers.get(CSRF_HEADER))
    return user


Writer = Annotated[User, Depends(writer)]


class AppInfo(BaseModel):
    """An analysis app as the request form shows it."""

    name: str
    title: str
    description: str
    modality: str
    options: dict[str, Any]


class ReviewRequest(BaseModel):
    """A radiologist's decision on a result."""

    decision: Literal["accepted", "rejected"]
    comment: str = Field("", max_length=MAX_COMMENT)


class Me(BaseModel):
    """Who is signed in."""

    name: str
    display: str
    roles: list[str]
    via: str
    #: Only when departments are in use.
    department: str | None = None


def _not_found(err: Exception) -> HTTPException:
    return HTTPException(status_code=404, detail=str(err))


def _job(job: AnalysisJob) -> dict[str, Any]:
    return job.wire()


@router.get("/me", response_model=Me, response_model_exclude_none=True)
def me(user: ApiUser) -> Me:
    """The signed-in user and their roles."""
    return Me(
        name=user.name,
        display=user.display,
        roles=list(user.roles),
        via=user.via,
        department=user.department or None,
    )


@router.get("/apps", response_model=list[AppInfo])
def list_apps(request: Request, user: ApiUser) -> list[AppInfo]:
    """The analysis apps and their options schemas."""
    apps = _service(request).backend.apps()
    return [
        AppInfo(
            name=name,
            title=app.spec.title,
            description=app.spec.description,
            modality=app.spec.modality,
            options=app.spec.options,
        )
        for name, app in sorted(apps.items())
    ]


@router.get("/accession-rule")
def accession_rule(user: ApiUser) -> dict[str, str]:
    """The accession number rule (regular expression and words)."""
    from radpipe.api.models import ACCESSION_PATTERN

    return {"pattern": ACCESSION_PATTERN, "rule": ACCESSION_RULE}


@router.get("/jobs", response_model=list[AnalysisJob], response_model_exclude_none=True)
def list_jobs(
    request: Request,
    user: ApiUser,
    phase: Annotated[Phase | None, Query(description="only jobs in this phase")] = None,
    app: Annotated[str | None, Query(description="only jobs of this app")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Jobs the caller may see, newest first."""
    jobs = _service(request).list(user, phase.value if phase else None, app, limit)
    return [_job(j) for j in jobs]


@router.post("/jobs", status_code=201, response_model=AnalysisJob, response_model_exclude_none=True)
def submit_job(spec: JobSpec, request: Request, user: Writer) -> dict[str, Any]:
    """Request an analysis: the job starts at once; poll GET /jobs/{uid} for its status."""
    require_role(user, "requester")
    try:
        job = _service(request).submit(user, spec, via="api", client=_client(request))
    except (SubmitError, BackendError) as err:
        raise HTTPException(status_code=422, detail=str(err)) from err
    return _job(job)


@router.get(
    "/jobs/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def job_events(
    request: Request,
    user: ApiUser,
    job: Annotated[str | None, Query(description="only this job's changes")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Live job changes as server-sent events (``text/event-stream``), for the jobs the
    caller may see.

    Each ``job`` event's data is JSON with the job id, its phase, current stage and that
    stage's progress, and each stage's state and progress: nothing about the patient; read
    GET /jobs/{uid} for the rest. A ``ready`` event opens the stream; a stream ends after a
    minute and EventSource reconnects by itself, sending Last-Event-ID so nothing is missed.
    """
    service = _service(request)
    if job is not None:
        # Fails (404/403, audited) before the stream starts when the job is not theirs.
        try:
            await run_in_threadpool(service.get, user, job, _client(request))
        except JobNotFound as err:
            raise _not_found(err) from err
    events: JobEvents = request.app.state.events

    def visible(change: Change) -> bool:
        if job is not None and change.uid != job:
            return False
        return access(user, change.requested_by, change.department) == ALLOWED

    try:
        resume = int(last_event_id) if last_event_id else None
    except ValueError:
        resume = None
    body = events.stream(visible, resume, is_disconnected=request.is_disconnected)
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/audit", tags=["admin"])
def audit_log(
    request: Request, user: ApiUser, limit: Annotated[int, Query(ge=1, le=10000)] = 500
) -> list[dict[str, Any]]:
    """The latest audit events, newest last (admins only; refusals are audited too)."""
    audit = _service(request).audit
    if not user.has("admin"):
        audit.record(user.name, "audit.read", outcome="denied", client=_client(request))
    require_role(user, "admin")
    audit.record(user.name, "audit.read", client=_client(request))
    return audit.read()[-limit:]


@router.get("/jobs/{uid}", response_model=AnalysisJob, response_model_exclude_none=True)
def get_job(uid: str, request: Request, user: ApiUser) -> dict[str, Any]:
    """One job with its status, stages, selected series and results."""
    try:
        return _job(_service(request).get(user, uid, _client(request)))
    except JobNotFound as err:
        raise _not_found(err) from err


@router.post("/jobs/{uid}/cancel", response_model=AnalysisJob, response_model_exclude_none=True)
def cancel_job(uid: str, request: Request, user: Writer) -> dict[str, Any]:
    """Cancel a job; it stops before its next stage."""
    try:
        return _job(_service(request).cancel(user, uid, _client(request)))
    except JobNotFound as err:
        raise _not_found(err) from err
    except PermissionError as err:
        raise HTTPException(status_code=403, detail=str(err)) from err


@router.post(
    "/jobs/{uid}/retry-delivery", response_model=AnalysisJob, response_model_exclude_none=True
)
def retry_delivery(uid: str, request: Request, user: Writer) -> dict[str, Any]:
    """Send a job's results to the PACS again after a failed or held delivery."""
    try:
        return _job(_service(request).retry_delivery(user, uid, _client(request)))
    except JobNotFound as err:
        raise _not_found(err) from err
    except PermissionError as err:
        raise HTTPException(status_code=403, detail=str(err)) from err
    except BackendError as err:
        raise HTTPException(status_code=409, detail=str(err)) from err


@router.get("/jobs/{uid}/review")
def get_review(uid: str, request: Request, user: ApiUser) -> dict[str, Any]:
    """The review of a job's result ({} when nobody reviewed it yet)."""
    try:
        view = _service(request).view(user, uid, _client(request))
    except JobNotFound as err:
        raise _not_found(err) from err
    return view.review or {}


@router.post("/jobs/{uid}/review")
def review_job(uid: str, body: ReviewRequest, request: Request, user: Writer) -> dict[str, Any]:
    """Accept or reject a result (radiologist); a rejection goes to the retraining set."""
    try:
        return _service(request).review(user, uid, body.decision, body.comment, _client(request))
    except JobNotFound as err:
        raise _not_found(err) from err
    except PermissionError as err:
        raise HTTPException(status_code=403, detail=str(err)) from err
    except ValueError as err:
        raise HTTPException(status_code=409, detail=str(err)) from err


@router.get(
    "/jobs/{uid}/report",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def report(uid: str, request: Request, user: ApiUser, download: bool = False) -> Response:
    """The PDF report (audited)."""
    try:
        _, key = _service(request).report(user, uid, download=download, client=_client(request))
    except JobNotFound as err:
        raise _not_found(err) from err
    return pdf_response(request, key, uid, download)


def pdf_response(request: Request, key: str, uid: str, download: bool) -> Response:
    """The PDF from the store, inline or as an attachment."""
    data = _service(request).backend.store.get_bytes(key)
    disposition = "attachment" if download else "inline"
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'{disposition}; filename="radpipe-{uid}.pdf"'},
    )
