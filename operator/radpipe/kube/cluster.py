"""The few Kubernetes API calls the operator and the stage runner make, behind one
protocol, so the reconcile logic can be tested against an in-memory fake.

Objects travel as plain dicts (the JSON the API server speaks): the pydantic models in
:mod:`radpipe.api.models` give them meaning, not the generated client classes.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from radpipe.api.models import API_GROUP, API_VERSION

log = logging.getLogger(__name__)

Body = dict[str, Any]


class ClusterError(Exception):
    """An API call failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:
        """Whether trying again later may help (server errors, throttling, no answer)."""
        return self.status in (0, 409, 429) or self.status >= 500


class Conflict(ClusterError):
    """The object changed since it was read (resourceVersion precondition failed)."""


class Cluster(Protocol):
    """What radpipe needs from the API server."""

    def get_analysis_job(self, namespace: str, name: str) -> Body | None: ...

    def list_analysis_jobs(self, namespace: str | None) -> list[Body]: ...

    def patch_analysis_job_status(
        self, namespace: str, name: str, status: Body, resource_version: str | None
    ) -> Body: ...

    def patch_analysis_job_annotations(
        self, namespace: str, name: str, annotations: dict[str, str | None]
    ) -> None: ...

    def get_analysis_app(self, name: str) -> Body | None: ...

    def get_stage_job(self, namespace: str, name: str) -> Body | None: ...

    def create_stage_job(self, manifest: Body) -> tuple[Body, bool]: ...

    def delete_stage_job(self, namespace: str, name: str) -> None: ...

    def list_pods(self, namespace: str, selector: str) -> list[Body]: ...

    def pod_log(self, namespace: str, pod: str, tail_lines: int) -> str | None: ...

    def post_event(
        self, obj: Body, type_: str, reason: str, message: str, component: str
    ) -> None: ...

    def get_inference_service(self, namespace: str, name: str) -> Body | None: ...


def event_body(obj: Body, type_: str, reason: str, message: str, component: str) -> Body:
    """A core/v1 Event about ``obj`` (what `kubectl describe` lists)."""
    meta = obj.get("metadata", {})
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "generateName": f"{meta.get('name', 'radpipe')}.",
            "namespace": meta.get("namespace") or "default",
        },
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", f"{API_GROUP}/{API_VERSION}"),
            "kind": obj.get("kind", "AnalysisJob"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1000],
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


class KubernetesCluster:
    """:class:`Cluster` over the official ``kubernetes`` client (in-cluster or kubeconfig)."""

    def __init__(self, api_client: Any | None = None, pool_size: int = 32) -> None:
        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            configuration = client.Configuration.get_default_copy()
            # One connection per reconcile thread, so threads never wait for a socket.
            configuration.connection_pool_maxsize = pool_size
            if not configuration.verify_ssl:
                # The kubeconfig asks for it (insecure-skip-tls-verify): say so once, rather
                # than one urllib3 warning per request drowning the stage's own log.
                import urllib3

                log.warning("not verifying the API server's certificate (kubeconfig says so)")
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            api_client = client.ApiClient(configuration)
        self._api = api_client
        self._custom = client.CustomObjectsApi(api_client)
        self._batch = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)

    # -- plumbing ------------------------------------------------------------------------

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from pydantic import ValidationError
        from urllib3.exceptions import HTTPError

        try:
            response = fn(*args, _preload_content=False, _request_timeout=30, **kwargs)
        except ValidationError as err:  # the client's own schema check: same as a 422
            raise ClusterError(f"{what}: invalid request: {err}", 422) from err
        except ApiException as err:
            reason = _api_message(err)
            cls = Conflict if err.status == 409 else ClusterError
            raise cls(f"{what}: {reason}", int(err.status or 0)) from err
        except (HTTPError, OSError) as err:
            raise ClusterError(f"{what}: API server unreachable: {err}") from err
        data = response.data
        return json.loads(data) if data else None

    def _maybe(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Body | None:
        try:
            found: Body | None = self._call(what, fn, *args, **kwargs)
            return found
        except ClusterError as err:
            if err.status == 404:
                return None
            raise

    # -- AnalysisJob / AnalysisApp -------------------------------------------------------

    def get_analysis_job(self, namespace: str, name: str) -> Body | None:
        """One AnalysisJob, or None."""
        return self._maybe(
            f"get analysisjob {namespace}/{name}",
            self._custom.get_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            namespace,
            "analysisjobs",
            name,
        )

    def list_analysis_jobs(self, namespace: str | None) -> list[Body]:
        """Every AnalysisJob in ``namespace`` (None: all namespaces)."""
        if namespace is None:
            found = self._call(
                "list analysisjobs",
                self._custom.list_cluster_custom_object,
                API_GROUP,
                API_VERSION,
                "analysisjobs",
            )
        else:
            found = self._call(
                f"list analysisjobs in {namespace}",
                self._custom.list_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                namespace,
                "analysisjobs",
            )
        items: list[Body] = found.get("items", [])
        return items

    def patch_analysis_job_status(
        self, namespace: str, name: str, status: Body, resource_version: str | None
    ) -> Body:
        """Merge-patch the status subresource; with ``resource_version`` as precondition."""
        patch: Body = {"status": status}
        if resource_version:
            patch["metadata"] = {"resourceVersion": resource_version}
        result: Body = self._call(
            f"patch analysisjob {namespace}/{name} status",
            self._custom.patch_namespaced_custom_object_status,
            API_GROUP,
            API_VERSION,
            namespace,
            "analysisjobs",
            name,
            patch,
        )
        return result

    def patch_analysis_job_annotations(
        self, namespace: str, name: str, annotations: dict[str, str | None]
    ) -> None:
        """Set (or, with None, remove) annotations."""
        self._call(
            f"annotate analysisjob {namespace}/{name}",
            self._custom.patch_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            namespace,
            "analysisjobs",
            name,
            {"metadata": {"annotations": annotations}},
        )

    def get_analysis_app(self, name: str) -> Body | None:
        """One AnalysisApp (cluster-scoped), or None."""
        return self._maybe(
            f"get analysisapp {name}",
            self._custom.get_cluster_custom_object,
            API_GROUP,
            API_VERSION,
            "analysisapps",
            name,
        )

    # -- stage Jobs and their pods -------------------------------------------------------

    def get_stage_job(self, namespace: str, name: str) -> Body | None:
        """One batch/v1 Job, or None."""
        return self._maybe(
            f"get job {namespace}/{name}", self._batch.read_namespaced_job, name, namespace
        )

    def create_stage_job(self, manifest: Body) -> tuple[Body, bool]:
        """Create a Job; when one of that name exists already, return it (created=False)."""
        meta = manifest["metadata"]
        try:
            created: Body = self._call(
                f"create job {meta['namespace']}/{meta['name']}",
                self._batch.create_namespaced_job,
                meta["namespace"],
                manifest,
            )
            return created, True
        except ClusterError as err:
            if err.status != 409:
                raise
        existing = self.get_stage_job(meta["namespace"], meta["name"])
        if existing is None:
            raise ClusterError(f"job {meta['name']} exists and does not: try again", 409)
        return existing, False

    def delete_stage_job(self, namespace: str, name: str) -> None:
        """Delete a Job and (in the background) its pods; a missing Job is fine."""
        from kubernetes import client

        self._maybe(
            f"delete job {namespace}/{name}",
            self._batch.delete_namespaced_job,
            name,
            namespace,
            body=client.V1DeleteOptions(propagation_policy="Background"),
        )

    def list_pods(self, namespace: str, selector: str) -> list[Body]:
        """Pods matching a label selector."""
        found = self._call(
            f"list pods {selector}",
            self._core.list_namespaced_pod,
            namespace,
            label_selector=selector,
        )
        items: list[Body] = found.get("items", [])
        return items

    def pod_log(self, namespace: str, pod: str, tail_lines: int) -> str | None:
        """The pod's log tail, or None when the log cannot be read (pod gone, no kubelet)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            response: Any = self._core.read_namespaced_pod_log(
                pod, namespace, tail_lines=tail_lines, _preload_content=False, _request_timeout=5
            )
            return str(response.data.decode(errors="replace"))
        except (ApiException, HTTPError, OSError):
            return None

    def post_event(self, obj: Body, type_: str, reason: str, message: str, component: str) -> None:
        """Record an Event about ``obj``; failing to do so is logged, never fatal."""
        body = event_body(obj, type_, reason, message, component)
        try:
            self._call(
                "post event",
                self._core.create_namespaced_event,
                body["metadata"]["namespace"],
                body,
            )
        except ClusterError as err:
            log.warning("could not record event %s: %s", reason, err)

    def get_inference_service(self, namespace: str, name: str) -> Body | None:
        """A KServe InferenceService, or None."""
        return self._maybe(
            f"get inferenceservice {namespace}/{name}",
            self._custom.get_namespaced_custom_object,
            "serving.kserve.io",
            "v1beta1",
            namespace,
            "inferenceservices",
            name,
        )


def _api_message(err: Any) -> str:
    try:
        return str(json.loads(err.body).get("message") or err.reason)
    except (TypeError, ValueError, AttributeError):
        return str(err.reason or err)
