"""Live job updates for the pages: server-sent events (``GET /api/v1/jobs/events``).

One :class:`JobEvents` hub per web app keeps the last summary of every job and a short
numbered log of changes. It learns of a change in two ways:

* at once, when this process saves a job (local mode: the web app's own workers), through
  :meth:`radpipe.web.backend.JobBackend.on_change`;
* by listing the jobs every few seconds while someone is listening, for changes made
  elsewhere (``radpipe run`` in another process, the operator in cluster mode).

An event carries only what the pages need to redraw progress and nothing about the
patient: the job id, its phase, its current stage and that stage's progress, and each
stage's state and progress. Who may see which job is decided per listener by the caller
(:class:`radpipe.web.service.JobService`), from the requester and department kept beside
each summary (never sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from radpipe.api.models import AnalysisJob, StageState
from radpipe.web.backend import DEPARTMENT, REQUESTED_BY, JobBackend

log = logging.getLogger(__name__)

#: How many changes the hub remembers for listeners that reconnect (Last-Event-ID).
HISTORY = 2000
#: A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_SECONDS = 15.0
#: A stream ends after this long and the browser reconnects (EventSource does so by
#: itself, sending Last-Event-ID): no connection outlives a server shutdown for long.
STREAM_SECONDS = 60.0
#: What the browser waits before reconnecting, in milliseconds.
RETRY_MS = 2000


@dataclass(frozen=True)
class Change:
    """One change of one job: the event sent (``data``) and who may see it (not sent)."""

    seq: int
    data: dict[str, Any]
    requested_by: str
    department: str

    @property
    def uid(self) -> str:
        return str(self.data["uid"])


def summary(job: AnalysisJob) -> dict[str, Any]:
    """What an event says about a job: ids, phase, stage and progress only (no PHI)."""
    stages = job.status.stages
    current = job.status.current_stage
    progress = 0.0
    for stage in stages:
        if stage.name == current:
            progress = float(stage.progress or 0.0)
    return {
        "uid": job.uid,
        "phase": job.status.phase.value,
        "stage": current,
        "progress": round(progress, 3),
        "stages": [
            {
                "name": s.name,
                "state": s.state.value,
                "progress": 1.0
                if s.state is StageState.SUCCEEDED
                else round(float(s.progress or 0.0), 3),
            }
            for s in stages
        ],
    }


class JobEvents:
    """The hub: remembers job summaries, numbers their changes and wakes listeners."""

    def __init__(self, backend: JobBackend, scan_seconds: float = 2.0) -> None:
        self.backend = backend
        self.scan_seconds = scan_seconds
        self._lock = threading.Lock()
        self._last: dict[str, dict[str, Any]] = {}
        self._seeded = False
        self._seq = 0
        self._log: deque[Change] = deque(maxlen=HISTORY)
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        backend.on_change(self.note)

    # -- learning of changes ---------------------------------------------------------------

    def note(self, job: AnalysisJob) -> None:
        """Record ``job``'s state; when it changed, number the change and wake listeners."""
        data = summary(job)
        with self._lock:
            if self._last.get(job.uid) == data:
                return
            self._last[job.uid] = data
            self._seq += 1
            annotations = job.metadata.annotations
            self._log.append(
                Change(
                    seq=self._seq,
                    data=data,
                    requested_by=annotations.get(REQUESTED_BY, ""),
                    department=annotations.get(DEPARTMENT, ""),
                )
            )
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that listener's loop is closed
                loop.call_soon_threadsafe(event.set)

    def scan(self) -> None:
        """List the jobs and note every change (the first scan only learns the states)."""
        try:
            jobs = self.backend.list_jobs()
        except Exception:  # a store or API outage: try again at the next scan
            log.warning("live updates: cannot list jobs")
            return
        with self._lock:
            seeded = self._seeded
            if not seeded:
                for job in jobs:
                    self._last.setdefault(job.uid, summary(job))
                self._seeded = True
        if seeded:
            for job in jobs:
                self.note(job)

    @property
    def last_seq(self) -> int:
        """The number of the latest change."""
        with self._lock:
            return self._seq

    def since(self, seq: int) -> list[Change]:
        """The changes after ``seq`` that are still remembered, oldest first."""
        with self._lock:
            return [c for c in self._log if c.seq > seq]

    # -- background scanning ---------------------------------------------------------------

    def start(self) -> None:
        """Scan for outside changes every few seconds while anyone listens."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._scan_loop, name="radpipe-web-events")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop scanning."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _scan_loop(self) -> None:
        while not self._stop.wait(self.scan_seconds):
            with self._lock:
                listening = bool(self._waiters)
            if listening:
                self.scan()

    # -- listening -------------------------------------------------------------------------

    async def stream(
        self,
        visible: Callable[[Change], bool],
        last_event_id: int | None = None,
        *,
        is_disconnected: Callable[[], Any] | None = None,
        lifetime: float = STREAM_SECONDS,
    ) -> AsyncIterator[str]:
        """The text/event-stream body for one listener: the changes ``visible`` lets through.

        With ``last_event_id`` (the browser's Last-Event-ID after a reconnect) the changes
        missed since then are sent first, as far as the hub remembers them.
        """
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        waiter = (loop, wake)
        with self._lock:
            first_listener = not self._waiters
            self._waiters.add(waiter)
        try:
            if first_listener or not self._seeded:
                await asyncio.to_thread(self.scan)
            latest = self.last_seq
            # A reconnect after a server restart names a number this hub never reached.
            seq = latest if last_event_id is None or last_event_id > latest else last_event_id
            yield f"retry: {RETRY_MS}\nevent: ready\ndata: {json.dumps({'seq': seq})}\n\n"
            deadline = loop.time() + lifetime
            quiet_since = loop.time()
            while loop.time() < deadline:
                wake.clear()
                changes = self.since(seq)
                if changes:
                    seq = changes[-1].seq
                sent = False
                for change in changes:
                    if visible(change):
                        data = json.dumps(change.data, separators=(",", ":"))
                        yield f"id: {change.seq}\nevent: job\ndata: {data}\n\n"
                        sent = True
                if sent:
                    quiet_since = loop.time()
                elif loop.time() - quiet_since >= KEEPALIVE_SECONDS:
                    yield ": keepalive\n\n"
                    quiet_since = loop.time()
                if is_disconnected is not None and await is_disconnected():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=1.0)
        finally:
            with self._lock:
                self._waiters.discard(waiter)
