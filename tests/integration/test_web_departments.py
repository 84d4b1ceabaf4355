"""Departments and role rules through the real web app (webtoy jobs, users of two
departments: neuro and cardio, and an admin of none).

The rules (radpipe.web.service): admins see every job; a job recording a department is
refused (403, audited as denied) to everyone else outside it; within it radiologists see
every job and requesters their own; jobs without a department follow the role rules
alone. Nobody but an admin reads the audit log, and nothing in the web app changes
models, apps or settings.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route

from radpipe.api.models import JobSpec
from radpipe.config import Settings
from radpipe.web.app import create_app
from radpipe.web.backend import DEPARTMENT, REQUESTED_BY
from tests.fixtures.web import DEPT_USERS, PASSWORDS, sign_in, wait_for_phase


def basic(name: str) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{PASSWORDS[name]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class As:
    """One user: pages and reads through a signed-in browser session (the login form),
    API writes with HTTP Basic."""

    def __init__(self, client: TestClient, name: str) -> None:
        self.client, self.name, self.headers = client, name, basic(name)
        self.session = TestClient(client.app)  # shares the running app, has its own cookies
        sign_in(self.session, name)

    def get(self, path: str, **kw: Any) -> Any:
        return self.session.get(path, follow_redirects=False, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.client.post(path, headers=self.headers, follow_redirects=False, **kw)


@pytest.fixture
def app_client(dept_settings: Settings) -> Iterator[tuple[Any, TestClient]]:
    app = create_app(dept_settings)
    with TestClient(app) as client:
        yield app, client


@pytest.fixture
def neuro_job(app_client: tuple[Any, TestClient]) -> str:
    """A finished job (with a PDF and an image) requested by rex of neuro."""
    _, client = app_client
    spec = {"accession": "DEPT-1", "app": "webtoy", "options": {"delay": 0}}
    made = client.post("/api/v1/jobs", json=spec, headers=basic("rex"))
    assert made.status_code == 201, made.text
    uid = str(made.json()["metadata"]["name"])
    assert made.json()["metadata"]["annotations"][DEPARTMENT] == "neuro"
    wait_for_phase(As(client, "rex"), uid, {"Succeeded"})
    return uid


def _listed(user: As) -> set[str]:
    answer = user.get("/api/v1/jobs")
    assert answer.status_code == 200
    return {j["metadata"]["name"] for j in answer.json()}


def _paths(uid: str) -> list[str]:
    return [
        f"/api/v1/jobs/{uid}",
        f"/api/v1/jobs/{uid}/report",
        f"/api/v1/jobs/{uid}/report?download=true",
        f"/api/v1/jobs/{uid}/review",
        f"/jobs/{uid}",
        f"/jobs/{uid}/report.pdf",
        f"/jobs/{uid}/report.pdf?download=1",
        f"/jobs/{uid}/files/webtoy-analyse/overlay-axial.png",
    ]


def test_another_departments_job_is_refused_with_403_and_audited(
    app_client: tuple[Any, TestClient], neuro_job: str
) -> None:
    app, client = app_client
    for name in ("cara", "cole"):  # a requester and a radiologist of cardio
        user = As(client, name)
        # (an allowed event stream would stay open: only refusals are read here)
        for path in [*_paths(neuro_job), f"/api/v1/jobs/events?job={neuro_job}"]:
            answer = user.get(path)
            assert answer.status_code == 403, (name, path, answer.status_code)
            assert "another department" in answer.text, (name, path)
            assert b"%PDF" not in answer.content
        assert neuro_job not in _listed(user)
        jobs_page = user.get("/jobs")
        assert jobs_page.status_code == 200 and neuro_job not in jobs_page.text
        # writes are refused too, and change nothing
        assert user.post(f"/api/v1/jobs/{neuro_job}/cancel").status_code == 403
        assert user.post(f"/api/v1/jobs/{neuro_job}/retry-delivery").status_code == 403
    review = {"decision": "rejected", "comment": "not my department"}
    refused = As(client, "cole").post(f"/api/v1/jobs/{neuro_job}/review", json=review)
    assert refused.status_code == 403
    assert As(client, "rita").get(f"/api/v1/jobs/{neuro_job}/review").json() == {}
    denied = [
        e
        for e in app.state.service.audit.read()
        if e["outcome"] == "denied" and e.get("job") == neuro_job
    ]
    assert {e["who"] for e in denied} == {"cara", "cole"}
    assert all(e["reason"] == "department" for e in denied)
    actions = {e["action"] for e in denied}
    assert {"job.view", "report.view", "report.download", "image.view"} <= actions, actions
    assert {"job.cancel", "delivery.retry", "review.rejected"} <= actions, actions
    assert all("DEPT-1" not in str(e) for e in denied), "no accession in the audit log"


def test_within_the_department_radiologists_see_all_requesters_their_own(
    app_client: tuple[Any, TestClient], neuro_job: str
) -> None:
    _, client = app_client
    rita, nora, rex = As(client, "rita"), As(client, "nora"), As(client, "rex")
    for path in _paths(neuro_job):
        assert rita.get(path).status_code == 200, path
        assert rex.get(path).status_code == 200, path
    pdf = rita.get(f"/jobs/{neuro_job}/report.pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert neuro_job in _listed(rita) and neuro_job in _listed(rex)
    # nora is in neuro too, but a requester sees only her own jobs (and it "does not exist")
    for path in _paths(neuro_job):
        assert nora.get(path).status_code == 404, path
    assert neuro_job not in _listed(nora)
    page = rita.get(f"/jobs/{neuro_job}")
    assert re.search(r'id="job-department">neuro<', page.text)
    review = {"decision": "accepted", "comment": ""}
    assert rita.post(f"/api/v1/jobs/{neuro_job}/review", json=review).status_code == 200


def test_admins_see_every_department(app_client: tuple[Any, TestClient], neuro_job: str) -> None:
    _, client = app_client
    cardio = client.post(
        "/api/v1/jobs",
        json={"accession": "DEPT-2", "app": "webtoy", "options": {"delay": 0}},
        headers=basic("cara"),
    ).json()["metadata"]["name"]
    ada = As(client, "ada")
    assert {neuro_job, cardio} <= _listed(ada)
    for path in _paths(neuro_job):
        assert ada.get(path).status_code == 200, path
    annotations = ada.get(f"/api/v1/jobs/{cardio}").json()["metadata"]["annotations"]
    assert (annotations[DEPARTMENT], annotations[REQUESTED_BY]) == ("cardio", "cara")
    assert cardio not in _listed(As(client, "rita")) and cardio in _listed(As(client, "cole"))
    # An admin's own job records no department: every radiologist sees it.
    own = client.post(
        "/api/v1/jobs",
        json={"accession": "DEPT-3", "app": "webtoy", "options": {"delay": 0}},
        headers=basic("ada"),
    ).json()
    assert DEPARTMENT not in own["metadata"]["annotations"]
    uid = own["metadata"]["name"]
    for name in ("rita", "cole"):
        assert As(client, name).get(f"/api/v1/jobs/{uid}").status_code == 200
    for name in ("rex", "cara"):
        assert As(client, name).get(f"/api/v1/jobs/{uid}").status_code == 404


def test_a_job_without_a_department_follows_the_role_rules(
    app_client: tuple[Any, TestClient],
) -> None:
    """Jobs made outside the web app (intake, `radpipe run`) record no department."""
    app, client = app_client
    job = app.state.service.backend.runner.submit(
        JobSpec.model_validate({"accession": "DEPT-4", "app": "webtoy"})
    )
    for name in ("rita", "cole", "ada"):
        assert job.uid in _listed(As(client, name)), name
    for name in ("rex", "cara"):
        assert job.uid not in _listed(As(client, name)), name
        assert As(client, name).get(f"/api/v1/jobs/{job.uid}").status_code == 404


def test_review_worklist_and_session_carry_the_department(
    app_client: tuple[Any, TestClient], neuro_job: str
) -> None:
    _, client = app_client
    me = As(client, "cole").get("/api/v1/me").json()
    assert me["department"] == "cardio" and me["roles"] == ["radiologist"]
    held = client.post(
        "/api/v1/jobs",
        json={
            "accession": "DEPT-5",
            "app": "webtoy",
            "options": {"delay": 0, "requireReview": True},
        },
        headers=basic("rex"),
    ).json()["metadata"]["name"]
    wait_for_phase(As(client, "rex"), held, {"AwaitingReview"})
    assert held in As(client, "rita").get("/review").text  # neuro's radiologist
    assert held not in As(client, "cole").get("/review").text  # cardio's does not see it
    assert held in As(client, "ada").get("/review").text
    # Signed in by the form: the session remembers the department.
    cara = As(client, "cara")
    assert cara.get("/api/v1/me").json()["department"] == "cardio"
    assert cara.get(f"/jobs/{neuro_job}").status_code == 403
    assert "cardio" in cara.get("/jobs").text  # shown beside the roles


def test_only_admins_read_the_audit_log(app_client: tuple[Any, TestClient]) -> None:
    _, client = app_client
    for name in ("rex", "cara", "rita", "cole"):
        answer = As(client, name).get("/api/v1/audit")
        assert answer.status_code == 403, name
        assert "admin" in answer.json()["detail"]
    events = As(client, "ada").get("/api/v1/audit").json()
    denied = {e["who"] for e in events if e["action"] == "audit.read" and e["outcome"] == "denied"}
    assert denied == {"rex", "cara", "rita", "cole"}
    assert As(client, "ada").get("/api/v1/audit?limit=1").json()[-1]["who"] == "ada"


#: Every state-changing route of the web app: job operations and sign-in only. A new write
#: route (models, apps, users, settings) must be added here on purpose, with its role check.
WRITE_ROUTES = {
    ("POST", "/api/v1/jobs"),
    ("POST", "/api/v1/jobs/{uid}/cancel"),
    ("POST", "/api/v1/jobs/{uid}/retry-delivery"),
    ("POST", "/api/v1/jobs/{uid}/review"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("POST", "/request"),
    ("POST", "/jobs/{uid}/cancel"),
    ("POST", "/jobs/{uid}/retry-delivery"),
    ("POST", "/jobs/{uid}/review"),
}


def _routes(routes: list[Any]) -> Iterator[Route]:
    for route in routes:
        if isinstance(route, Route):
            yield route
        elif hasattr(route, "original_router"):
            yield from _routes(list(route.original_router.routes))


def test_requesters_cannot_change_models_apps_or_settings(
    app_client: tuple[Any, TestClient],
) -> None:
    app, client = app_client
    writes = {
        (method, route.path)
        for route in _routes(list(app.routes))
        for method in route.methods or ()
        if method not in ("GET", "HEAD")
    }
    assert writes == WRITE_ROUTES, writes ^ WRITE_ROUTES
    rex = As(client, "rex")
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("/api/v1/apps", "/api/v1/apps/webtoy", "/api/v1/models", "/api/v1/audit"):
            answer = client.request(method, path, headers=rex.headers, json={})
            assert answer.status_code in (403, 404, 405), (method, path, answer.status_code)
    assert set(DEPT_USERS) <= set(PASSWORDS)
