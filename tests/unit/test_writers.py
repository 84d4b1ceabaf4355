"""SEG, SR, Encapsulated PDF and overlay objects: valid (dciodvfy), readable, deterministic."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from radpipe.dicom.writers.common import OutputInfo
from radpipe.dicom.writers.documents import make_encapsulated_pdf, make_overlay_images
from radpipe.dicom.writers.seg import SegmentSpec, make_segmentation
from radpipe.dicom.writers.sr import make_report
from radpipe.results import findings as F
from radpipe.results.schema import ResultsDocument, StudyRef
from radpipe.results.synthetic import SyntheticCase, cached_study, load_case
from radpipe.results.uids import derived_uid

INFO = OutputInfo(
    "rp-writers",
    "glioma",
    "glioma-unet",
    "1.2.0",
    "Test Hospital",
    "Radiology",
    datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
)


@pytest.fixture(scope="module")
def case() -> SyntheticCase:
    return load_case(cached_study("mr-glioma", 1), with_brain=False)


def segments() -> list[SegmentSpec]:
    return [
        SegmentSpec(n, kind, label, derived_uid("rp-writers", kind), label)
        for n, kind, label in (
            (1, "ET", "Enhancing tumour"),
            (2, "NCR", "Necrosis"),
            (3, "ED", "Edema"),
        )
    ]


def native_segments(case: SyntheticCase) -> np.ndarray:
    native = case.mapping.to_native(case.labels_grid)
    out = np.zeros(native.shape, dtype=np.uint16)
    for number, code in ((1, 4), (2, 1), (3, 2)):
        out[native == code] = number
    return out


def document(case: SyntheticCase) -> ResultsDocument:
    measurements, _ = F.glioma_measurements(case.labels_grid, case.mapping, None)
    return ResultsDocument(
        job="rp-writers",
        app="glioma",
        study=StudyRef(
            study_instance_uid=case.truth.study_instance_uid, accession=case.truth.accession
        ),
        measurements=measurements,
        findings=F.glioma_findings(measurements),
    )


def dciodvfy_errors(ds: pydicom.Dataset, path: Path) -> list[str]:
    ds.save_as(path, enforce_file_format=True)
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


def test_seg_sr_pdf_valid_and_round_trip(case: SyntheticCase, tmp_path: Path) -> None:
    labels = native_segments(case)
    seg = make_segmentation(INFO, case.datasets, labels, segments())
    assert seg is not None
    sr = make_report(INFO, document(case), case.datasets, seg, segments())
    pdf = make_encapsulated_pdf(
        INFO, case.datasets[0], b"%PDF-1.4\n%%EOF\n", title="t", source=case.datasets
    )
    overlay = make_overlay_images(
        INFO, case.datasets[0], [(np.zeros((8, 8, 3), np.uint8), ("L", "P"))]
    )
    for name, ds in (("seg", seg), ("sr", sr), ("pdf", pdf), ("sc", overlay[0])):
        assert dciodvfy_errors(ds, tmp_path / f"{name}.dcm") == [], name
        # same patient and study, a new series of radpipe's own
        assert ds.StudyInstanceUID == case.truth.study_instance_uid
        assert ds.PatientID == case.truth.patient_id
        assert ds.SeriesInstanceUID != case.datasets[0].SeriesInstanceUID
    back = hd.seg.segread(tmp_path / "seg.dcm")
    assert [s.SegmentLabel for s in back.SegmentSequence] == [
        "Enhancing tumour",
        "Necrosis",
        "Edema",
    ]
    assert back.get_segment_numbers(tracking_uid=derived_uid("rp-writers", "ET")) == [1]
    volume = back.get_volume(combine_segments=True)
    assert int(np.count_nonzero(volume.array)) == int(np.count_nonzero(labels))
    algorithm = back.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "glioma-unet" and algorithm.AlgorithmVersion == "1.2.0"
    report = hd.sr.srread(tmp_path / "sr.dcm")
    groups = report.content.get_volumetric_roi_measurement_groups()
    assert {str(g.tracking_uid) for g in groups} == {s.tracking_uid for s in segments()}
    et = next(g for g in groups if g.tracking_uid == derived_uid("rp-writers", "ET"))
    assert et.get_measurements()[0].value == pytest.approx(case.truth.volumes_cm3["ET"], rel=0.05)
    assert et.referenced_segment.referenced_sop_instance_uid == seg.SOPInstanceUID
    assert len(report.content.get_planar_roi_measurement_groups()) == 0
    parsed = pydicom.dcmread(tmp_path / "pdf.dcm")
    assert parsed.EncapsulatedDocument[: parsed.EncapsulatedDocumentLength].startswith(b"%PDF")


def test_objects_are_deterministic(case: SyntheticCase) -> None:
    labels = native_segments(case)
    one = make_segmentation(INFO, case.datasets, labels, segments())
    two = make_segmentation(INFO, case.datasets, labels, segments())
    assert one is not None and two is not None
    assert one.SOPInstanceUID == two.SOPInstanceUID == INFO.instance_uid("seg")
    assert one.SeriesInstanceUID == two.SeriesInstanceUID
    other = OutputInfo("rp-other", "glioma", "m", "1")
    assert other.instance_uid("seg") != INFO.instance_uid("seg")


def test_empty_segmentation_makes_no_seg_but_an_sr(case: SyntheticCase, tmp_path: Path) -> None:
    empty = np.zeros(
        (len(case.datasets), case.datasets[0].Rows, case.datasets[0].Columns), np.uint16
    )
    assert make_segmentation(INFO, case.datasets, empty, segments()) is None
    doc = document(case)
    for m in doc.measurements:
        m.value = 0.0
    sr = make_report(INFO, doc, case.datasets, None, segments())
    assert dciodvfy_errors(sr, tmp_path / "sr.dcm") == []
    groups = hd.sr.srread(tmp_path / "sr.dcm").content.get_volumetric_roi_measurement_groups()
    assert groups == []
