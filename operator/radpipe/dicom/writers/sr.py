"""The Structured Report: a TID 1500 Measurement Report of the results document.

One measurement group per segment or lesion (TID 1411, referencing the SEG segment and the
source series) and one per derived quantity without its own segment (TID 1501: tumour core,
whole tumour, hemorrhage probabilities). Every group carries a tracking identifier (the
same UID as the SEG segment) and the algorithm identification, as IHE AIR asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from radpipe.dicom.writers.common import MANUFACTURER, OutputInfo, fix_timestamps
from radpipe.dicom.writers.seg import BRAIN, SEGMENT_TYPES, SegmentSpec
from radpipe.results.schema import Lesion, ResultsDocument
from radpipe.results.uids import derived_uid

CM3 = hd.sr.CodedConcept("cm3", "UCUM", "cubic centimeter")
MM = hd.sr.CodedConcept("mm", "UCUM", "millimeter")
PERCENT = hd.sr.CodedConcept("%", "UCUM", "percent")
NO_UNITS = hd.sr.CodedConcept("1", "UCUM", "no units")
VOLUME = hd.sr.CodedConcept(codes.SCT.Volume.value, "SCT", "Volume")
LONG_AXIS = hd.sr.CodedConcept(codes.SCT.LongAxis.value, "SCT", "Long axis")
PROBABILITY = hd.sr.CodedConcept(codes.DCM.Probability.value, "DCM", "Probability")
PRESENT = hd.sr.CodedConcept(codes.SCT.Present.value, "SCT", "Present")
ABSENT = hd.sr.CodedConcept(codes.SCT.Absent.value, "SCT", "Absent")
FINDING = hd.sr.CodedConcept("121071", "DCM", "Finding")

#: LOINC procedure codes of the studies radpipe reads.
PROCEDURES = {
    "MR": hd.sr.CodedConcept("24590-2", "LN", "MR Brain"),
    "CT": hd.sr.CodedConcept("24725-4", "LN", "CT Head"),
}

#: Coarse locations (see radpipe.results.atlas) as SNOMED CT anatomy.
REGION_CODES = {
    "frontal lobe": hd.sr.CodedConcept(codes.SCT.FrontalLobe.value, "SCT", "Frontal lobe"),
    "parietal lobe": hd.sr.CodedConcept(codes.SCT.ParietalLobe.value, "SCT", "Parietal lobe"),
    "temporal lobe": hd.sr.CodedConcept(codes.SCT.TemporalLobe.value, "SCT", "Temporal lobe"),
    "occipital lobe": hd.sr.CodedConcept(codes.SCT.OccipitalLobe.value, "SCT", "Occipital lobe"),
    "insula": hd.sr.CodedConcept(codes.SCT.Insula.value, "SCT", "Insula"),
    "cerebellum": hd.sr.CodedConcept(codes.SCT.Cerebellum.value, "SCT", "Cerebellum"),
    "brainstem": hd.sr.CodedConcept(codes.SCT.BrainStem.value, "SCT", "Brain Stem"),
}
LATERALITY = {
    "left": hd.sr.CodedConcept(codes.SCT.Left.value, "SCT", "Left"),
    "right": hd.sr.CodedConcept(codes.SCT.Right.value, "SCT", "Right"),
}


def _algorithm(info: OutputInfo) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(name=info.model_name[:64], version=info.model_version)


def _tracking(uid: str, identifier: str) -> hd.sr.TrackingIdentifier:
    return hd.sr.TrackingIdentifier(uid=uid, identifier=identifier[:64])


def _site(lesion: Lesion) -> hd.sr.FindingSite:
    region = lesion.location.removeprefix(f"{lesion.hemisphere} ")
    code = REGION_CODES.get(region, BRAIN)
    return hd.sr.FindingSite(anatomic_location=code, laterality=LATERALITY.get(lesion.hemisphere))


def _source_images(datasets: Sequence[Dataset]) -> list[hd.sr.SourceImageForMeasurement]:
    return [
        hd.sr.SourceImageForMeasurement(
            referenced_sop_class_uid=str(ds.SOPClassUID),
            referenced_sop_instance_uid=str(ds.SOPInstanceUID),
        )
        for ds in datasets
    ]


class _Groups:
    """Builds the measurement groups of one report."""

    def __init__(
        self,
        info: OutputInfo,
        source: Sequence[Dataset],
        seg: Dataset | None,
        segments: Sequence[SegmentSpec],
    ) -> None:
        self.info = info
        self.source = source
        self.seg = seg
        self.segment_numbers: dict[str, int] = {}
        if seg is not None:
            # the SEG renumbers segments 1..n: map tracking UIDs to what it holds
            for item in seg.SegmentSequence:
                self.segment_numbers[str(item.TrackingUID)] = int(item.SegmentNumber)
        self.segments = {s.tracking_uid: s for s in segments}
        self.groups: list[Any] = []  # TID 1411 and TID 1501 groups

    def measurement(
        self, name: hd.sr.CodedConcept, value: float, unit: hd.sr.CodedConcept
    ) -> hd.sr.Measurement:
        return hd.sr.Measurement(
            name=name, value=float(value), unit=unit, algorithm_id=_algorithm(self.info)
        )

    def add(
        self,
        tracking_uid: str,
        tracking_id: str,
        finding: hd.sr.CodedConcept,
        measurements: list[hd.sr.Measurement],
        *,
        site: hd.sr.FindingSite | None = None,
        evaluations: list[hd.sr.QualitativeEvaluation] | None = None,
    ) -> None:
        """One group: TID 1411 when the SEG has this segment, else TID 1501."""
        number = self.segment_numbers.get(tracking_uid)
        tracking = _tracking(tracking_uid, tracking_id)
        sites = [site or hd.sr.FindingSite(anatomic_location=BRAIN)]
        if number is not None and self.seg is not None:
            referenced = hd.sr.ReferencedSegment(
                sop_class_uid=str(self.seg.SOPClassUID),
                sop_instance_uid=str(self.seg.SOPInstanceUID),
                segment_number=number,
                source_series=hd.sr.SourceSeriesForSegmentation(
                    str(self.source[0].SeriesInstanceUID)
                ),
            )
            self.groups.append(
                hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                    tracking_identifier=tracking,
                    referenced_segment=referenced,
                    finding_type=finding,
                    algorithm_id=_algorithm(self.info),
                    finding_sites=sites,
                    measurements=measurements or None,
                    qualitative_evaluations=evaluations or None,
                )
            )
        else:
            self.groups.append(
                hd.sr.MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=tracking,
                    finding_type=finding,
                    algorithm_id=_algorithm(self.info),
                    finding_sites=sites,
                    measurements=measurements or None,
                    qualitative_evaluations=evaluations or None,
                )
            )


def _glioma(doc: ResultsDocument, g: _Groups) -> None:
    by_kind = {s.kind: s for s in g.segments.values()}
    for m in doc.measurements:
        spec = by_kind.get(m.name)
        uid = spec.tracking_uid if spec else derived_uid(doc.job, "measurement", m.name)
        values = [g.measurement(VOLUME, m.value, CM3)]
        finding = SEGMENT_TYPES.get(m.name, SEGMENT_TYPES["ET"])
        g.add(uid, m.label, finding, values)


def _metastasis(doc: ResultsDocument, g: _Groups) -> None:
    for lesion in doc.lesions:
        values = [
            g.measurement(VOLUME, lesion.volume_cm3, CM3),
            g.measurement(LONG_AXIS, lesion.longest_diameter_mm, MM),
        ]
        g.add(
            lesion.tracking_uid,
            f"Lesion {lesion.id}",
            SEGMENT_TYPES["metastasis"],
            values,
            site=_site(lesion),
        )


def _hemorrhage(doc: ResultsDocument, g: _Groups) -> None:
    volume = doc.measurement("bleedVolume")
    blood = next(iter(g.segments.values()), None)
    for finding in doc.findings:
        values = []
        if finding.probability is not None:
            values.append(g.measurement(PROBABILITY, finding.probability, NO_UNITS))
        if finding.code == "any" and volume is not None:
            values.append(g.measurement(VOLUME, volume.value, CM3))
        evaluation = hd.sr.QualitativeEvaluation(FINDING, PRESENT if finding.present else ABSENT)
        uid = (
            blood.tracking_uid
            if finding.code == "any" and blood is not None
            else derived_uid(doc.job, "finding", finding.code)
        )
        g.add(
            uid,
            f"Hemorrhage {finding.code}",
            SEGMENT_TYPES["hemorrhage"],
            values,
            evaluations=[evaluation],
        )


def make_report(
    info: OutputInfo,
    doc: ResultsDocument,
    source: Sequence[Dataset],
    seg: Dataset | None,
    segments: Sequence[SegmentSpec],
    *,
    modality: str = "MR",
) -> Dataset:
    """The Comprehensive 3D SR of ``doc``, referencing ``source`` and ``seg``."""
    groups = _Groups(info, source, seg, segments)
    {"glioma": _glioma, "metastasis": _metastasis, "hemorrhage": _hemorrhage}.get(doc.app, _glioma)(
        doc, groups
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=derived_uid(info.job_uid, "device"),
            name=info.model_name[:64],
            manufacturer_name=MANUFACTURER,
            model_name=info.model_version[:64],
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=PROCEDURES.get(modality, PROCEDURES["MR"]),
        imaging_measurements=groups.groups,
        referenced_images=None if groups.groups else _source_images(source[:1]),
    )
    evidence = [*source, *([seg] if seg is not None else [])]
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=info.series_uid("sr"),
        series_number=info.series_number("sr"),
        sop_instance_uid=info.instance_uid("sr"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,  # a machine result: final only when a radiologist verifies it
        is_verified=False,
        institution_name=info.institution[:64] or None,
        institutional_department_name=info.department[:64] or None,
        series_description=info.series_description("sr"),
        software_versions=info.software_version,
    )
    fix_timestamps(sr, info.content_datetime)
    return sr
