"""The FastAPI application: pages, the JSON API, sign-in, security headers, health and
metrics. :func:`create_app` builds it from settings; ``radpipe web`` serves it."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from radpipe import __version__
from radpipe.api.models import AnalysisJob, StageStatus, utcnow
from radpipe.config import Settings
from radpipe.web import api, auth, pages
from radpipe.web.audit import AuditLog
from radpipe.web.backend import CREATED, DEPARTMENT, JobBackend, LocalBackend
from radpipe.web.events import JobEvents
from radpipe.web.security import SecurityMiddleware
from radpipe.web.service import DepartmentDenied, JobService
from radpipe.web.users import UserFile

log = logging.getLogger(__name__)
_HERE = Path(str(resources.files("radpipe.web")))


def make_backend(settings: Settings) -> JobBackend:
    """The backend the configuration asks for (web.mode)."""
    if settings.web.mode == "cluster":
        from radpipe.web.cluster import ClusterBackend

        return ClusterBackend(settings)
    return LocalBackend(settings)


# -- template helpers ----------------------------------------------------------------------


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def age(value: Any) -> str:
    """'just now', '4 min ago', '3 h ago', '2 d ago'."""
    moment = _parse_time(value)
    if moment is None:
        return "—"
    seconds = max(0.0, (utcnow() - moment).total_seconds())
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{round(seconds / 60)} min ago"
    if seconds < 86400:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} d ago"


def duration(stage: StageStatus) -> str:
    """How long a stage ran (or has been running)."""
    if stage.started_at is None:
        return ""
    end = stage.finished_at or utcnow()
    seconds = max(0.0, (end - stage.started_at).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def clock(value: Any) -> str:
    """A time for people: 2025-01-31 14:05:09 UTC."""
    moment = _parse_time(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


#: Result keys that are not findings (shown elsewhere on the page).
_NOT_FINDINGS = frozenset(
    {"reportObject", "deliveredTo", "findings", "volumesCm3", "schemaVersion"}
)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items())
    return str(value)


def _header(key: str) -> str:
    """'diameterMm' -> 'Diameter (mm)'; 'volumeCm3' -> 'Volume (cm³)'."""
    units = {"Mm": " (mm)", "Cm3": " (cm³)", "Ml": " (ml)", "Pct": " (%)"}
    for suffix, unit in units.items():
        if key.endswith(suffix) and len(key) > len(suffix):
            return _header(key[: -len(suffix)]) + unit
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", key).replace("_", " ").lower()
    return words[:1].upper() + words[1:]


def result_tables(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's results as tables: volumes, the findings list, other measurements."""
    tables: list[dict[str, Any]] = []
    volumes = results.get("volumesCm3")
    if isinstance(volumes, dict) and volumes:
        percent = results.get("percentOfBrain") or {}
        headers = ["Region", "Volume (cm³)"] + (["% of brain"] if percent else [])
        rows = [
            [name, _cell(v)] + ([_cell(percent.get(name, ""))] if percent else [])
            for name, v in volumes.items()
        ]
        tables.append({"title": "Volumes", "headers": headers, "rows": rows})
    findings = results.get("findings")
    if isinstance(findings, list) and findings and not any(isinstance(f, dict) for f in findings):
        # The apps' sentences ("Subdural hemorrhage likely (p = 0.56).")
        rows = [[_cell(item)] for item in findings]
        tables.append({"title": "Findings", "headers": ["Finding"], "rows": rows})
    elif isinstance(findings, list) and findings:
        columns: list[str] = []
        for item in findings:
            for key in item if isinstance(item, dict) else []:
                if key not in columns:
                    columns.append(key)
        rows = [
            [_cell(item.get(c, "")) for c in columns] for item in findings if isinstance(item, dict)
        ]
        headers = [_header(c) for c in columns]
        tables.append({"title": "Findings", "headers": headers, "rows": rows})
    other = [
        [k, _cell(v)]
        for k, v in results.items()
        if k not in _NOT_FINDINGS and k != "percentOfBrain" and v is not None
    ]
    if other:
        tables.append({"title": "Measurements", "headers": ["Measure", "Value"], "rows": other})
    return tables


def templates() -> jinja2.Environment:
    """The page templates, autoescaped: every value a study or a person typed is text."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_HERE / "templates")),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(age=age, duration=duration, clock=clock)
    env.globals.update(
        version=__version__,
        created=lambda j: j.metadata.annotations.get(CREATED),
        department=lambda j: j.metadata.annotations.get(DEPARTMENT, ""),
        result_tables=result_tables,
    )
    return env


# -- the app -------------------------------------------------------------------------------


def create_app(
    settings: Settings,
    backend: JobBackend | None = None,
    *,
    users_file: Path | None = None,
    start_workers: bool = True,
) -> FastAPI:
    """The web application for ``settings`` (local or cluster mode per ``web.mode``)."""
    backend = backend or make_backend(settings)
    audit = AuditLog(settings.web.audit_log or settings.data_dir / "audit.log")
    events = JobEvents(backend)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.start()
        if start_workers:
            backend.start()
        try:
            yield
        finally:
            backend.stop()
            events.stop()

    app = FastAPI(
        title="radpipe",
        version=__version__,
        description="Request automated image analyses and read their results.",
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # Swagger UI loads scripts from a CDN, which the CSP forbids
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.service = JobService(backend, audit, settings.warehouse.url)
    app.state.events = events
    app.state.users = UserFile(users_file or auth.users_file_path(settings))
    app.state.oauth = auth.oidc_client(settings)
    app.state.templates = templates()
    app.state.requests = Counter()

    # Order: the session must exist before the security middleware answers (outermost last).
    app.add_middleware(SecurityMiddleware, https=settings.web.secure_cookies)
    app.add_middleware(
        SessionMiddleware,
        secret_key=auth.session_secret(settings),
        session_cookie="radpipe_session",
        max_age=settings.web.session_max_age_seconds,
        same_site="lax",  # lax: the PACS viewer's launch link and the IdP's redirect work
        https_only=settings.web.secure_cookies,
    )
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)
    _add_handlers(app)
    _add_probes(app, backend)
    return app


def _add_handlers(app: FastAPI) -> None:
    @app.exception_handler(auth.LoginRequired)
    async def _login(request: Request, exc: auth.LoginRequired) -> Response:
        return RedirectResponse(auth.login_redirect(exc.next_url), status_code=303)

    @app.exception_handler(DepartmentDenied)
    async def _department(request: Request, exc: DepartmentDenied) -> Response:
        message = "This job belongs to another department."
        return await _http(request, StarletteHTTPException(403, message))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/") or request.url.path.startswith("/auth/"):
            headers = getattr(exc, "headers", None)
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=headers
            )
        user = auth.session_user(request)
        return pages.render(
            request,
            "error.html",
            {"status": exc.status_code, "message": exc.detail, "nav": ""},
            status_code=exc.status_code,
            user=user,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"][1:]) or "body", "message": e["msg"]}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": "invalid request", "problems": problems}, status_code=422)

    @app.middleware("http")
    async def _count(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        app.state.requests[str(response.status_code)[0] + "xx"] += 1
        return response

    _ = HTTPException  # FastAPI's subclass is handled by the Starlette handler above


def _add_probes(app: FastAPI, backend: JobBackend) -> None:
    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        """Liveness: the process answers (no sign-in needed)."""
        return {"status": "ok", "mode": backend.mode}

    @app.get("/metrics", include_in_schema=False, response_class=PlainTextResponse)
    def metrics() -> str:
        """Prometheus text format: jobs by phase and responses by class (no patient data)."""
        phases: Counter[str] = Counter()
        try:
            jobs: list[AnalysisJob] = backend.list_jobs()
            phases.update(j.status.phase.value for j in jobs)
        except Exception:  # a store outage must not break the probe
            log.warning("metrics: cannot list jobs")
        lines = [
            "# HELP radpipe_web_jobs Jobs by phase.",
            "# TYPE radpipe_web_jobs gauge",
            *(f'radpipe_web_jobs{{phase="{p}"}} {n}' for p, n in sorted(phases.items())),
            "# HELP radpipe_web_responses_total HTTP responses by status class.",
            "# TYPE radpipe_web_responses_total counter",
            *(
                f'radpipe_web_responses_total{{code="{c}"}} {n}'
                for c, n in sorted(app.state.requests.items())
            ),
        ]
        return "\n".join(lines) + "\n"
