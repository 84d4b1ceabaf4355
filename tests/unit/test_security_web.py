"""Security of the web app: every route but the probes and the sign-in pages needs a
signed-in user; role checks; hostile strings escaped in pages and in the PDF report."""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from radpipe.config import BrandingConfig, Settings
from radpipe.web.app import create_app
from tests.fixtures.web import PASSWORDS, sign_in, wait_for_phase

#: Routes reachable without signing in, and why.
PUBLIC = {
    "/healthz",  # liveness probe
    "/metrics",  # Prometheus scrape
    "/login",  # the sign-in form itself
    "/login/oidc",  # OIDC sign-in start (404 when OIDC is not configured)
    "/logout",  # ends a session (no data)
    "/auth/login",  # OIDC start
    "/auth/callback",  # OIDC redirect target
    "/api/v1/openapi.json",  # the API's description (no job or patient data), as documented
}
EVIL = '<script>alert("rp")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def client(web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings)) as test_client:
        yield test_client


def basic(name: str) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{PASSWORDS[name]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "rp-000000000000", path)


def _routes(routes: list[object], prefix: str = "") -> Iterator[Route]:
    """Every route, including those of included routers (FastAPI adds them lazily)."""
    for route in routes:
        if isinstance(route, Route):
            yield route
        elif hasattr(route, "original_router"):
            inner = route.original_router  # FastAPI's _IncludedRouter
            yield from _routes(list(inner.routes), prefix)
        elif isinstance(route, Mount):
            continue  # /static: files only


def test_every_route_but_the_probes_needs_a_signed_in_user(web_settings: Settings) -> None:
    app = create_app(web_settings)
    checked = 0
    with TestClient(app) as anonymous:
        for route in _routes(list(app.routes)):
            path = _concrete(route.path)
            for method in sorted(route.methods or {"GET"}):
                if method == "HEAD" or route.path in PUBLIC:
                    continue
                answer = anonymous.request(method, path, follow_redirects=False)
                checked += 1
                redirected = answer.status_code == 303 and answer.headers["location"].startswith(
                    "/login"
                )
                assert answer.status_code in (401, 403) or redirected, (
                    method,
                    route.path,
                    answer.status_code,
                )
        for path in ("/healthz", "/metrics"):
            assert anonymous.get(path).status_code == 200
    assert checked >= 15  # the API and the pages really were enumerated


def test_requesters_see_only_their_own_jobs_and_cannot_review(client: TestClient) -> None:
    spec = {"accession": "SEC-1", "app": "webtoy", "options": {"delay": 0}}
    made = client.post("/api/v1/jobs", json=spec, headers=basic("ada"))
    assert made.status_code == 201, made.text
    uid = made.json()["metadata"]["name"]
    wait_for_phase(_as(client, "ada"), uid, {"Succeeded"})
    for path in (f"/api/v1/jobs/{uid}", f"/api/v1/jobs/{uid}/report", f"/api/v1/jobs/{uid}/review"):
        assert client.get(path, headers=basic("rex")).status_code in (403, 404), path
    listed = client.get("/api/v1/jobs", headers=basic("rex")).json()
    assert uid not in {j["metadata"]["name"] for j in listed}
    review = {"decision": "rejected", "comment": "not mine"}
    refused = client.post(f"/api/v1/jobs/{uid}/review", json=review, headers=basic("rex"))
    assert refused.status_code in (403, 404)
    assert client.post(f"/api/v1/jobs/{uid}/cancel", headers=basic("rex")).status_code in (
        403,
        404,
    )
    # a radiologist reads it
    assert client.get(f"/api/v1/jobs/{uid}", headers=basic("rita")).status_code == 200


class _As:
    def __init__(self, client: TestClient, name: str) -> None:
        self.client, self.headers = client, basic(name)

    def get(self, path: str) -> object:
        return self.client.get(path, headers=self.headers)


def _as(client: TestClient, name: str) -> _As:
    return _As(client, name)


def test_nobody_can_change_models_or_apps_through_the_web(client: TestClient) -> None:
    schema = client.get("/api/v1/openapi.json", headers=basic("ada")).json()
    for path, methods in schema["paths"].items():
        if "model" in path or "/apps" in path:
            assert set(methods) <= {"get"}, (path, set(methods))
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("/api/v1/apps", "/api/v1/apps/webtoy", "/api/v1/models"):
            answer = client.request(method, path, headers=basic("rex"), json={})
            assert answer.status_code in (403, 404, 405), (method, path, answer.status_code)


def test_hostile_strings_in_job_data_are_escaped_in_pages(client: TestClient) -> None:
    spec = {
        "accession": "SEC-2",
        "app": "webtoy",
        "options": {"delay": 0, "seriesDescription": EVIL},
    }
    uid = client.post("/api/v1/jobs", json=spec, headers=basic("rita")).json()["metadata"]["name"]
    wait_for_phase(_as(client, "rita"), uid, {"Succeeded"})
    sign_in(client, "rita")  # pages take the session (HTTP Basic is for the API)
    page = client.get(f"/jobs/{uid}", follow_redirects=False)
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;rp&#34;)&lt;/script&gt;" in page.text  # shown as text
    job = client.get(f"/api/v1/jobs/{uid}", headers=basic("rita")).json()
    assert job["status"]["selectedSeries"][0]["description"] == EVIL  # data, kept as it is


def test_hostile_strings_are_text_in_the_pdf_report(tmp_path: Path) -> None:
    from radpipe.report.pdf import ReportContent, build_report
    from radpipe.results.schema import Finding, ResultsDocument, SeriesUsed, StudyRef

    doc = ResultsDocument(
        job="rp-sec",
        app="glioma",
        study=StudyRef(
            study_instance_uid="1.2.3",
            accession="A<b>1</b>",
            patient_name="<b>Evil</b>^<font size=40>X</font>",
            study_description=EVIL,
        ),
        series=[SeriesUsed(role="t1c", series_instance_uid="1.2.3.4", description=EVIL)],
        findings=[Finding(code="glioma", text=f"finding {EVIL}", present=True)],
    )
    branding = BrandingConfig(institution="<i>St. Evil</i>", department=EVIL[:30])
    path = tmp_path / "report.pdf"
    path.write_bytes(build_report(ReportContent(doc=doc, branding=branding)))
    text = subprocess.run(
        ["pdftotext", "-raw", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    flat = " ".join(text.split())
    assert '<script>alert("rp")</script>' in flat.replace("\n", "")  # shown as text
    assert "<b>Evil</b>" in flat or "<B>EVIL</B>" in flat.upper()
