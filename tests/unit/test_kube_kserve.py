"""Model URLs and versions from KServe InferenceServices; the stage runner's use of them."""

from __future__ import annotations

from typing import Any

from radpipe.api.models import AnalysisApp, AnalysisJob
from radpipe.config import Settings
from radpipe.kube.kserve import endpoint_of, model_version, split_ref
from radpipe.kube.stagerun import point_models_at_services, split_job_ref


def isvc(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "glioma-unet", "generation": 4, "annotations": {}},
        "spec": {"predictor": {"model": {"storageUri": "pvc://models/glioma-unet/3"}}},
        "status": status,
    }


def test_the_cluster_address_wins_over_the_external_url() -> None:
    body = isvc(
        url="http://glioma.example.org",
        address={"url": "http://glioma-unet.rad.svc.cluster.local"},
        conditions=[{"type": "Ready", "status": "True"}],
    )
    endpoint = endpoint_of(body)
    assert endpoint.url == "http://glioma-unet.rad.svc.cluster.local" and endpoint.ready
    assert endpoint_of(isvc(url="http://x")).url == "http://x"
    assert endpoint_of(isvc()).url is None


def test_model_version_prefers_the_annotation_then_revision_then_storage() -> None:
    body = isvc(components={"predictor": {"latestReadyRevision": "glioma-unet-predictor-00003"}})
    assert model_version(body) == "glioma-unet-predictor-00003"
    body["metadata"]["annotations"]["radpipe.io/model-version"] = "2030.1"
    assert model_version(body) == "2030.1"
    assert model_version(isvc()) == "pvc://models/glioma-unet/3"
    assert split_ref("other/glioma-unet", "rad") == ("other", "glioma-unet")
    assert split_ref("glioma-unet", "rad") == ("rad", "glioma-unet")


class Fake:
    def get_inference_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        assert namespace == "rad"
        return isvc(url="http://127.0.0.1:9999") if name == "glioma-unet" else None


def test_the_stage_runner_points_the_models_at_their_services(settings: Settings) -> None:
    from radpipe.api.apps import get_app

    app: AnalysisApp = get_app("glioma")
    job = AnalysisJob.model_validate(
        {
            "metadata": {"name": "j", "namespace": "rad", "uid": "u"},
            "spec": {"accession": "A1", "app": "glioma"},
        }
    )
    versions = point_models_at_services(Fake(), job, app, settings)  # type: ignore[arg-type]
    assert settings.models.endpoints["glioma-unet"].url == "http://127.0.0.1:9999"
    assert settings.models.endpoints["segmenter"].url == "http://127.0.0.1:9999"
    assert versions == {"glioma-unet": "pvc://models/glioma-unet/3"}
    assert split_job_ref("rad/j") == ("rad", "j")
