"""Ground truth of a synthetic study, saved as ``truth/truth.json`` next to the label maps."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

STUDY_KINDS: tuple[str, ...] = (
    "mr-glioma",
    "mr-metastasis",
    "ct-hemorrhage",
    "mr-normal",
    "ct-normal",
)


class SeriesTruth(BaseModel):
    """One written series and what it really is."""

    series_instance_uid: str
    series_number: int
    description: str
    protocol_name: str = ""
    series_class: str
    family: str = ""
    plane: str = ""
    n_instances: int
    path: str  # folder of the .dcm files, relative to the study's output directory
    labels_path: str | None = None  # label NIfTI in this series' acquisition space, if written
    slice_labels: list[list[str]] | None = None  # CT: hemorrhage subtypes per instance


class LesionTruth(BaseModel):
    """One lesion (glioma, metastasis) or one hemorrhage subtype collection."""

    label: str
    subtype: str | None = None
    index: int = 0  # metastases: value in instances_*.nii.gz
    volume_cm3: float
    diameter_mm: float  # metastases: equivalent-sphere diameter of the core in patient mm
    centre: list[float]  # MNI mm (RAS)
    centre_patient: list[float]  # DICOM patient mm (LPS)


class TransformTruth(BaseModel):
    """The pose applied: patient (LPS mm) = matrix · MNI (RAS mm, homogeneous)."""

    matrix: list[list[float]]
    angles_deg: list[float]  # rotation about x, y, z (applied x, then y, then z)
    scale: float
    translation_mm: list[float]


class StudyTruth(BaseModel):
    """Everything a test, a training script or the demo needs to score radpipe on a study."""

    study_instance_uid: str
    accession: str
    patient_id: str
    patient_name: str
    kind: str
    vendor: str
    seed: int
    modality: str
    manufacturer: str
    model: str
    field_strength: float | None = None
    series: list[SeriesTruth] = Field(default_factory=list)
    lesions: list[LesionTruth] = Field(default_factory=list)
    lesion_count: int = 0
    volumes_cm3: dict[str, float] = Field(default_factory=dict)
    brain_cm3: float = 0.0
    hemorrhage_subtypes: list[str] = Field(default_factory=list)
    label_codes: dict[str, int] = Field(default_factory=dict)
    labels_mni: str = "truth/labels_mni.nii.gz"
    instances_mni: str | None = None
    transform: TransformTruth
    generator: str = ""

    def save(self, path: Path) -> None:
        """Write as pretty JSON."""
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> StudyTruth:
        """Read a truth.json (or the study directory that holds truth/truth.json)."""
        if path.is_dir():
            path = path / "truth" / "truth.json"
        return cls.model_validate_json(path.read_text(encoding="utf-8"))

    def series_by_class(self, series_class: str) -> list[SeriesTruth]:
        """Series of one class, in acquisition order."""
        return [s for s in self.series if s.series_class == series_class]
