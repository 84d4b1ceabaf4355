"""Encapsulated PDF and secondary-capture overlay objects (highdicom's SOPClass base)."""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import EncapsulatedPDFStorage, ExplicitVRLittleEndian

from radpipe.dicom.writers.common import MANUFACTURER, OutputInfo, fix_timestamps

#: LOINC 18748-4 "Diagnostic imaging study", the document title code.
DOCUMENT_CODE = ("18748-4", "LN", "Diagnostic imaging study")


def _patient_study(reference: Dataset) -> dict[str, object]:
    """The patient and study attributes copied from the source (same study, new series)."""
    return {
        "study_instance_uid": str(reference.StudyInstanceUID),
        "patient_id": reference.get("PatientID", None),
        "patient_name": reference.get("PatientName", None),
        "patient_birth_date": reference.get("PatientBirthDate", None),
        "patient_sex": reference.get("PatientSex", None) or None,
        "accession_number": reference.get("AccessionNumber", None),
        "study_id": reference.get("StudyID", None),
        "study_date": reference.get("StudyDate", None),
        "study_time": reference.get("StudyTime", None),
        "referring_physician_name": reference.get("ReferringPhysicianName", None),
    }


def make_encapsulated_pdf(
    info: OutputInfo, reference: Dataset, pdf: bytes, *, title: str, source: Sequence[Dataset]
) -> Dataset:
    """An Encapsulated PDF Storage instance of the report in the source study."""
    ds = hd.SOPClass(
        series_instance_uid=info.series_uid("pdf"),
        series_number=info.series_number("pdf"),
        sop_instance_uid=info.instance_uid("pdf"),
        sop_class_uid=EncapsulatedPDFStorage,
        instance_number=1,
        modality="DOC",
        manufacturer=MANUFACTURER,
        transfer_syntax_uid=ExplicitVRLittleEndian,
        series_description=info.series_description("pdf"),
        manufacturer_model_name=info.model_name[:64],
        software_versions=info.software_version,
        institution_name=info.institution[:64] or None,
        institutional_department_name=info.department[:64] or None,
        **_patient_study(reference),  # type: ignore[arg-type]
    )
    # SC Equipment module: made by a workstation, not acquired
    ds.ConversionType = "WSD"
    # Encapsulated Document module
    now = info.content_datetime
    ds.add_new("ContentDate", "DA", now.strftime("%Y%m%d") if now else "")
    ds.add_new("ContentTime", "TM", now.strftime("%H%M%S") if now else "")
    ds.add_new("AcquisitionDateTime", "DT", now.strftime("%Y%m%d%H%M%S") if now else "")
    ds.BurnedInAnnotation = "YES"  # the report shows the patient's name and MRN
    ds.DocumentTitle = title[:64]
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = DOCUMENT_CODE
    ds.ConceptNameCodeSequence = DicomSequence([code])
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    refs = []
    for src in source[:1]:
        item = Dataset()
        item.ReferencedSOPClassUID = src.SOPClassUID
        item.ReferencedSOPInstanceUID = src.SOPInstanceUID
        refs.append(item)
    if refs:
        ds.SourceInstanceSequence = DicomSequence(refs)
    # OB values must have even length; the recorded length keeps the PDF exact
    ds.EncapsulatedDocument = pdf + (b"\x00" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)
    fix_timestamps(ds, now)
    return ds


def make_overlay_images(
    info: OutputInfo,
    reference: Dataset,
    images: Sequence[tuple[NDArray[np.uint8], tuple[str, str]]],
) -> list[Dataset]:
    """Secondary-capture RGB images (the report's overlay figures, each with its
    PatientOrientation) for viewers that cannot show SEG."""
    out: list[Dataset] = []
    for number, (rgb, orientation) in enumerate(images, start=1):
        sc = hd.sc.SCImage(
            pixel_array=np.ascontiguousarray(rgb, dtype=np.uint8),
            photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
            bits_allocated=8,
            coordinate_system=hd.CoordinateSystemNames.PATIENT,
            series_instance_uid=info.series_uid("overlay"),
            series_number=info.series_number("overlay"),
            sop_instance_uid=info.instance_uid("overlay", number),
            instance_number=number,
            manufacturer=MANUFACTURER,
            patient_orientation=orientation,
            series_description=info.series_description("overlay"),
            **_patient_study(reference),  # type: ignore[arg-type]
        )
        sc.BurnedInAnnotation = "NO"
        # General Series Laterality is required unless the body part is unpaired (the head)
        sc.BodyPartExamined = reference.get("BodyPartExamined", "HEAD") or "HEAD"
        sc.ConversionType = "WSD"
        fix_timestamps(sc, info.content_datetime)
        out.append(sc)
    return out
