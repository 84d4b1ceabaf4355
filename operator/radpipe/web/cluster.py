"""Cluster mode: jobs are AnalysisJob resources, created and read through the Kubernetes
API, so ``kubectl get analysisjobs`` and the web page show the same jobs. The operator
runs them; the web app only reads their status and their artifacts in the shared store.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from radpipe.api.apps import load_apps
from radpipe.api.models import (
    API_GROUP,
    API_VERSION,
    AnalysisApp,
    AnalysisJob,
    JobSpec,
    Phase,
    utcnow,
)
from radpipe.config import Settings
from radpipe.local.runner import JobNotFound, new_job_uid
from radpipe.store import ArtifactStore, open_store
from radpipe.web.backend import (
    CREATED,
    DEPARTMENT,
    REQUESTED_BY,
    BackendError,
    JobBackend,
    validate_options,
)

log = logging.getLogger(__name__)

JOBS_PLURAL = "analysisjobs"
APPS_PLURAL = "analysisapps"
#: The operator's release annotation (radpipe.kube.names.ANNOTATION_RELEASE, not imported:
#: nothing imports kube but the CLI): a held job's waiting stage runs again.
RELEASE = "radpipe.io/release"


def kubernetes_api(settings: Settings) -> Any:
    """A CustomObjectsApi from the configured kubeconfig, else in-cluster, else ~/.kube."""
    from kubernetes import client, config

    if settings.web.kubeconfig is not None:
        config.load_kube_config(config_file=str(settings.web.kubeconfig))
    else:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
    return client.CustomObjectsApi()


class ClusterBackend(JobBackend):
    """Creates and reads AnalysisJob resources in one namespace."""

    mode = "cluster"

    def __init__(
        self, settings: Settings, api: Any = None, store: ArtifactStore | None = None
    ) -> None:
        self.settings = settings
        self.namespace = settings.web.namespace
        self.api = api if api is not None else kubernetes_api(settings)
        self.store = store or open_store(settings.store)

    def _api_error(self, err: Exception, what: str) -> BackendError:
        status = getattr(err, "status", None)
        reason = getattr(err, "reason", None) or str(err)
        return BackendError(
            f"the Kubernetes API refused to {what} (HTTP {status}: {reason}); "
            f"check the web app's service account may use {JOBS_PLURAL}.{API_GROUP} "
            f"in namespace {self.namespace}"
        )

    def _parse(self, obj: dict[str, Any]) -> AnalysisJob:
        try:
            job = AnalysisJob.model_validate(obj)
        except ValidationError as err:
            name = obj.get("metadata", {}).get("name", "?")
            raise BackendError(
                f"AnalysisJob {name} does not match this radpipe version: {err}"
            ) from err
        # Jobs made with kubectl carry no created annotation: the API server's time stands in.
        stamp = obj.get("metadata", {}).get("creationTimestamp")
        if stamp and CREATED not in job.metadata.annotations:
            job.metadata.annotations[CREATED] = str(stamp)
        return job

    def apps(self) -> dict[str, AnalysisApp]:
        """The AnalysisApp resources of the cluster (the packaged ones when none exist)."""
        try:
            found = self.api.list_cluster_custom_object(API_GROUP, API_VERSION, APPS_PLURAL)
        except Exception as err:
            log.warning("cannot list AnalysisApps (%s); using the packaged apps", err)
            return load_apps(self.settings.apps_dir)
        apps = {}
        for item in found.get("items", []):
            app = AnalysisApp.model_validate(
                {k: item[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in item}
            )
            apps[app.metadata.name] = app
        return apps or load_apps(self.settings.apps_dir)

    def submit(self, spec: JobSpec, requested_by: str, department: str = "") -> AnalysisJob:
        validate_options(spec, self.apps())
        name = new_job_uid()
        annotations = {CREATED: utcnow().isoformat(), REQUESTED_BY: requested_by}
        if department:
            annotations[DEPARTMENT] = department
        body = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "AnalysisJob",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/created-by": "radpipe-web"},
                "annotations": annotations,
            },
            "spec": spec.wire(),
        }
        try:
            created = self.api.create_namespaced_custom_object(
                API_GROUP, API_VERSION, self.namespace, JOBS_PLURAL, body
            )
        except Exception as err:
            raise self._api_error(err, "create the AnalysisJob") from err
        return self._parse(created)

    def _get_raw(self, uid: str) -> dict[str, Any]:
        """The resource whose name or metadata.uid is ``uid``."""
        try:
            obj: dict[str, Any] = self.api.get_namespaced_custom_object(
                API_GROUP, API_VERSION, self.namespace, JOBS_PLURAL, uid
            )
            return obj
        except Exception as err:
            if getattr(err, "status", None) != 404:
                raise self._api_error(err, "read the AnalysisJob") from err
        for item in self._list_raw():
            if item.get("metadata", {}).get("uid") == uid:
                return item
        raise JobNotFound(f"no AnalysisJob {uid!r} in namespace {self.namespace}")

    def _list_raw(self) -> list[dict[str, Any]]:
        try:
            found = self.api.list_namespaced_custom_object(
                API_GROUP, API_VERSION, self.namespace, JOBS_PLURAL
            )
        except Exception as err:
            raise self._api_error(err, "list AnalysisJobs") from err
        items: list[dict[str, Any]] = found.get("items", [])
        return items

    def get(self, uid: str) -> AnalysisJob:
        return self._parse(self._get_raw(uid))

    def list_jobs(self) -> list[AnalysisJob]:
        jobs = [self._parse(item) for item in self._list_raw()]
        return sorted(jobs, key=lambda j: j.metadata.annotations.get(CREATED, ""), reverse=True)

    def _patch(self, name: str, patch: dict[str, Any], what: str) -> AnalysisJob:
        try:
            patched = self.api.patch_namespaced_custom_object(
                API_GROUP, API_VERSION, self.namespace, JOBS_PLURAL, name, patch
            )
        except Exception as err:
            raise self._api_error(err, what) from err
        return self._parse(patched)

    def cancel(self, uid: str) -> AnalysisJob:
        name = self._get_raw(uid)["metadata"]["name"]
        return self._patch(name, {"spec": {"cancel": True}}, "cancel the AnalysisJob")

    def retry_delivery(self, uid: str) -> AnalysisJob:
        """Ask the operator to deliver again (a delivery held in DeliveryPending)."""
        job = self.get(uid)
        if job.status.phase is not Phase.DELIVERY_PENDING:
            raise BackendError(
                f"in cluster mode only a waiting delivery (DeliveryPending) can be retried; "
                f"the job is {job.status.phase.value}: request the analysis again"
            )
        return self.release(uid)

    def release(self, uid: str) -> AnalysisJob:
        """Set the operator's release annotation on a held job."""
        name = self._get_raw(uid)["metadata"]["name"]
        stamp = utcnow().isoformat(timespec="seconds")
        patch = {"metadata": {"annotations": {RELEASE: stamp}}}
        return self._patch(name, patch, "release the AnalysisJob")
