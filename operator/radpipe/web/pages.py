"""Server-rendered pages: sign-in, the request form, the launch link, the job list and the
job page. They call the same :class:`JobService` as the JSON API; their scripts follow the
API's server-sent events for live updates (polling the API when events are unavailable)."""

from __future__ import annotations

import logging
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from radpipe.api.models import Phase, Priority
from radpipe.local.runner import JobNotFound, SubmitError
from radpipe.web import auth
from radpipe.web.api import pdf_response
from radpipe.web.artifacts import image_type
from radpipe.web.backend import BackendError
from radpipe.web.forms import (
    ACCESSION_HTML_PATTERN,
    ACCESSION_RULE,
    RequestForm,
    option_fields,
    parse_request,
)
from radpipe.web.review import Decision
from radpipe.web.security import CSRF_FIELD, check_csrf, csrf_token
from radpipe.web.service import DepartmentDenied, JobService
from radpipe.web.users import User

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
PageUser = Annotated[User, Depends(auth.page_user)]


def _service(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def flash(request: Request, message: str, kind: str = "info") -> None:
    """A message shown once on the next page."""
    request.session.setdefault("flash", []).append({"kind": kind, "text": message})


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
    user: User | None = None,
) -> HTMLResponse:
    """Render a page with what every page needs (user, CSRF token, flash messages)."""
    settings = request.app.state.settings
    base = {
        "request": request,
        "user": user,
        "csrf": csrf_token(request),
        "csrf_field": CSRF_FIELD,
        "mode": _service(request).backend.mode,
        "branding": settings.branding,
        "flashes": request.session.pop("flash", []),
    }
    html = request.app.state.templates.get_template(template).render({**base, **context})
    return HTMLResponse(html, status_code=status_code)


async def _form(request: Request) -> dict[str, str]:
    """The submitted form fields after the CSRF check."""
    data = await request.form()
    fields = {k: v for k, v in data.items() if isinstance(v, str)}
    check_csrf(request, fields.get(CSRF_FIELD))
    return fields


# -- sign-in -------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    """The sign-in page: the local user form and/or the hospital sign-in button."""
    return render(request, "login.html", _login_context(request, next))


def _login_context(
    request: Request, next_url: str, error: str = "", username: str = ""
) -> dict[str, Any]:
    return {
        "username": username,
        "next": auth.safe_next(next_url),
        "error": error,
        "oidc": request.app.state.oauth is not None,
        "local": request.app.state.users.path.exists() or request.app.state.oauth is None,
    }


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check a local user's name and password and start a session."""
    fields = await _form(request)
    name = fields.get("username", "").strip()
    user = request.app.state.users.authenticate(name, fields.get("password", ""))
    audit = _service(request).audit
    if user is None:
        audit.record(name or "-", "login", outcome="failed", client=_client(request), via="local")
        context = _login_context(
            request, fields.get("next", "/"), "Wrong user name or password.", name
        )
        return render(request, "login.html", context, status_code=401)
    auth.sign_in(request, user)
    audit.record(user.name, "login", client=_client(request), via="local")
    return RedirectResponse(auth.safe_next(fields.get("next")), status_code=303)


@router.get("/login/oidc")
async def login_oidc(request: Request, next: str = "/") -> Response:
    """Send the browser to the hospital's identity provider."""
    oauth = request.app.state.oauth
    if oauth is None:
        raise HTTPException(404, "hospital sign-in (OIDC) is not configured")
    request.session["next"] = auth.safe_next(next)
    client = oauth.create_client(auth.OIDC_CLIENT)
    redirect: Response = await client.authorize_redirect(
        request, str(request.url_for("oidc_callback"))
    )
    return redirect


@router.get("/auth/callback", name="oidc_callback")
async def oidc_callback(request: Request) -> Response:
    """Finish the OIDC sign-in: check the ID token and map the IdP's groups to roles."""
    from authlib.integrations.starlette_client import OAuthError

    oauth = request.app.state.oauth
    if oauth is None:
        raise HTTPException(404, "hospital sign-in (OIDC) is not configured")
    audit = _service(request).audit
    next_url = request.session.get("next", "/")
    try:
        token = await oauth.create_client(auth.OIDC_CLIENT).authorize_access_token(request)
    except OAuthError as err:
        audit.record("-", "login", outcome="failed", client=_client(request), via="oidc")
        context = _login_context(request, next_url, f"Hospital sign-in failed: {err.description}")
        return render(request, "login.html", context, status_code=401)
    claims = dict(token.get("userinfo") or {})
    user = auth.oidc_user(request.app.state.settings, claims)
    if user is None:
        who = str(claims.get("preferred_username") or claims.get("sub") or "-")
        audit.record(who, "login", outcome="no-role", client=_client(request), via="oidc")
        message = "Your account has no radpipe role; ask the imaging-informatics team for one."
        return render(request, "login.html", _login_context(request, next_url, message), 403)
    auth.sign_in(request, user)
    audit.record(user.name, "login", client=_client(request), via="oidc")
    return RedirectResponse(auth.safe_next(next_url), status_code=303)


@router.post("/logout")
async def logout(request: Request, user: PageUser) -> Response:
    """End the session."""
    await _form(request)
    _service(request).audit.record(user.name, "logout", client=_client(request))
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


# -- requesting ----------------------------------------------------------------------------


def _request_page(
    request: Request, user: User, form: RequestForm, status_code: int = 200
) -> HTMLResponse:
    apps = _service(request).backend.apps()
    fields = {name: option_fields(app) for name, app in apps.items()}
    context = {
        "apps": sorted(apps.items()),
        "fields": fields,
        "form": form,
        "priorities": [p.value for p in Priority],
        "rule": ACCESSION_RULE,
        "pattern": ACCESSION_HTML_PATTERN,
        "nav": "request",
    }
    return render(request, "request.html", context, status_code, user)


@router.get("/", response_class=HTMLResponse)
def request_page(request: Request, user: PageUser) -> HTMLResponse:
    """The request form."""
    return _request_page(request, user, RequestForm())


def _submit(request: Request, user: User, data: dict[str, str], via: str) -> Response:
    service = _service(request)
    if not user.has("requester"):
        raise HTTPException(403, "requesting analyses needs the requester role")
    apps = service.backend.apps()
    form, spec = parse_request(data, apps, request.app.state.settings.default_pacs)
    if spec is not None:
        try:
            job = service.submit(user, spec, via=via, client=_client(request))
        except (SubmitError, BackendError) as err:
            form.errors["form"] = str(err)
        else:
            flash(request, f"Analysis requested: job {job.uid}.", "success")
            return RedirectResponse(f"/jobs/{job.uid}", status_code=303)
    return _request_page(request, user, form, status_code=422)


@router.post("/request")
async def submit_request(request: Request, user: PageUser) -> Response:
    """Submit the request form."""
    return _submit(request, user, await _form(request), via="form")


@router.get("/launch", response_class=HTMLResponse)
def launch(
    request: Request,
    user: PageUser,
    accession: str = "",
    app: str = "",
    submit: str = "",
    priority: str = Priority.ROUTINE.value,
) -> Response:
    """The PACS viewer's hook: prefill the form, or with ``submit=1`` request at once."""
    data = {"accession": accession, "app": app, "priority": priority}
    if submit in ("1", "true", "yes") and request.app.state.settings.web.launch_autosubmit:
        # A plain link cannot carry a CSRF token; the signed-in user's click in the viewer
        # is the intent. Apps' default options apply; everything is audited as "launch".
        apps = _service(request).backend.apps()
        if app in apps:
            for opt in option_fields(apps[app]):
                if opt.kind == "checkbox" and opt.default:
                    data[opt.input_name] = "on"
                elif opt.default is not None and opt.kind != "checkbox":
                    data[opt.input_name] = str(opt.default)
        return _submit(request, user, data, via="launch")
    form = RequestForm(accession=accession.strip(), app=app, priority=priority)
    if app and app not in _service(request).backend.apps():
        form.errors["app"] = f"The viewer asked for an unknown analysis ({app}); choose one."
    return _request_page(request, user, form)


# -- jobs ----------------------------------------------------------------------------------


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, user: PageUser, phase: str = "", app: str = "") -> HTMLResponse:
    """Recent jobs, filtered by phase and app; the page refreshes itself from the API."""
    service = _service(request)
    jobs = service.list(user, phase or None, app or None)
    context = {
        "jobs": jobs,
        "phases": [p.value for p in Phase],
        "apps": sorted(service.backend.apps()),
        "phase": phase,
        "app": app,
        "nav": "jobs",
    }
    return render(request, "jobs.html", context, user=user)


_RANK = {Priority.STAT: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}


@router.get("/review", response_class=HTMLResponse)
def review_worklist(request: Request, user: PageUser) -> HTMLResponse:
    """Jobs whose results wait for a radiologist: stat first, then the longest waiting."""
    if not user.has("radiologist"):
        raise HTTPException(403, "The review worklist is for radiologists.")
    from radpipe.web.service import created_at

    jobs = _service(request).list(user, Phase.AWAITING_REVIEW.value, limit=1000)
    jobs.sort(key=lambda j: (_RANK.get(j.spec.priority, 2), created_at(j) or "~"))
    return render(request, "review.html", {"jobs": jobs, "nav": "review"}, user=user)


def _view_or_404(request: Request, user: User, uid: str) -> Any:
    try:
        return _service(request).view(user, uid, _client(request))
    except JobNotFound as err:
        raise HTTPException(404, f"No job {uid} that you may see.") from err


@router.get("/jobs/{uid}", response_class=HTMLResponse)
def job_page(request: Request, uid: str, user: PageUser) -> HTMLResponse:
    """One job: stages, selected series, findings, images, report, delivery, review."""
    view = _view_or_404(request, user, uid)
    apps = _service(request).backend.apps()
    app = apps.get(view.job.spec.app)
    context = {"view": view, "job": view.job, "app": app, "nav": "jobs"}
    return render(request, "job.html", context, user=user)


@router.get("/jobs/{uid}/report.pdf")
def report_pdf(request: Request, uid: str, user: PageUser, download: bool = False) -> Response:
    """The PDF report, inline (for the page's viewer) or as a download."""
    try:
        _, key = _service(request).report(user, uid, download=download, client=_client(request))
    except JobNotFound as err:
        raise HTTPException(404, "This job has no report (yet).") from err
    return pdf_response(request, key, uid, download)


@router.get("/jobs/{uid}/files/{path:path}")
def job_image(request: Request, uid: str, path: str, user: PageUser) -> Response:
    """An overlay or figure image of a job (only those the job page lists)."""
    key = f"jobs/{uid}/{path}"
    try:
        _service(request).image(user, uid, key, _client(request))
    except JobNotFound as err:
        raise HTTPException(404, "No such image.") from err
    data = _service(request).backend.store.get_bytes(key)
    return Response(data, media_type=image_type(key))


@router.post("/jobs/{uid}/cancel")
async def cancel(request: Request, uid: str, user: PageUser) -> Response:
    """Cancel from the job page."""
    await _form(request)
    try:
        _service(request).cancel(user, uid, _client(request))
        flash(request, "Cancel requested: the job stops before its next stage.")
    except JobNotFound as err:
        raise HTTPException(404, "No such job.") from err
    except DepartmentDenied:
        raise
    except PermissionError as err:
        flash(request, str(err), "error")
    return RedirectResponse(f"/jobs/{uid}", status_code=303)


@router.post("/jobs/{uid}/retry-delivery")
async def retry_delivery(request: Request, uid: str, user: PageUser) -> Response:
    """The delivery status's retry button."""
    await _form(request)
    try:
        _service(request).retry_delivery(user, uid, _client(request))
        flash(request, "Delivery retry started.", "success")
    except JobNotFound as err:
        raise HTTPException(404, "No such job.") from err
    except DepartmentDenied:
        raise
    except (PermissionError, BackendError) as err:
        flash(request, str(err), "error")
    return RedirectResponse(f"/jobs/{uid}", status_code=303)


@router.post("/jobs/{uid}/review")
async def review(request: Request, uid: str, user: PageUser) -> Response:
    """Accept or reject the result (radiologist)."""
    fields = await _form(request)
    decision = fields.get("decision", "")
    if decision not in ("accepted", "rejected"):
        flash(request, "Choose accept or reject.", "error")
        return RedirectResponse(f"/jobs/{uid}#review", status_code=303)
    try:
        choice = cast(Decision, decision)
        _service(request).review(user, uid, choice, fields.get("comment", ""), _client(request))
        note = " and added to the retraining set" if decision == "rejected" else ""
        flash(request, f"Result {decision}{note}.", "success")
    except JobNotFound as err:
        raise HTTPException(404, "No such job.") from err
    except DepartmentDenied:
        raise
    except (PermissionError, ValueError) as err:
        flash(request, str(err), "error")
    return RedirectResponse(f"/jobs/{uid}#review", status_code=303)
