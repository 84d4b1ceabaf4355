"""The DICOM Segmentation object: one segment per compartment or lesion, on the source grid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from radpipe.dicom.writers.common import MANUFACTURER, OutputInfo, fix_timestamps

#: SCT 49755003: the category of every lesion radpipe segments.
MORPHOLOGICALLY_ALTERED = hd.sr.CodedConcept("49755003", "SCT", "Morphologically Altered Structure")

#: Property types by segment kind.
SEGMENT_TYPES: dict[str, hd.sr.CodedConcept] = {
    "ET": hd.sr.CodedConcept(codes.SCT.Neoplasm.value, "SCT", "Neoplasm"),
    "NCR": hd.sr.CodedConcept(codes.SCT.Necrosis.value, "SCT", "Necrosis"),
    "ED": hd.sr.CodedConcept(codes.SCT.Edema.value, "SCT", "Edema"),
    "metastasis": hd.sr.CodedConcept(
        codes.SCT.NeoplasmMetastatic.value, "SCT", "Neoplasm, metastatic"
    ),
    "hemorrhage": hd.sr.CodedConcept(codes.SCT.Hemorrhage.value, "SCT", "Hemorrhage"),
}

#: Display colours (RGB) by segment kind, the same as the report's overlays.
SEGMENT_COLOURS: dict[str, tuple[int, int, int]] = {
    "ET": (230, 57, 70),
    "NCR": (255, 183, 3),
    "ED": (42, 157, 143),
    "metastasis": (230, 57, 70),
    "hemorrhage": (214, 40, 40),
}

BRAIN = hd.sr.CodedConcept(codes.SCT.Brain.value, "SCT", "Brain")


@dataclass(frozen=True)
class SegmentSpec:
    """One segment: its number in the label map and how it is described."""

    number: int
    kind: str  # a SEGMENT_TYPES key
    label: str
    tracking_uid: str
    tracking_id: str

    def as_json(self) -> dict[str, Any]:
        """JSON form (postprocess → report)."""
        return {
            "number": self.number,
            "kind": self.kind,
            "label": self.label,
            "trackingUID": self.tracking_uid,
            "trackingID": self.tracking_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmentSpec:
        """Read :meth:`as_json`."""
        return cls(
            number=int(data["number"]),
            kind=str(data["kind"]),
            label=str(data["label"]),
            tracking_uid=str(data["trackingUID"]),
            tracking_id=str(data["trackingID"]),
        )


def make_segmentation(
    info: OutputInfo,
    source: Sequence[Dataset],
    labels: NDArray[Any],
    segments: Sequence[SegmentSpec],
) -> Dataset | None:
    """A binary SEG of ``labels`` (slice, row, column; values = segment numbers).

    ``source`` are the source series' instances in the same slice order. Returns None when
    no segment has a voxel (an empty segmentation makes no SEG: there is nothing to show).
    """
    present = [s for s in segments if np.any(labels == s.number)]
    if not present:
        return None
    if labels.shape[0] != len(source):
        raise ValueError(
            f"label map has {labels.shape[0]} slices but the source series {len(source)}"
        )
    # highdicom wants segment numbers 1..n without gaps: renumber what is present
    renumber = np.zeros(int(max(s.number for s in segments)) + 1, dtype=np.uint16)
    descriptions = []
    for new, spec in enumerate(present, start=1):
        renumber[spec.number] = new
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=new,
                segment_label=spec.label[:64],
                segmented_property_category=MORPHOLOGICALLY_ALTERED,
                segmented_property_type=SEGMENT_TYPES[spec.kind],
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=info.algorithm(),
                tracking_uid=spec.tracking_uid,
                tracking_id=spec.tracking_id[:64],
                anatomic_regions=[BRAIN],
                display_color=hd.color.CIELabColor.from_rgb(
                    *SEGMENT_COLOURS.get(spec.kind, (230, 57, 70))
                ),
            )
        )
    clipped = np.where(labels < len(renumber), labels, 0)
    pixel_array = renumber[clipped].astype(np.uint16 if len(present) > 255 else np.uint8)
    seg = hd.seg.Segmentation(
        source_images=list(source),
        pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=info.series_uid("seg"),
        series_number=info.series_number("seg"),
        sop_instance_uid=info.instance_uid("seg"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=info.model_name[:64],
        software_versions=info.software_version,
        device_serial_number=info.job_uid[:64],
        series_description=info.series_description("seg"),
        content_label="RADPIPE",
        content_description=f"{info.app} segmentation"[:64],
        content_creator_name="radpipe^",
        omit_empty_frames=True,
    )
    fix_timestamps(seg, info.content_datetime)
    return seg
