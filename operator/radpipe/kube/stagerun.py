"""The stage runner inside a stage Job's pod: ``radpipe stage run --job NS/NAME --stage S``.

In cluster mode the job record is the AnalysisJob resource: this reads it and its
AnalysisApp from the API server (in-cluster service account, else KUBECONFIG), points the
models of the infer stage at their KServe InferenceServices, and runs the stage with the
configured artifact store (MinIO in a cluster). It never writes the AnalysisJob: the
operator reads the Job's outcome and the stage's ``result.json`` and updates the status.
"""

from __future__ import annotations

import logging
import os

from pydantic import ValidationError

from radpipe.api.models import AnalysisApp, AnalysisJob
from radpipe.config import ModelEndpointConfig, Settings
from radpipe.kube.cluster import Cluster, ClusterError, KubernetesCluster
from radpipe.kube.jobspec import ATTEMPT_ENV
from radpipe.kube.kserve import resolve_model
from radpipe.pipeline.executor import StageRun, execute_stage
from radpipe.store import open_store

log = logging.getLogger(__name__)


class ClusterStageError(Exception):
    """The stage could not even start (job or app unreadable); the message says why."""


def split_job_ref(ref: str) -> tuple[str, str]:
    """``NAMESPACE/NAME`` -> (namespace, name)."""
    namespace, _, name = ref.partition("/")
    if not namespace or not name or "/" in name:
        raise ClusterStageError(f"--job {ref!r} is not NAMESPACE/NAME")
    return namespace, name


def load_job(cluster: Cluster, ref: str) -> tuple[AnalysisJob, AnalysisApp]:
    """The AnalysisJob ``NAMESPACE/NAME`` and the AnalysisApp it names."""
    namespace, name = split_job_ref(ref)
    try:
        body = cluster.get_analysis_job(namespace, name)
        if body is None:
            raise ClusterStageError(f"AnalysisJob {ref} does not exist")
        job = AnalysisJob.model_validate(body)
        app_body = cluster.get_analysis_app(job.spec.app)
        if app_body is None:
            raise ClusterStageError(f"AnalysisApp {job.spec.app!r} does not exist")
        return job, AnalysisApp.model_validate(app_body)
    except ClusterError as err:
        raise ClusterStageError(f"cannot read {ref} from the API server: {err}") from err
    except ValidationError as err:
        raise ClusterStageError(f"{ref} or its app is not a valid resource: {err}") from err


def point_models_at_services(
    cluster: Cluster, job: AnalysisJob, app: AnalysisApp, settings: Settings
) -> dict[str, str]:
    """Set ``settings.models.endpoints`` from the app's InferenceServices.

    Each endpoint is registered under the InferenceService name and the model's role.
    Returns {InferenceService: version}. A service without a URL is skipped (the infer
    stage then reports what it misses); an endpoint configured by hand wins.
    """
    versions: dict[str, str] = {}
    for ref in app.spec.models:
        model = resolve_model(cluster, job.metadata.namespace or "default", ref.inference_service)
        if model is None or model.url is None:
            log.warning("InferenceService %s has no URL yet", ref.inference_service)
            continue
        endpoint = ModelEndpointConfig(url=model.url)
        for key in (ref.inference_service, ref.role):
            settings.models.endpoints.setdefault(key, endpoint)
        if model.version:
            versions[ref.inference_service] = model.version
    return versions


def run_cluster_stage(
    settings: Settings, ref: str, stage: str, cluster: Cluster | None = None
) -> StageRun:
    """Run one stage of the AnalysisJob ``NAMESPACE/NAME``, as its Job pod does."""
    cluster = cluster or KubernetesCluster(pool_size=2)
    job, app = load_job(cluster, ref)
    attempt = int(os.environ.get(ATTEMPT_ENV, "0") or 0)
    if attempt < 1:
        try:
            attempt = max(1, job.status.stage(stage).attempts)
        except KeyError:
            attempt = 1
    # The infer stage is the one that calls the models; resolving for every stage of an
    # app with models costs one GET per model and keeps stage code cluster-agnostic.
    if app.spec.models:
        try:
            point_models_at_services(cluster, job, app, settings)
        except ClusterError as err:
            log.warning("cannot read InferenceServices: %s", err)
    store = open_store(settings.store)
    return execute_stage(job, app.spec, stage, store, settings, attempt=attempt)
