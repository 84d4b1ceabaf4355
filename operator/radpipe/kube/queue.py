"""Admission of stage Jobs under a per-namespace concurrency limit, stat jobs first.

The ledger is a cache of what the API server says (seeded by one LIST per namespace,
then kept current by every reconcile); an operator restart rebuilds it. Every AnalysisJob
that wants to start a stage asks :meth:`Ledger.admit`: it is let through only while it
is among the first ``free slots`` of the waiting jobs ordered by priority (stat, urgent,
routine) and then age, so a stat job that arrives while the namespace is full gets the
next free slot, ahead of routine jobs that were waiting before it — and ahead of the next
stage of a routine job already under way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from radpipe.api.models import AnalysisJob, Phase, Priority, StageState

PRIORITY_RANK = {Priority.STAT: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}


class Slot(StrEnum):
    """What an AnalysisJob is doing with respect to the concurrency limit."""

    RUNNING = "running"  # a stage Job exists and has not finished: holds a slot
    WAITING = "waiting"  # wants to start a stage, queued
    IDLE = "idle"  # retry wait, held, final, or not started yet


@dataclass
class Entry:
    """One AnalysisJob in the ledger."""

    rank: int
    created: str
    slot: Slot
    phase: Phase

    def order(self, name: str) -> tuple[int, str, str]:
        """Queue order: priority, then age, then name."""
        return (self.rank, self.created, name)


def entry_for(job: AnalysisJob, created: str) -> Entry:
    """The ledger entry an AnalysisJob's stored status implies."""
    status = job.status
    if any(s.state is StageState.RUNNING for s in status.stages):
        slot = Slot.RUNNING
    elif status.phase.is_final or status.phase in (Phase.AWAITING_REVIEW, Phase.DELIVERY_PENDING):
        slot = Slot.IDLE
    else:
        slot = Slot.WAITING
    return Entry(PRIORITY_RANK[job.spec.priority], created, slot, status.phase)


class Ledger:
    """Who runs and who waits, per namespace; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Entry]] = {}
        self._seeded: set[str] = set()

    def seeded(self, namespace: str) -> bool:
        """Whether ``namespace`` was loaded from the API server already."""
        with self._lock:
            return namespace in self._seeded

    def seed(self, namespace: str, jobs: Iterable[tuple[str, Entry]]) -> None:
        """Load a namespace's jobs (entries already known are newer: they win)."""
        with self._lock:
            entries = self._entries.setdefault(namespace, {})
            for name, entry in jobs:
                entries.setdefault(name, entry)
            self._seeded.add(namespace)

    def set(self, namespace: str, name: str, entry: Entry) -> None:
        """Record what a reconcile decided about a job."""
        with self._lock:
            self._entries.setdefault(namespace, {})[name] = entry

    def forget(self, namespace: str, name: str) -> None:
        """A job was deleted."""
        with self._lock:
            self._entries.get(namespace, {}).pop(name, None)

    def admit(self, namespace: str, name: str, entry: Entry, limit: int) -> tuple[bool, int]:
        """Whether ``name`` may start a stage now; (admitted, jobs ahead of it).

        Admission and taking the slot happen under one lock, so racing reconciles cannot
        overshoot the limit.
        """
        with self._lock:
            entries = self._entries.setdefault(namespace, {})
            entries.pop(name, None)
            running = sum(1 for e in entries.values() if e.slot is Slot.RUNNING)
            ahead = sum(
                1
                for other, e in entries.items()
                if e.slot is Slot.WAITING and e.order(other) < entry.order(name)
            )
            admitted = ahead < limit - running
            entry.slot = Slot.RUNNING if admitted else Slot.WAITING
            entries[name] = entry
            return admitted, ahead

    def release(self, namespace: str, name: str) -> None:
        """Give back a slot taken by :meth:`admit` when starting the Job failed."""
        with self._lock:
            entry = self._entries.get(namespace, {}).get(name)
            if entry is not None and entry.slot is Slot.RUNNING:
                entry.slot = Slot.WAITING

    def next_waiting(self, namespace: str, limit: int) -> list[str]:
        """The waiting jobs that free slots would admit now, in queue order."""
        with self._lock:
            entries = self._entries.get(namespace, {})
            running = sum(1 for e in entries.values() if e.slot is Slot.RUNNING)
            waiting = sorted(
                (e.order(name) for name, e in entries.items() if e.slot is Slot.WAITING)
            )
            return [order[2] for order in waiting[: max(0, limit - running)]]

    def counts(self) -> tuple[dict[tuple[str, str], int], dict[str, int], dict[str, int]]:
        """(jobs by (namespace, phase), waiting by namespace, running by namespace)."""
        with self._lock:
            phases: dict[tuple[str, str], int] = {}
            waiting: dict[str, int] = {}
            running: dict[str, int] = {}
            for namespace, entries in self._entries.items():
                waiting[namespace] = running[namespace] = 0
                for entry in entries.values():
                    key = (namespace, entry.phase.value)
                    phases[key] = phases.get(key, 0) + 1
                    waiting[namespace] += entry.slot is Slot.WAITING
                    running[namespace] += entry.slot is Slot.RUNNING
            return phases, waiting, running
