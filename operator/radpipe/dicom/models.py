"""What a PACS answers to queries, independent of the transport (DIMSE or DICOMweb)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pydicom.dataset import Dataset

#: Modalities of objects that are not acquisitions: segmentations, reports, documents,
#: presentation states, key-object notes, registrations, RT structures. They are never a
#: job's input (radpipe's own earlier results are among them).
NON_IMAGE_MODALITIES = frozenset({"SEG", "SR", "DOC", "PR", "KO", "REG", "RTSTRUCT", "RWV"})


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def _int(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _values(ds: Dataset, keyword: str) -> tuple[str, ...]:
    value = ds.get(keyword)
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        return tuple(v for v in value.split("\\") if v)
    return tuple(str(v) for v in value if str(v))


@dataclass(frozen=True)
class StudyMatch:
    """One study found by a study-level query.

    ``patient_id``/``patient_name`` are kept for people confirming a match on screen
    (``radpipe pacs find``); radpipe never logs them.
    """

    study_instance_uid: str
    accession_number: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    modalities: tuple[str, ...] = ()
    num_series: int | None = None
    num_instances: int | None = None
    patient_id: str = ""
    patient_name: str = ""

    @classmethod
    def from_dataset(cls, ds: Dataset) -> StudyMatch:
        """Build from a C-FIND response identifier or a QIDO-RS JSON dataset."""
        return cls(
            study_instance_uid=_text(ds, "StudyInstanceUID"),
            accession_number=_text(ds, "AccessionNumber"),
            study_date=_text(ds, "StudyDate"),
            study_time=_text(ds, "StudyTime"),
            study_description=_text(ds, "StudyDescription"),
            modalities=_values(ds, "ModalitiesInStudy"),
            num_series=_int(ds, "NumberOfStudyRelatedSeries"),
            num_instances=_int(ds, "NumberOfStudyRelatedInstances"),
            patient_id=_text(ds, "PatientID"),
            patient_name=_text(ds, "PatientName"),
        )

    def summary(self) -> str:
        """One line naming the study without patient data (for messages and logs)."""
        mods = "/".join(self.modalities) or "?"
        count = "?" if self.num_instances is None else str(self.num_instances)
        desc = f" {self.study_description!r}" if self.study_description else ""
        date = self.study_date or "no date"
        return f"{self.study_instance_uid} ({mods}, {date}{desc}, {count} instances)"

    def as_dict(self, *, with_patient: bool = False) -> dict[str, Any]:
        """JSON form; patient fields only when asked for."""
        data = asdict(self)
        data["modalities"] = list(self.modalities)
        if not with_patient:
            data.pop("patient_id")
            data.pop("patient_name")
        return data


@dataclass(frozen=True)
class SeriesMatch:
    """One series found by a series-level query."""

    series_instance_uid: str
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    num_instances: int | None = None

    @classmethod
    def from_dataset(cls, ds: Dataset) -> SeriesMatch:
        """Build from a C-FIND response identifier or a QIDO-RS JSON dataset."""
        return cls(
            series_instance_uid=_text(ds, "SeriesInstanceUID"),
            modality=_text(ds, "Modality"),
            series_number=_int(ds, "SeriesNumber"),
            series_description=_text(ds, "SeriesDescription"),
            num_instances=_int(ds, "NumberOfSeriesRelatedInstances"),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


@dataclass
class RetrieveCounts:
    """What one retrieve request reported (C-GET/C-MOVE final response, or WADO-RS parts).

    ``status`` is the final DIMSE status (0 = success, 0xB000 = some sub-operations failed);
    ``comment`` the PACS's ErrorComment, when it gave one.
    """

    completed: int = 0
    failed: int = 0
    warning: int = 0
    status: int = 0
    comment: str = ""
    failed_sop_uids: list[str] = field(default_factory=list)


@dataclass
class StoreReport:
    """Outcome of sending instances to a node (C-STORE or STOW-RS)."""

    sent: int = 0
    bytes_sent: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(file or SOP Instance UID, reason) for each instance the node did not take."""
