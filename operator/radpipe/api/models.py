"""Pydantic models of the AnalysisJob and AnalysisApp resources (spec and status).

These are the one source of truth: the CRDs in crds/ are generated from them, the local
runner stores jobs in this shape, and the web API returns it. Field names on the wire are
camelCase, as Kubernetes resources are; Python code uses snake_case.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

API_GROUP = "radpipe.io"
API_VERSION = "v1alpha1"

#: What an accession number may look like (DICOM SH: at most 16 characters).
ACCESSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,15}$"

#: Stage names become part of Kubernetes Job names and labels: a short DNS label.
STAGE_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,28}[a-z0-9])?$"
#: AnalysisApp names (and so spec.app): a DNS-1123 label, as Kubernetes object names are.
APP_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"

STAGE_NAMES = ("fetch", "classify", "preprocess", "infer", "postprocess", "report", "deliver")


def cel(rule: str, message: str, **extra: str) -> dict[str, Any]:
    """A CEL validation rule for the generated CRD (``x-kubernetes-validations``)."""
    return {"rule": rule, "message": message, **extra}


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class Resource(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def wire(self) -> dict[str, Any]:
        """The JSON form as stored and sent (camelCase, no unset optional noise)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# -- AnalysisApp ---------------------------------------------------------------------------


class SeriesRequirements(Resource):
    """Which series roles an app needs, read by the classify stage."""

    required: list[str] = Field(default_factory=list)
    optional: list[str] = Field(default_factory=list)
    min_probability: float = Field(0.8, ge=0, le=1)
    prefer: list[str] = Field(default_factory=list, description="tie-breaks, in order")


class ModelRef(Resource):
    """A model the app uses, by its InferenceService name."""

    role: str = Field(max_length=63)
    inference_service: str = Field(
        max_length=63, description="name of the KServe InferenceService that serves the model"
    )
    version: str = Field("latest", description="'latest' floats; any other value pins")


_QUANTITY: dict[str, Any] = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "x-kubernetes-int-or-string": True,
}
#: The schema of a container's resources (only requests/limits), for the CRD.
_RESOURCES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "requests": {"type": "object", "additionalProperties": _QUANTITY},
        "limits": {"type": "object", "additionalProperties": _QUANTITY},
    },
}


class StageSpec(Resource):
    """One step of an app's pipeline and its settings."""

    name: str = Field(
        max_length=30, pattern=STAGE_NAME_PATTERN, description="a registered stage (DNS label)"
    )
    settings: dict[str, Any] = Field(default_factory=dict)
    resources: Annotated[dict[str, Any], WithJsonSchema(_RESOURCES_SCHEMA)] = Field(
        default_factory=dict,
        description="Kubernetes resources (requests/limits) of the stage's Job pod",
    )
    max_attempts: int | None = Field(None, ge=1, description="overrides the runner default")
    timeout_seconds: int = Field(1800, ge=1)


class AppSpec(Resource):
    """What an analysis app is: its series needs, models, options and stages."""

    title: str
    description: str = ""
    modality: Literal["MR", "CT"]
    series: SeriesRequirements = Field(default_factory=SeriesRequirements)
    preprocess: dict[str, Any] = Field(default_factory=dict)
    models: list[ModelRef] = Field(
        default_factory=list,
        max_length=16,
        # A list keyed by role: the API server itself refuses two models with one role.
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["role"]},
    )
    options: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON schema of the job options; the web form is rendered from it",
    )
    stages: list[StageSpec] = Field(
        min_length=1,
        max_length=24,
        description="the pipeline, in order; stage names are unique",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    report: dict[str, Any] = Field(default_factory=dict)
    review_required: bool = Field(False, description="hold delivery until a radiologist accepts")

    def stage(self, name: str) -> StageSpec:
        """The spec of one stage; KeyError names the stages the app has."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"app has no stage {name!r}; its stages: {[s.name for s in self.stages]}")


class ObjectMeta(Resource):
    """The part of Kubernetes object metadata radpipe reads."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)
    name: str
    namespace: str | None = None
    uid: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class AnalysisApp(Resource):
    """The AnalysisApp resource (cluster-scoped)."""

    api_version: str = f"{API_GROUP}/{API_VERSION}"
    kind: Literal["AnalysisApp"] = "AnalysisApp"
    metadata: ObjectMeta
    spec: AppSpec


# -- AnalysisJob ---------------------------------------------------------------------------


class Priority(StrEnum):
    """Scheduling order: stat before urgent before routine."""

    STAT = "stat"
    URGENT = "urgent"
    ROUTINE = "routine"


class Phase(StrEnum):
    """The phase of a whole job."""

    PENDING = "Pending"
    RUNNING = "Running"
    AWAITING_REVIEW = "AwaitingReview"
    DELIVERY_PENDING = "DeliveryPending"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def is_final(self) -> bool:
        """Whether nothing more will happen to the job by itself."""
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED)


class StageState(StrEnum):
    """The state of one stage of a job."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"


class SourceSpec(Resource):
    """Where the study comes from."""

    pacs: str | None = Field(None, description="a configured PACS node name")
    store_prefix: str | None = Field(
        None,
        max_length=256,
        pattern=r"^[A-Za-z0-9._/-]+/$",
        description="a study pushed to radpipe's receiver, spooled in the artifact store under "
        "this prefix (intake/<StudyInstanceUID>/): fetch copies it from there, no PACS query",
    )


class DeliverySpec(Resource):
    """Where results go and which outputs are made."""

    pacs: list[str] = Field(default_factory=list)
    email: list[str] = Field(default_factory=list)
    report: bool = True
    seg: bool = True
    sr: bool = True


class ReviewSpec(Resource):
    """Whether results wait for a radiologist before anything is delivered."""

    required: bool = Field(
        False, description="hold delivery (AwaitingReview) until a radiologist accepts"
    )


#: Every spec field but ``cancel`` is fixed once the job exists (checked by the CRD).
IMMUTABLE_SPEC_FIELDS = (
    "accession",
    "app",
    "options",
    "priority",
    "source",
    "delivery",
    "studyInstanceUID",
    "review",
)


def _unchanged(field: str) -> str:
    return (
        f"has(self.{field}) == has(oldSelf.{field}) && "
        f"(!has(self.{field}) || self.{field} == oldSelf.{field})"
    )


class JobSpec(Resource):
    """What a person asked for."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    " && ".join(_unchanged(f) for f in IMMUTABLE_SPEC_FIELDS),
                    "spec is immutable after creation (only spec.cancel may change): "
                    "create a new AnalysisJob instead",
                    reason="FieldValueForbidden",
                ),
                cel(
                    "!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)",
                    "a cancelled AnalysisJob cannot be resumed: create a new one",
                    reason="FieldValueForbidden",
                ),
            ]
        }
    )

    accession: str = Field(
        min_length=1,
        max_length=16,
        pattern=ACCESSION_PATTERN,
        description="accession number of the study: 1-16 letters, digits, '.', '_' or '-'",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"self.matches('{ACCESSION_PATTERN}')",
                    "accession must be 1-16 characters: letters, digits, '.', '_' or '-', "
                    "starting with a letter or digit (a DICOM SH value)",
                )
            ]
        },
    )
    app: str = Field(
        min_length=1,
        max_length=63,
        description="name of the AnalysisApp to run (kubectl get analysisapps)",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"self.matches('{APP_NAME_PATTERN}')",
                    "app must be an AnalysisApp name: lowercase letters, digits and '-'",
                )
            ]
        },
    )
    options: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = Priority.ROUTINE
    source: SourceSpec = Field(default_factory=SourceSpec)
    delivery: DeliverySpec = Field(default_factory=DeliverySpec)
    study_instance_uid: str | None = Field(None, alias="studyInstanceUID", max_length=64)
    review: ReviewSpec = Field(
        default_factory=ReviewSpec,
        description="review gate; the app's reviewRequired also holds delivery",
    )
    cancel: bool = Field(False, description="set true to cancel the job")


class StageStatus(Resource):
    """Observed state of one stage."""

    name: str
    state: StageState = StageState.PENDING
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    message: str | None = None
    progress: float | None = Field(None, ge=0, le=1)
    pod_job: str | None = Field(None, description="the Kubernetes Job running this attempt")
    last_log: str | None = Field(
        None, description="the last lines the failed attempt printed (its pod's log tail)"
    )


class Condition(Resource):
    """A Kubernetes-style condition with a reason a person can act on."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: datetime = Field(default_factory=utcnow)


class JobStatus(Resource):
    """Observed state of a whole job."""

    phase: Phase = Phase.PENDING
    active_stage: str | None = Field(None, description="the stage running or next to run")
    stages: list[StageStatus] = Field(default_factory=list)
    message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    selected_series: list[dict[str, Any]] = Field(default_factory=list)
    results: dict[str, Any] = Field(default_factory=dict)
    model_versions: dict[str, str] = Field(default_factory=dict)
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = Field(
        None, description="metadata.generation of the spec this status reflects"
    )

    def stage(self, name: str) -> StageStatus:
        """The status entry of one stage."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"job has no stage {name!r}")

    @property
    def current_stage(self) -> str | None:
        """The running stage, else the first one not finished, else None."""
        for stage in self.stages:
            if stage.state is StageState.RUNNING:
                return stage.name
        for stage in self.stages:
            if stage.state in (StageState.PENDING, StageState.FAILED):
                return stage.name
        return None


class AnalysisJob(Resource):
    """The AnalysisJob resource (namespaced); the local runner keeps the same shape."""

    api_version: str = f"{API_GROUP}/{API_VERSION}"
    kind: Literal["AnalysisJob"] = "AnalysisJob"
    metadata: ObjectMeta
    spec: JobSpec
    status: JobStatus = Field(default_factory=JobStatus)

    @property
    def uid(self) -> str:
        """The job's artifact-store id (metadata.uid, else the name)."""
        return self.metadata.uid or self.metadata.name
