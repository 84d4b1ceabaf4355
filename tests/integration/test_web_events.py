"""Live updates by server-sent events: GET /api/v1/jobs/events on the app served by
uvicorn on loopback, read by a streaming httpx client as a browser's EventSource would.

A job's phase changes reach a listener as events; the events carry ids, phase, stage and
progress only (no accession, no requester); a listener sees only the jobs they may see;
a reconnect with Last-Event-ID gets what it missed; nobody signed out gets a stream.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from radpipe.api.models import JobSpec
from radpipe.config import Settings
from radpipe.web.backend import DEPARTMENT
from radpipe.web.cluster import ClusterBackend
from radpipe.web.events import JobEvents
from tests.fixtures.web import PASSWORDS, LiveServer
from tests.unit.test_web_parts import FakeCustomObjects

EVENT_KEYS = {"uid", "phase", "stage", "progress", "stages"}
STAGE_KEYS = {"name", "state", "progress"}


def basic(name: str) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{PASSWORDS[name]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Parse a text/event-stream body: one dict per event (event, id, data, raw)."""
    fields: dict[str, Any] = {}
    raw: list[str] = []
    for line in response.iter_lines():
        raw.append(line)
        if line == "":
            if "data" in fields or "event" in fields:
                fields["raw"] = "\n".join(raw)
                if "data" in fields:
                    fields["data"] = json.loads(fields["data"])
                yield fields
            fields, raw = {}, []
            continue
        if line.startswith(":"):
            continue  # a keep-alive comment
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")


def submit(live: LiveServer, user: str, accession: str, delay: float = 0.3) -> str:
    spec = {"accession": accession, "app": "webtoy", "options": {"delay": delay}}
    made = httpx.post(live.url + "/api/v1/jobs", json=spec, headers=basic(user), timeout=10)
    assert made.status_code == 201, made.text
    return str(made.json()["metadata"]["name"])


def follow_until(
    stream: Iterator[dict[str, Any]], uid: str, phase: str, timeout: float = 30
) -> list[dict[str, Any]]:
    """Read events until ``uid`` reaches ``phase``; every job event read is returned."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    for event in stream:
        assert time.monotonic() < deadline, f"{uid} never reached {phase}: {seen[-3:]}"
        if event.get("event") != "job":
            continue
        seen.append(event)
        if event["data"]["uid"] == uid and event["data"]["phase"] == phase:
            return seen
    raise AssertionError(f"the stream ended before {uid} reached {phase}")


def test_a_phase_change_arrives_as_an_event_without_patient_data(live_web: LiveServer) -> None:
    url = live_web.url + "/api/v1/jobs/events"
    with httpx.stream("GET", url, headers=basic("rex"), timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        stream = events(response)
        ready = next(stream)
        assert ready["event"] == "ready" and "retry: " in ready["raw"]
        uid = submit(live_web, "rex", "SSE-ACC-1")
        seen = follow_until(stream, uid, "Succeeded")
    mine = [e for e in seen if e["data"]["uid"] == uid]
    phases = [e["data"]["phase"] for e in mine]
    assert "Running" in phases and phases[-1] == "Succeeded", phases
    stages_run = {e["data"]["stage"] for e in mine if e["data"]["phase"] == "Running"}
    assert {"webtoy-analyse", "webtoy-report"} <= stages_run, stages_run
    assert any(0 < e["data"]["progress"] < 1 for e in mine), "stage progress is sent"
    ids = [int(e["id"]) for e in mine]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "event ids count up"
    for event in mine:
        assert set(event["data"]) == EVENT_KEYS, event["data"]
        for stage in event["data"]["stages"]:
            assert set(stage) == STAGE_KEYS
        assert "SSE-ACC-1" not in event["raw"] and "rex" not in event["raw"]
    final = mine[-1]["data"]
    assert [s["state"] for s in final["stages"]] == ["Succeeded"] * 4


def test_a_listener_sees_only_the_jobs_they_may_see(live_web: LiveServer) -> None:
    """rex's job reaches rita (radiologist) and rex; ada's job reaches rita but not rex."""
    url = live_web.url + "/api/v1/jobs/events"
    with (
        httpx.stream("GET", url, headers=basic("rex"), timeout=30) as as_rex,
        httpx.stream("GET", url, headers=basic("rita"), timeout=30) as as_rita,
    ):
        rex_stream, rita_stream = events(as_rex), events(as_rita)
        assert next(rex_stream)["event"] == "ready" and next(rita_stream)["event"] == "ready"
        other = submit(live_web, "ada", "SSE-ACC-2", delay=0.1)
        mine = submit(live_web, "rex", "SSE-ACC-3", delay=0.1)
        rita_saw = {e["data"]["uid"] for e in follow_until(rita_stream, mine, "Succeeded")}
        rex_saw = {e["data"]["uid"] for e in follow_until(rex_stream, mine, "Succeeded")}
    assert other in rita_saw and mine in rita_saw
    assert mine in rex_saw and other not in rex_saw


def test_one_job_stream_and_resume_after_a_reconnect(live_web: LiveServer) -> None:
    uid = submit(live_web, "rex", "SSE-ACC-4", delay=0.5)
    url = live_web.url + f"/api/v1/jobs/events?job={uid}"
    with httpx.stream("GET", url, headers=basic("rex"), timeout=30) as response:
        stream = events(response)
        next(stream)
        first = next(e for e in stream if e.get("event") == "job")
    assert first["data"]["uid"] == uid
    # Reconnect as EventSource does, naming the last event seen: the rest comes, replayed
    # from the hub's memory if it happened while nobody listened.
    time.sleep(1.5)
    resume = {**basic("rex"), "Last-Event-ID": first["id"]}
    with httpx.stream("GET", url, headers=resume, timeout=30) as response:
        seen = follow_until(events(response), uid, "Succeeded")
    assert all(int(e["id"]) > int(first["id"]) for e in seen)
    assert {e["data"]["uid"] for e in seen} == {uid}


@pytest.mark.parametrize("who", [None, "nobody"])
def test_no_stream_without_signing_in(live_web: LiveServer, who: str | None) -> None:
    headers = {"Authorization": "Basic " + base64.b64encode(b"nobody:x").decode()} if who else {}
    answer = httpx.get(live_web.url + "/api/v1/jobs/events", headers=headers, timeout=10)
    assert answer.status_code == 401


def test_another_users_job_stream_is_refused(live_web: LiveServer) -> None:
    uid = submit(live_web, "ada", "SSE-ACC-5", delay=0)
    answer = httpx.get(
        live_web.url + f"/api/v1/jobs/events?job={uid}", headers=basic("rex"), timeout=10
    )
    assert answer.status_code == 404


def test_changes_made_elsewhere_are_found_by_listing(settings: Settings) -> None:
    """Cluster mode: the operator changes jobs, not this process; the hub lists them."""
    api = FakeCustomObjects()
    backend = ClusterBackend(settings, api=api)
    job = backend.submit(JobSpec(accession="SSE-ACC-6", app="glioma"), "rex", "neuro")
    name = job.metadata.name
    assert api.objects[name]["metadata"]["annotations"][DEPARTMENT] == "neuro"
    hub = JobEvents(backend)
    hub.scan()  # the first listing only learns what is there
    assert hub.since(0) == []
    api.objects[name]["status"] = {"phase": "Running"}
    hub.scan()
    (change,) = hub.since(0)
    assert change.data["phase"] == "Running" and change.data["uid"] == job.uid
    assert (change.requested_by, change.department) == ("rex", "neuro")
    assert "SSE-ACC-6" not in json.dumps(change.data)
    hub.scan()
    assert len(hub.since(0)) == 1, "an unchanged job makes no event"

    async def read(visible: bool) -> str:
        chunks = [c async for c in hub.stream(lambda c: visible, 0, lifetime=0.2)]
        return "".join(chunks)

    shown, hidden = asyncio.run(read(True)), asyncio.run(read(False))
    assert f"id: {change.seq}\nevent: job\n" in shown and '"phase":"Running"' in shown
    assert "event: ready" in hidden and "event: job" not in hidden
