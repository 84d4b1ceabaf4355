"""Where jobs started by the receiver go: the local runner (run in worker threads of the
receiver process, stat before urgent before routine) or AnalysisJob resources in the
cluster (the operator runs them)."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from typing import Any, Protocol

from radpipe.api.models import API_GROUP, API_VERSION, JobSpec, Priority, utcnow
from radpipe.config import Settings
from radpipe.local.runner import LocalRunner, new_job_uid

log = logging.getLogger(__name__)

JOBS_PLURAL = "analysisjobs"
#: Annotations on jobs the receiver started (no patient data: rule names and AE titles).
RULE_ANNOTATION = "radpipe.io/intake-rule"
CALLING_AE_ANNOTATION = "radpipe.io/intake-calling-ae"
CREATED = "radpipe.io/created"

_RANK = {Priority.STAT: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}


class Submitter(Protocol):
    """Creates a job and returns its uid (the artifact-store id)."""

    def submit(self, spec: JobSpec, annotations: dict[str, str]) -> str: ...

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

    def submit(self, spec: JobSpec, annotations: dict[str, str]) -> str:
        """Store the job (Pending) and queue it by priority."""
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

    def close(self) -> None:
        """Stop the workers after the jobs they are running."""
        for _ in self._threads:
            self._queue.put((-1, next(self._order), None))
        for thread in self._threads:
            thread.join(timeout=5)


class ClusterSubmitter:
    """Creates AnalysisJob resources; the operator runs them."""

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

    def submit(self, spec: JobSpec, annotations: dict[str, str]) -> str:
        """Create the AnalysisJob; returns its metadata.uid (the store id the stages use)."""
        body = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "AnalysisJob",
            "metadata": {
                "name": new_job_uid(),
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/created-by": "radpipe-intake"},
                "annotations": {CREATED: utcnow().isoformat(), **annotations},
            },
            "spec": spec.wire(),
        }
        created = self.api.create_namespaced_custom_object(
            API_GROUP, API_VERSION, self.namespace, JOBS_PLURAL, body
        )
        metadata = created.get("metadata", {})
        return str(metadata.get("uid") or metadata.get("name"))

    def close(self) -> None:
        """Nothing to stop: the operator runs the jobs."""


def open_submitter(settings: Settings) -> Submitter:
    """The submitter ``intake.submit_to`` names."""
    if settings.intake.submit_to == "cluster":
        return ClusterSubmitter(settings)
    return LocalSubmitter(settings)
