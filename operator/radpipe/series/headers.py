"""One series' DICOM header, normalised: the only input the series classifier sees.

A :class:`SeriesHeader` holds the attributes of one representative instance of a series
(plain Python values: ``str``, ``float``, ``int``, lists of ``str``/``float``) plus the
number of instances in the series. It is built from a pydicom dataset (read with
``stop_before_pixels``) or from a plain mapping of DICOM keywords (the training corpus).
Missing or malformed attributes become ``None``; nothing here raises on odd headers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The DICOM keywords read from each series (everything the features and tie-breaks use).
HEADER_KEYWORDS: tuple[str, ...] = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "AccessionNumber",
    "SeriesNumber",
    "SeriesDescription",
    "ProtocolName",
    "SequenceName",
    "ScanOptions",
    "Modality",
    "Manufacturer",
    "MRAcquisitionType",
    "ScanningSequence",
    "SequenceVariant",
    "ImageType",
    "ContrastBolusAgent",
    "ContrastBolusRoute",
    "ContrastBolusVolume",
    "ImageOrientationPatient",
    "ConvolutionKernel",
    "SliceThickness",
    "SpacingBetweenSlices",
    "PixelSpacing",
    "RepetitionTime",
    "EchoTime",
    "InversionTime",
    "FlipAngle",
    "EchoTrainLength",
    "MagneticFieldStrength",
    "DiffusionBValue",
    "Rows",
    "Columns",
    "ImagesInAcquisition",
    "SeriesTime",
    "AcquisitionTime",
)

#: Attributes whose value may hold several items (kept as lists).
_MULTI = frozenset(
    {
        "ScanOptions",
        "ScanningSequence",
        "SequenceVariant",
        "ImageType",
        "ImageOrientationPatient",
        "PixelSpacing",
        "ConvolutionKernel",
    }
)
_NUMERIC = frozenset(
    {
        "SeriesNumber",
        "ContrastBolusVolume",
        "SliceThickness",
        "SpacingBetweenSlices",
        "RepetitionTime",
        "EchoTime",
        "InversionTime",
        "FlipAngle",
        "EchoTrainLength",
        "MagneticFieldStrength",
        "DiffusionBValue",
        "Rows",
        "Columns",
        "ImagesInAcquisition",
    }
)
_NUMERIC_LISTS = frozenset({"ImageOrientationPatient", "PixelSpacing"})


def to_float(value: Any) -> float | None:
    """A finite float from a DICOM value (DS, IS, str, number, first of a list), else None."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or (
        hasattr(value, "__iter__") and not isinstance(value, (str, bytes))
    ):
        items = list(value)
        return to_float(items[0]) if items else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def to_text(value: Any) -> str:
    """A stripped string from a DICOM value; lists are joined with a backslash."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("latin-1", errors="replace")
    if not isinstance(value, str) and hasattr(value, "__iter__"):
        return "\\".join(to_text(v) for v in value)
    return str(value).strip()


def to_list(value: Any) -> list[str]:
    """The items of a (possibly multi-valued, possibly backslash-joined) value as strings."""
    if value is None:
        return []
    if isinstance(value, bytes):
        value = value.decode("latin-1", errors="replace")
    if isinstance(value, str):
        return [part.strip() for part in value.split("\\") if part.strip()]
    if hasattr(value, "__iter__"):
        return [to_text(v) for v in value if to_text(v)]
    text = to_text(value)
    return [text] if text else []


def normalise(keyword: str, value: Any) -> Any:
    """The plain-Python form of one attribute value (None when missing or unusable)."""
    if keyword in _NUMERIC_LISTS:
        numbers = [to_float(v) for v in to_list(value)]
        return [n for n in numbers if n is not None] or None
    if keyword in _MULTI:
        return to_list(value) or None
    if keyword in _NUMERIC:
        return to_float(value)
    text = to_text(value)
    return text or None


@dataclass
class SeriesHeader:
    """The normalised header of one series and how many instances it has."""

    attrs: dict[str, Any] = field(default_factory=dict)
    n_instances: int | None = None

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any], n_instances: int | None = None
    ) -> SeriesHeader:
        """Build from DICOM keyword → value (unknown keywords are ignored)."""
        attrs = {k: normalise(k, values.get(k)) for k in HEADER_KEYWORDS}
        return cls({k: v for k, v in attrs.items() if v is not None}, n_instances)

    @classmethod
    def from_dataset(cls, dataset: Any, n_instances: int | None = None) -> SeriesHeader:
        """Build from a pydicom Dataset; unreadable attributes are treated as missing."""
        values: dict[str, Any] = {}
        for keyword in HEADER_KEYWORDS:
            try:
                values[keyword] = dataset.get(keyword)
            except Exception:  # a malformed element must not stop classification
                values[keyword] = None
        return cls.from_mapping(values, n_instances)

    def get(self, keyword: str, default: Any = None) -> Any:
        """One normalised attribute."""
        return self.attrs.get(keyword, default)

    @property
    def uid(self) -> str:
        """SeriesInstanceUID ("" when absent)."""
        return str(self.attrs.get("SeriesInstanceUID", ""))

    @property
    def study_uid(self) -> str:
        """StudyInstanceUID ("" when absent)."""
        return str(self.attrs.get("StudyInstanceUID", ""))

    @property
    def number(self) -> int | None:
        """SeriesNumber as an int, when present."""
        value = self.attrs.get("SeriesNumber")
        return int(value) if value is not None else None

    @property
    def description(self) -> str:
        """SeriesDescription, else ProtocolName, else ""."""
        return str(self.attrs.get("SeriesDescription") or self.attrs.get("ProtocolName") or "")

    @property
    def modality(self) -> str:
        """Modality ("" when absent)."""
        return str(self.attrs.get("Modality", "")).upper()

    @property
    def has_contrast_agent(self) -> bool:
        """Whether the contrast/bolus module names an agent, route or volume."""
        return any(
            self.attrs.get(k) not in (None, 0.0)
            for k in ("ContrastBolusAgent", "ContrastBolusRoute", "ContrastBolusVolume")
        )

    @property
    def orientation(self) -> str:
        """ "ax", "sag", "cor", "oblique" or "unknown", from ImageOrientationPatient."""
        return orientation_of(self.attrs.get("ImageOrientationPatient"))

    @property
    def is_3d(self) -> bool:
        """Whether MRAcquisitionType says 3D."""
        return str(self.attrs.get("MRAcquisitionType", "")).upper() == "3D"

    @property
    def is_original(self) -> bool:
        """Whether ImageType's first value is ORIGINAL (missing counts as original)."""
        image_type = self.attrs.get("ImageType") or []
        return not image_type or str(image_type[0]).upper() != "DERIVED"

    @property
    def slice_thickness(self) -> float | None:
        """SliceThickness, else SpacingBetweenSlices, in mm."""
        value = self.attrs.get("SliceThickness")
        return value if value is not None else self.attrs.get("SpacingBetweenSlices")

    @property
    def instances(self) -> int | None:
        """Number of instances: as counted, else ImagesInAcquisition."""
        if self.n_instances is not None:
            return self.n_instances
        value = self.attrs.get("ImagesInAcquisition")
        return int(value) if value is not None else None

    @property
    def time(self) -> str:
        """SeriesTime, else AcquisitionTime, as a sortable string ("" when absent)."""
        return str(self.attrs.get("SeriesTime") or self.attrs.get("AcquisitionTime") or "")


def orientation_of(iop: Sequence[float] | None) -> str:
    """Name the acquisition plane of an ImageOrientationPatient (row and column cosines)."""
    if not iop or len(iop) != 6:
        return "unknown"
    rx, ry, rz, cx, cy, cz = (float(v) for v in iop)
    normal = (ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx)
    size = math.sqrt(sum(n * n for n in normal))
    if size < 1e-6:
        return "unknown"
    axis = max(range(3), key=lambda i: abs(normal[i]))
    if abs(normal[axis]) / size < 0.8:
        return "oblique"
    return ("sag", "cor", "ax")[axis]
