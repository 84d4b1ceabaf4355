"""The batch/v1 Job that runs one attempt of one stage of an AnalysisJob (pure)."""

from __future__ import annotations

from typing import Any

from radpipe.api.models import API_GROUP, API_VERSION, AnalysisJob, AppSpec
from radpipe.kube import names
from radpipe.kube.settings import OperatorSettings

CONTAINER = "stage"
#: Environment variable that tells the stage runner which attempt it is.
ATTEMPT_ENV = "RADPIPE_STAGE_ATTEMPT"


def owner_reference(job: AnalysisJob) -> dict[str, Any]:
    """ownerReference to the AnalysisJob: deleting it garbage-collects its stage Jobs."""
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "AnalysisJob",
        "name": job.metadata.name,
        "uid": job.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def stage_command(job: AnalysisJob, stage: str) -> list[str]:
    """What the stage pod runs."""
    return [
        "radpipe",
        "stage",
        "run",
        "--job",
        f"{job.metadata.namespace}/{job.metadata.name}",
        "--stage",
        stage,
    ]


def stage_resources(app: AppSpec, stage: str) -> dict[str, Any]:
    """requests/limits of a stage pod, as the AnalysisApp says (a GPU for infer, say).

    Extended resources such as ``nvidia.com/gpu`` must be requested as limits; Kubernetes
    copies them to requests.
    """
    resources = app.stage(stage).resources
    # Quantities go out as strings ("1", "500m", "4Gi"), as the API server returns them.
    return {
        key: {name: str(quantity) for name, quantity in value.items()}
        for key, value in resources.items()
        if key in ("requests", "limits")
    }


def build_stage_job(
    job: AnalysisJob, app: AppSpec, stage: str, attempt: int, settings: OperatorSettings
) -> dict[str, Any]:
    """The Job manifest of attempt ``attempt`` of ``stage`` (deterministic name)."""
    if not job.metadata.uid or not job.metadata.namespace:
        raise ValueError("the AnalysisJob has no uid/namespace: it must come from the API server")
    spec = app.stage(stage)
    name = names.stage_job_name(job.metadata.name, job.metadata.uid, stage, attempt)
    labels = names.stage_labels(job.metadata.name, job.metadata.uid, stage, attempt)
    labels[names.LABEL_PRIORITY] = job.spec.priority.value
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.stage_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": stage_command(job, stage),
        "env": [
            {"name": ATTEMPT_ENV, "value": str(attempt)},
            {"name": "RADPIPE_LOG_LEVEL", "value": "INFO"},
        ],
        "resources": stage_resources(app, stage),
        # The kubelet puts the log tail here when the container fails; the operator
        # reads it into status and the failure Event (the pod may be gone by then).
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if settings.stage_env_secret:
        container["envFrom"] = [{"secretRef": {"name": settings.stage_env_secret}}]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": job.metadata.namespace,
            "labels": labels,
            "annotations": {f"{API_GROUP}/analysisjob": job.metadata.name},
            "ownerReferences": [owner_reference(job)],
        },
        "spec": {
            # Retries belong to the operator's state machine (shared with the local
            # runner, with its backoff and attempt count), so the Job itself never retries.
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.timeout_seconds,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": settings.stage_service_account,
                    "automountServiceAccountToken": True,
                    "enableServiceLinks": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                    "containers": [container],
                },
            },
        },
    }
