"""The web app in-process (FastAPI TestClient): sign-in, roles, CSRF and same-origin
checks, security headers, request → job → report, review, delivery retry, launch link,
escaping, audit log. Jobs really run, in the app's worker threads, on the fast webtoy app."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from radpipe.config import Settings
from radpipe.logs import accession_hash
from radpipe.web.app import create_app
from tests.fixtures.web import PASSWORDS, csrf_of, sign_in, wait_for_phase

FAST = {"opt.webtoy.delay": "0"}


@pytest.fixture
def client(web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings)) as test_client:
        yield test_client


def _basic(name: str) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{PASSWORDS[name]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _submit(client: TestClient, csrf: str, accession: str = "ACC-100", **options: str) -> str:
    form = {"csrf_token": csrf, "accession": accession, "app": "webtoy", "priority": "urgent"}
    form.update(FAST)
    form.update(options)
    response = client.post("/request", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text
    return str(response.headers["location"]).rsplit("/", 1)[-1]


def _audit(settings: Settings) -> list[dict[str, object]]:
    path = settings.data_dir / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_everything_but_probes_needs_sign_in(client: TestClient) -> None:
    page = client.get("/jobs?phase=Failed", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fjobs%3Fphase%3DFailed"
    assert client.get("/api/v1/jobs").status_code == 401
    assert client.get("/launch?accession=A1&app=webtoy", follow_redirects=False).status_code == 303
    assert client.get("/healthz").json()["status"] == "ok"
    assert "radpipe_web_responses_total" in client.get("/metrics").text


def test_security_headers_and_escaping_defaults(client: TestClient) -> None:
    headers = client.get("/login").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "SAMEORIGIN"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["cache-control"] == "no-store"


def test_wrong_password_is_refused_and_audited(client: TestClient, web_settings: Settings) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"username": "rex", "password": "nope", "csrf_token": csrf_of(page.text)},
    )
    assert response.status_code == 401
    assert "Wrong user name or password" in response.text
    assert _audit(web_settings)[-1] == {
        **_audit(web_settings)[-1],
        "who": "rex",
        "action": "login",
        "outcome": "failed",
    }


def test_forms_need_the_csrf_token_and_api_writes_need_same_origin(client: TestClient) -> None:
    csrf = sign_in(client, "rex")
    no_token = client.post("/request", data={"accession": "A1", "app": "webtoy"})
    assert no_token.status_code == 403
    body = {"accession": "A1", "app": "webtoy", "options": {"delay": 0}}
    # A session caller must send the token as a header ...
    assert client.post("/api/v1/jobs", json=body).status_code == 403
    # ... and a browser request from another site is refused even with it.
    evil = {"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
    assert client.post("/api/v1/jobs", json=body, headers=evil).status_code == 403
    ok = client.post("/api/v1/jobs", json=body, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201, ok.text
    assert ok.json()["metadata"]["annotations"]["radpipe.io/requested-by"] == "rex"


def test_request_runs_to_report_and_every_view_is_audited(
    client: TestClient, web_settings: Settings
) -> None:
    csrf = sign_in(client, "rex")
    uid = _submit(client, csrf, accession="ACC-100")
    job = wait_for_phase(client, uid, {"Succeeded", "Failed"})
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert job["spec"]["priority"] == "urgent"
    page = client.get(f"/jobs/{uid}")
    assert "Web test analysis" in page.text
    assert "enhancing tumour" in page.text and "12.40" in page.text
    assert "post-contrast T1 by classifier" in page.text
    assert f'src="/jobs/{uid}/report.pdf"' in page.text
    assert f"/jobs/{uid}/files/webtoy-analyse/overlay-axial.png" in page.text
    inline = client.get(f"/jobs/{uid}/report.pdf")
    assert inline.content.startswith(b"%PDF")
    assert inline.headers["content-disposition"].startswith("inline")
    download = client.get(f"/jobs/{uid}/report.pdf?download=1")
    assert download.headers["content-disposition"].startswith("attachment")
    image = client.get(f"/jobs/{uid}/files/webtoy-analyse/overlay-axial.png")
    assert image.headers["content-type"] == "image/png"
    # Only shown artifacts are served, never other store objects.
    assert client.get(f"/jobs/{uid}/files/webtoy-analyse/result.json").status_code == 404

    events = _audit(web_settings)
    actions = [(e["who"], e["action"], e.get("job")) for e in events]
    for action in ("job.request", "job.view", "report.view", "report.download"):
        assert ("rex", action, uid) in actions, action
    request = next(e for e in events if e["action"] == "job.request")
    assert request["accession"] == accession_hash("ACC-100")
    assert "ACC-100" not in (web_settings.data_dir / "audit.log").read_text()


def test_validation_messages_name_the_rule(client: TestClient) -> None:
    csrf = sign_in(client, "rex")
    form = {"csrf_token": csrf, "accession": "bad accession!", "app": "webtoy", "email": "x@"}
    response = client.post("/request", data={**form, "opt.webtoy.delay": "soon"})
    assert response.status_code == 422
    assert "Not a valid accession number" in response.text
    assert "letters, digits" in response.text
    assert "Seconds per stage: enter a number" in response.text
    assert "name@hospital.org" in response.text
    assert 'aria-invalid="true"' in response.text
    assert 'value="bad accession!"' in response.text  # what was typed is kept
    api = client.post(
        "/api/v1/jobs",
        json={"accession": "A1", "app": "webtoy", "options": {"delay": -1}},
        headers={"X-CSRF-Token": csrf},
    )
    assert api.status_code == 422
    assert "delay" in api.json()["detail"]


def test_series_description_is_rendered_as_text(client: TestClient) -> None:
    csrf = sign_in(client, "rex")
    attack = "<script>alert('x')</script>"
    uid = _submit(client, csrf, **{"opt.webtoy.seriesDescription": attack})
    wait_for_phase(client, uid, {"Succeeded"})
    page = client.get(f"/jobs/{uid}").text
    assert attack not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page


def test_requesters_see_their_own_jobs_radiologists_see_all(web_settings: Settings) -> None:
    with TestClient(create_app(web_settings)) as rita_client:
        rita_csrf = sign_in(rita_client, "rita")
        ritas = _submit(rita_client, rita_csrf, accession="R-1")
        with TestClient(create_app(web_settings, start_workers=False)) as rex_client:
            sign_in(rex_client, "rex")
            assert rex_client.get(f"/api/v1/jobs/{ritas}").status_code == 404
            assert ritas not in rex_client.get("/jobs").text
        assert ritas in rita_client.get("/jobs").text
        ada = rita_client.get("/api/v1/jobs", headers=_basic("ada")).json()
        assert ritas in [j["metadata"]["name"] for j in ada]
        wait_for_phase(rita_client, ritas, {"Succeeded"})


def test_review_needs_a_radiologist_and_rejection_feeds_retraining(
    client: TestClient, web_settings: Settings
) -> None:
    rex = _basic("rex")
    body = {"accession": "REV-1", "app": "webtoy", "options": {"delay": 0}}
    uid = client.post("/api/v1/jobs", json=body, headers=rex).json()["metadata"]["name"]
    sign_in(client, "rita")
    wait_for_phase(client, uid, {"Succeeded"})
    verdict = {"decision": "rejected", "comment": "oedema missed in the left temporal lobe"}
    assert client.post(f"/api/v1/jobs/{uid}/review", json=verdict, headers=rex).status_code == 403
    empty = client.post(
        f"/api/v1/jobs/{uid}/review", json={"decision": "rejected"}, headers=_basic("rita")
    )
    assert empty.status_code == 409  # a rejection must say why
    done = client.post(f"/api/v1/jobs/{uid}/review", json=verdict, headers=_basic("rita"))
    assert done.status_code == 200, done.text
    assert done.json()["reviewer"] == "rita"
    store_root = web_settings.store.root
    assert store_root is not None
    reason = json.loads((store_root / f"retraining/webtoy/{uid}/reason.json").read_text())
    assert reason["reasons"][0]["reason"] == "rejected"
    assert "left temporal" in reason["reasons"][0]["detail"]
    page = client.get(f"/jobs/{uid}").text
    assert "Rejected" in page and "oedema missed" in page
    assert ("rita", "review.rejected") in [(e["who"], e["action"]) for e in _audit(web_settings)]


def test_failed_delivery_shows_why_and_retry_delivers(client: TestClient) -> None:
    csrf = sign_in(client, "rex")
    uid = _submit(client, csrf, **{"opt.webtoy.failDeliveryOnce": "on"})
    job = wait_for_phase(client, uid, {"Failed", "Succeeded"})
    assert job["status"]["phase"] == "Failed"
    page = client.get(f"/jobs/{uid}").text
    assert "This analysis failed" in page
    assert "the PACS refused the association" in page
    assert 'id="retry-delivery"' in page
    retry = client.post(
        f"/jobs/{uid}/retry-delivery", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert retry.status_code == 303
    job = wait_for_phase(client, uid, {"Succeeded", "Failed"})
    assert job["status"]["phase"] == "Succeeded"
    assert job["status"]["results"]["deliveredTo"] == ["hospital-pacs"]
    # Nothing to retry any more: the API says why.
    again = client.post(f"/api/v1/jobs/{uid}/retry-delivery", headers={"X-CSRF-Token": csrf})
    assert again.status_code == 409


def test_failure_message_is_readable(client: TestClient) -> None:
    csrf = sign_in(client, "rex")
    uid = _submit(client, csrf, **{"opt.webtoy.failAnalysis": "on"})
    wait_for_phase(client, uid, {"Failed"})
    page = client.get(f"/jobs/{uid}").text
    assert "stage webtoy-analyse failed: no post-contrast T1 series in the study" in page
    assert "check the study has a T1 after contrast" in page
    assert 'id="retry-delivery"' not in page


def test_launch_link_prefills_and_submits(client: TestClient, web_settings: Settings) -> None:
    sign_in(client, "rex")
    prefill = client.get("/launch?accession=LNK-7&app=webtoy")
    assert 'value="LNK-7"' in prefill.text
    assert 'id="app-webtoy" value="webtoy" required' in prefill.text
    assert "checked" in prefill.text.split('id="app-webtoy"')[1][:120]
    unknown = client.get("/launch?accession=LNK-7&app=nosuch")
    assert "unknown analysis (nosuch)" in unknown.text
    launched = client.get("/launch?accession=LNK-8&app=webtoy&submit=1", follow_redirects=False)
    assert launched.status_code == 303
    uid = launched.headers["location"].rsplit("/", 1)[-1]
    job = client.get(f"/api/v1/jobs/{uid}").json()
    assert job["spec"]["accession"] == "LNK-8"
    assert job["spec"]["options"]["includeEdema"] is True  # the app's defaults apply
    launch_events = [e for e in _audit(web_settings) if e.get("via") == "launch"]
    assert launch_events and launch_events[0]["job"] == uid


def test_openapi_document_describes_the_api(client: TestClient) -> None:
    document = client.get("/api/v1/openapi.json").json()
    assert {"/api/v1/jobs", "/api/v1/jobs/{uid}", "/api/v1/jobs/{uid}/review"} <= set(
        document["paths"]
    )
    assert "/jobs/{uid}" not in document["paths"]  # pages are not API
    apps = client.get("/api/v1/apps", headers=_basic("rex")).json()
    webtoy = next(a for a in apps if a["name"] == "webtoy")
    assert webtoy["options"]["properties"]["includeEdema"]["type"] == "boolean"


def test_held_delivery_and_review_gate_are_released_from_the_page(client: TestClient) -> None:
    csrf = sign_in(client, "rita")
    held = _submit(client, csrf, **{"opt.webtoy.holdDeliveryOnce": "on"})
    gated = _submit(client, csrf, **{"opt.webtoy.requireReview": "on"})
    wait_for_phase(client, held, {"DeliveryPending"})
    page = client.get(f"/jobs/{held}").text
    assert "HOSPITAL-PACS did not answer" in page and 'id="retry-delivery"' in page
    client.post(f"/jobs/{held}/retry-delivery", data={"csrf_token": csrf})
    assert wait_for_phase(client, held, {"Succeeded"})["status"]["phase"] == "Succeeded"
    wait_for_phase(client, gated, {"AwaitingReview"})
    accept = {"csrf_token": csrf, "decision": "accepted", "comment": ""}
    client.post(f"/jobs/{gated}/review", data=accept)
    job = wait_for_phase(client, gated, {"Succeeded", "Failed"})
    assert job["status"]["results"]["deliveredTo"] == ["hospital-pacs"]
