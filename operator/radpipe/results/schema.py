"""The results document: one JSON document per job, with a versioned schema.

The postprocess stage writes it (``findings.json``), the report stage and the DICOM writers
read it, and the warehouse stores it whole. ``schemaVersion`` follows semantic versioning:
a minor bump adds optional fields, a major bump changes meaning. ``radpipe`` readers accept
every document whose major version they know.

Field names on the wire are camelCase (as the job status is); volumes are in cm³, lengths in
mm, probabilities in 0..1.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

#: The version written by this code.
SCHEMA_VERSION = "1.0"
#: Major versions this code can read.
READABLE_MAJOR = (1,)


class _Doc(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def wire(self) -> dict[str, Any]:
        """The JSON form (camelCase, no ``None`` noise)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Measurement(_Doc):
    """One named quantity of the study (a compartment volume, a probability...)."""

    name: str = Field(description="stable key, e.g. 'ET', 'WT', 'lesionCount'")
    label: str = Field(description="what a reader sees, e.g. 'Enhancing tumour'")
    value: float
    unit: Literal["cm3", "mm", "%", "1", "count"]
    percent_of_brain: float | None = None


class Lesion(_Doc):
    """One connected lesion (metastasis) or one hemorrhage subtype collection."""

    id: int = Field(ge=1, description="1..N, largest first; also the tracking number")
    tracking_uid: str = Field(description="DICOM UID tracking this finding across SEG and SR")
    label: str
    volume_cm3: float
    longest_diameter_mm: float
    centre_patient_mm: list[float] = Field(description="LPS centroid in the patient's space")
    centre_mni_mm: list[float] = Field(description="RAS centroid in MNI152 space")
    hemisphere: Literal["left", "right", "midline"]
    location: str = Field(description="coarse lobe/region from MNI coordinates (approximate)")
    slice_index: int = Field(description="native slice (0-based) through the centroid")


class SliceFinding(_Doc):
    """A key CT slice: where the model saw hemorrhage most clearly."""

    index: int
    instance_number: int | None = None
    sop_instance_uid: str | None = None
    probabilities: dict[str, float]


class Finding(_Doc):
    """One statement about the study that the report lists and the SR encodes."""

    code: str = Field(description="stable key, e.g. 'glioma', 'metastasis', 'subdural'")
    text: str = Field(description="one sentence a reader understands")
    present: bool
    probability: float | None = None


class Change(_Doc):
    """Change of one measurement against the most recent prior result."""

    name: str
    current: float
    prior: float
    absolute: float
    percent: float | None = Field(None, description="None when the prior value is 0")
    unit: str


class PriorComparison(_Doc):
    """The comparison against earlier results of the same patient and app."""

    prior_job: str
    prior_study_date: str | None = None
    prior_accession: str | None = None
    changes: list[Change] = Field(default_factory=list)
    #: Every earlier value of the main measurement, oldest first, for the trend plot.
    trend: list[dict[str, Any]] = Field(default_factory=list)


class QualityControl(_Doc):
    """Checks whose failure sends a case to the retraining set."""

    passed: bool
    confidence: float | None = Field(None, description="model confidence 0..1, where known")
    flags: list[str] = Field(default_factory=list)


class SeriesUsed(_Doc):
    """A series the analysis used (for methods and provenance)."""

    role: str
    series_instance_uid: str
    description: str = ""
    modality: str = ""


class StudyRef(_Doc):
    """The study analysed. Carries PHI by design: reports and DICOM outputs need it."""

    study_instance_uid: str
    accession: str
    patient_id: str = ""
    patient_name: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    referring_physician: str = ""
    institution: str = ""


class ResultsDocument(_Doc):
    """Everything postprocess found: the one results document of a job."""

    schema_version: str = SCHEMA_VERSION
    job: str
    app: str
    app_title: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    study: StudyRef
    series: list[SeriesUsed] = Field(default_factory=list)
    measurements: list[Measurement] = Field(default_factory=list)
    lesions: list[Lesion] = Field(default_factory=list)
    key_slices: list[SliceFinding] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    brain_volume_cm3: float | None = None
    qc: QualityControl = Field(default_factory=lambda: QualityControl(passed=True))
    prior: PriorComparison | None = None
    model_versions: dict[str, str] = Field(default_factory=dict)
    preprocessing: dict[str, Any] = Field(default_factory=dict)
    created_at: str = ""

    def measurement(self, name: str) -> Measurement | None:
        """The measurement called ``name``, if there is one."""
        return next((m for m in self.measurements if m.name == name), None)

    def volumes(self) -> dict[str, float]:
        """Volume measurements as ``{name: cm³}``."""
        return {m.name: m.value for m in self.measurements if m.unit == "cm3"}

    def summary(self) -> dict[str, Any]:
        """The short form lifted into the job status (``status.results``)."""
        return {
            "schemaVersion": self.schema_version,
            "volumesCm3": {k: round(v, 2) for k, v in self.volumes().items()},
            "findings": [f.text for f in self.findings],
            "lesionCount": len(self.lesions) if self.app == "metastasis" else None,
            "qcPassed": self.qc.passed,
        }


class SchemaVersionError(ValueError):
    """A results document of a schema major version this code cannot read."""


def load_document(data: dict[str, Any]) -> ResultsDocument:
    """Parse a results document, refusing major versions this code does not know."""
    version = str(data.get("schemaVersion", "0"))
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
    if major not in READABLE_MAJOR:
        raise SchemaVersionError(
            f"results schema version {version} is not readable by this radpipe "
            f"(reads {', '.join(f'{m}.x' for m in READABLE_MAJOR)}); upgrade radpipe"
        )
    return ResultsDocument.model_validate(data)


def json_schema() -> dict[str, Any]:
    """The JSON schema of the results document (for consumers outside radpipe)."""
    schema = ResultsDocument.model_json_schema(by_alias=True)
    schema["$id"] = f"https://radpipe.io/schemas/results/{SCHEMA_VERSION}"
    return schema
