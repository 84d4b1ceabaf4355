"""Finding a model's URL and version from its KServe InferenceService.

An AnalysisApp names its models by InferenceService (``models[].inferenceService``,
``name`` or ``namespace/name``; a bare name is looked up in the job's namespace). KServe
writes the served URL into the InferenceService's status: ``status.address.url`` (inside
the cluster, preferred for stage pods) or ``status.url``. The version recorded with every
result is, in order: the ``radpipe.io/model-version`` annotation (set by the ML team's
GitOps change), the ``app.kubernetes.io/version`` label, the predictor's latest ready
revision, the model's ``storageUri``, else the object's generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from radpipe.kube.cluster import Body, Cluster

VERSION_ANNOTATION = "radpipe.io/model-version"


@dataclass(frozen=True)
class ModelEndpoint:
    """Where a model is served and which version it is."""

    name: str
    url: str | None
    version: str | None
    ready: bool


def _get(body: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def split_ref(ref: str, namespace: str) -> tuple[str, str]:
    """``name`` or ``namespace/name`` -> (namespace, name)."""
    if "/" in ref:
        ns, _, name = ref.partition("/")
        return ns, name
    return namespace, ref


def model_version(body: Body) -> str | None:
    """The version an InferenceService serves (see the module docstring for the order)."""
    candidates = (
        _get(body, "metadata", "annotations", VERSION_ANNOTATION),
        _get(body, "metadata", "labels", "app.kubernetes.io/version"),
        _get(body, "status", "components", "predictor", "latestReadyRevision"),
        _get(body, "spec", "predictor", "model", "storageUri"),
    )
    for value in candidates:
        if value:
            return str(value)
    generation = _get(body, "metadata", "generation")
    return f"generation-{generation}" if generation else None


def endpoint_of(body: Body) -> ModelEndpoint:
    """URL, version and readiness of an InferenceService object."""
    url = _get(body, "status", "address", "url") or _get(body, "status", "url")
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in _get(body, "status", "conditions") or []
    )
    return ModelEndpoint(
        name=str(_get(body, "metadata", "name")),
        url=str(url) if url else None,
        version=model_version(body),
        ready=ready,
    )


def resolve_model(cluster: Cluster, namespace: str, ref: str) -> ModelEndpoint | None:
    """The endpoint of the InferenceService ``ref``; None when it does not exist."""
    ns, name = split_ref(ref, namespace)
    body = cluster.get_inference_service(ns, name)
    return endpoint_of(body) if body is not None else None
