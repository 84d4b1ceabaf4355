"""Where jobs started by the receiver go: the local runner (run in worker threads of the
receiver process, stat before urgent before routine) or AnalysisJob resources in the
cluster (the operator runs them)."""

from __future__ import annotations

import hashlib
import itertools
import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from radpipe.api.models import API_GROUP, API_VERSION, JobSpec, Phase, Priority, utcnow
from radpipe.config import Settings
from radpipe.local.runner import JobNotFound, LocalRunner, new_job_uid

log = logging.getLogger(__name__)

JOBS_PLURAL = "analysisjobs"
#: Annotations on jobs the receiver started (no patient data: rule names and AE titles).
RULE_ANNOTATION = "radpipe.io/intake-rule"
CALLING_AE_ANNOTATION = "radpipe.io/intake-calling-ae"
CREATED = "radpipe.io/created"
#: Labels on AnalysisJobs the receiver created: who made them, and a hash of the study
#: (not patient data) so the receiver finds a study's jobs with one label-selected list.
CREATED_BY_LABEL = "app.kubernetes.io/created-by"
CREATED_BY = "radpipe-intake"
STUDY_LABEL = "radpipe.io/intake-study"

#: What the receiver's ServiceAccount may do with AnalysisJobs in its job namespace, and
#: no more (the chart's Role is checked against this): create them, read one back when a
#: create finds it already there, list a study's jobs for the spool clean-up.
CLUSTER_RULES: list[dict[str, list[str]]] = [
    {"apiGroups": [API_GROUP], "resources": [JOBS_PLURAL], "verbs": ["create", "get", "list"]}
]

_RANK = {Priority.STAT: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}


def study_label(study_uid: str) -> str:
    """The label value naming a study: a hash of its StudyInstanceUID (63 characters max)."""
    return hashlib.sha256(study_uid.encode()).hexdigest()[:32]


def job_name(key: str) -> str:
    """An AnalysisJob name from an idempotency key: the same key, the same name."""
    return "rp-" + hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class JobState:
    """How far one job got (what the spool clean-up needs)."""

    phase: Phase
    finished_at: datetime | None = None


class Submitter(Protocol):
    """Creates a job and returns its uid (the artifact-store id)."""

    def submit(self, spec: JobSpec, annotations: dict[str, str], key: str | None = None) -> str:
        """Create the job. ``key`` names the request: submitting the same key again (after a
        crash lost the study record) returns the job made the first time, where the
        submitter can find it."""
        ...

    def job_states(self, study_uid: str, uids: Sequence[str]) -> dict[str, JobState | None]:
        """The state of each of a study's jobs by uid; None: there is no such job (any more)."""
        ...

    def close(self) -> None: ...


class LocalSubmitter:
    """Submits to the local runner and runs the jobs in ``workers`` threads."""

    def __init__(self, settings: Settings, runner: LocalRunner | None = None) -> None:
        self.runner = runner or LocalRunner(settings)
        self._queue: queue.PriorityQueue[tuple[int, int, str | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._threads = [
            threading.Thread(target=self._work, name=f"radpipe-intake-{n}", daemon=True)
            for n in range(settings.runner.workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, spec: JobSpec, annotations: dict[str, str], key: str | None = None) -> str:
        """Store the job (Pending) and queue it by priority (``key`` is not used: the local
        runner's job store is the same store as the study record)."""
        job = self.runner.submit(spec)
        job.metadata.annotations.update(annotations)
        self.runner.save(job)
        self._queue.put((_RANK.get(spec.priority, 2), next(self._order), job.uid))
        return job.uid

    def _work(self) -> None:
        while True:
            _, _, uid = self._queue.get()
            if uid is None:
                return
            try:
                job = self.runner.run(uid)
                log.info("job ended in %s", job.status.phase.value, extra={"job": uid})
            except Exception:  # a broken job must not stop the worker
                log.exception("job run failed", extra={"job": uid, "stage": "-"})

    def job_states(self, study_uid: str, uids: Sequence[str]) -> dict[str, JobState | None]:
        """The jobs' records in the store."""
        states: dict[str, JobState | None] = {}
        for uid in uids:
            try:
                status = self.runner.get(uid).status
            except JobNotFound:
                states[uid] = None
                continue
            states[uid] = JobState(status.phase, status.finished_at)
        return states

    def close(self) -> None:
        """Stop the workers after the jobs they are running."""
        for _ in self._threads:
            self._queue.put((-1, next(self._order), None))
        for thread in self._threads:
            thread.join(timeout=5)


class ClusterSubmitter:
    """Creates AnalysisJob resources; the operator runs them.

    A job made from an idempotency key gets a name derived from it, so a second create of
    the same request (the receiver crashed before it recorded the first) finds the first
    job (409 AlreadyExists, then a get) instead of making another.
    """

    def __init__(self, settings: Settings, api: Any = None) -> None:
        self.namespace = settings.intake.namespace
        if api is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api = client.CustomObjectsApi()
        self.api = api

    def submit(self, spec: JobSpec, annotations: dict[str, str], key: str | None = None) -> str:
        """Create the AnalysisJob; returns its metadata.uid (the store id the stages use)."""
        name = job_name(key) if key else new_job_uid()
        labels = {CREATED_BY_LABEL: CREATED_BY}
        if spec.study_instance_uid:
            labels[STUDY_LABEL] = study_label(spec.study_instance_uid)
        body = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "AnalysisJob",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": labels,
                "annotations": {CREATED: utcnow().isoformat(), **annotations},
            },
            "spec": spec.wire(),
        }
        try:
            created = self.api.create_namespaced_custom_object(
                API_GROUP, API_VERSION, self.namespace, JOBS_PLURAL, body
            )
        except Exception as err:
            if key is None or getattr(err, "status", None) != 409:
                raise
            created = self.api.get_namespaced_custom_object(
                API_GROUP, API_VERSION, self.namespace, JOBS_PLURAL, name
            )
            log.info("the AnalysisJob for this request exists already", extra={"job": name})
        metadata = created.get("metadata", {})
        return str(metadata.get("uid") or metadata.get("name"))

    def job_states(self, study_uid: str, uids: Sequence[str]) -> dict[str, JobState | None]:
        """One list of the study's AnalysisJobs (by its label); jobs made before the label
        existed are looked for among all the receiver's jobs, so none is taken for gone."""
        by_uid = self._states(f"{STUDY_LABEL}={study_label(study_uid)}")
        if any(uid not in by_uid for uid in uids):
            by_uid.update(self._states(f"{CREATED_BY_LABEL}={CREATED_BY}"))
        return {uid: by_uid.get(uid) for uid in uids}

    def _states(self, selector: str) -> dict[str, JobState]:
        found = self.api.list_namespaced_custom_object(
            API_GROUP, API_VERSION, self.namespace, JOBS_PLURAL, label_selector=selector
        )
        by_uid: dict[str, JobState] = {}
        for item in found.get("items", []):
            metadata, status = item.get("metadata", {}), item.get("status") or {}
            try:
                phase = Phase(status.get("phase") or Phase.PENDING.value)
            except ValueError:
                phase = Phase.PENDING
            finished = status.get("finishedAt")
            state = JobState(phase, datetime.fromisoformat(finished) if finished else None)
            for ident in (metadata.get("uid"), metadata.get("name")):
                if ident:
                    by_uid[str(ident)] = state
        return by_uid

    def close(self) -> None:
        """Nothing to stop: the operator runs the jobs."""


def open_submitter(settings: Settings) -> Submitter:
    """The submitter ``intake.submit_to`` names."""
    if settings.intake.submit_to == "cluster":
        return ClusterSubmitter(settings)
    return LocalSubmitter(settings)
