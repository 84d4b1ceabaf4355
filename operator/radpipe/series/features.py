"""Header features for the series classifier: numeric, categorical and text columns.

Features come from headers only (no pixels). Numeric columns are floats with NaN for a
missing tag (CatBoost treats NaN as its own value); categorical columns are short strings
with "NA" for missing; text columns are normalised free text (lower case, accents removed,
punctuation split, "+C"-style contrast marks spelled out) that CatBoost tokenises itself.
Two columns describe the series' place in its study (where it comes in the series order,
and whether an earlier series already carried a contrast agent), so every series of a study
is featurised in one call: :func:`study_features`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from radpipe.dicom.models import NON_IMAGE_MODALITIES
from radpipe.series.headers import SeriesHeader

#: Numeric columns (float; NaN when missing).
NUMERIC_FEATURES: tuple[str, ...] = (
    "series_number",
    "slice_thickness",
    "spacing_between_slices",
    "repetition_time",
    "echo_time",
    "inversion_time",
    "flip_angle",
    "field_strength",
    "echo_train_length",
    "b_value",
    "rows",
    "columns",
    "pixel_spacing",
    "n_instances",
    "images_in_acquisition",
    "series_position",
    "contrast_before",
)
#: Categorical columns (str; "NA" when missing).
CATEGORICAL_FEATURES: tuple[str, ...] = (
    "modality",
    "vendor",
    "mr_acquisition_type",
    "scanning_sequence",
    "sequence_variant",
    "image_type_0",
    "image_type_1",
    "image_type_2",
    "contrast_agent",
    "orientation",
    "convolution_kernel",
)
#: Text columns (normalised free text; "" when missing).
TEXT_FEATURES: tuple[str, ...] = (
    "series_description",
    "protocol_name",
    "sequence_name",
    "scan_options",
    "image_type",
)
#: All columns, in the order the model was trained on.
FEATURE_NAMES: tuple[str, ...] = NUMERIC_FEATURES + CATEGORICAL_FEATURES + TEXT_FEATURES
CAT_INDICES: list[int] = [FEATURE_NAMES.index(n) for n in CATEGORICAL_FEATURES]
TEXT_INDICES: list[int] = [FEATURE_NAMES.index(n) for n in TEXT_FEATURES]

MISSING = "NA"
_NAN = float("nan")

_VENDORS: tuple[tuple[str, str], ...] = (
    ("GE ", "ge"),
    ("GE_", "ge"),
    ("GENERAL ELECTRIC", "ge"),
    ("SIEMENS", "siemens"),
    ("PHILIPS", "philips"),
    ("TOSHIBA", "canon"),
    ("CANON", "canon"),
    ("HITACHI", "hitachi"),
    ("FUJIFILM", "hitachi"),
    ("UIH", "united"),
    ("UNITED IMAGING", "united"),
)

_CONTRAST_MARK = re.compile(r"(?:\+\s*(?:c|gd|gad|gado|km|ce)\b|\bc\s*\+|\bgd\s*\+)")
_SEPARATORS = re.compile(r"[\W_]+")
_LETTER_DIGIT = re.compile(r"(?<=[a-z])(?=\d{2,})|(?<=\d)(?=[a-z]{3,})")


def normalise_text(value: Any) -> str:
    """Lower-case ASCII words: accents dropped, "+C"/"C+"/"+Gd" become "pluscontrast"."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value)
    text = unicodedata.normalize("NFKD", str(value))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = text.replace("ß", "ss")
    text = _CONTRAST_MARK.sub(" pluscontrast ", text)
    text = _SEPARATORS.sub(" ", text)
    text = _LETTER_DIGIT.sub(" ", text)
    return " ".join(text.split())


def vendor_of(manufacturer: Any) -> str:
    """A short vendor name from Manufacturer ("ge", "siemens", ...; "other" / "NA")."""
    if not manufacturer:
        return MISSING
    upper = f"{str(manufacturer).upper()} "
    for needle, vendor in _VENDORS:
        if needle in upper:
            return vendor
    return "other"


def _num(value: Any) -> float:
    if value is None:
        return _NAN
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _NAN
    return number if math.isfinite(number) else _NAN


def _cat(value: Any) -> str:
    if value is None or value == "" or value == []:
        return MISSING
    if isinstance(value, (list, tuple)):
        return "+".join(sorted(str(v).upper() for v in value if str(v))) or MISSING
    return str(value).strip().upper() or MISSING


def series_features(
    header: SeriesHeader, *, position: float = _NAN, contrast_before: float = _NAN
) -> list[Any]:
    """The feature row of one series, in :data:`FEATURE_NAMES` order.

    ``position`` (0 first .. 1 last in the study) and ``contrast_before`` (1 when an earlier
    series of the study carried a contrast agent) come from :func:`study_features`.
    """
    get = header.get
    image_type = [str(v).upper() for v in (get("ImageType") or [])]
    pixel_spacing = get("PixelSpacing") or []
    numeric = [
        _num(get("SeriesNumber")),
        _num(get("SliceThickness")),
        _num(get("SpacingBetweenSlices")),
        _num(get("RepetitionTime")),
        _num(get("EchoTime")),
        _num(get("InversionTime")),
        _num(get("FlipAngle")),
        _num(get("MagneticFieldStrength")),
        _num(get("EchoTrainLength")),
        _num(get("DiffusionBValue")),
        _num(get("Rows")),
        _num(get("Columns")),
        _num(pixel_spacing[0] if pixel_spacing else None),
        _num(header.n_instances),
        _num(get("ImagesInAcquisition")),
        _num(position),
        _num(contrast_before),
    ]
    categorical = [
        _cat(get("Modality")),
        vendor_of(get("Manufacturer")),
        _cat(get("MRAcquisitionType")),
        _cat(get("ScanningSequence")),
        _cat(get("SequenceVariant")),
        image_type[0] if len(image_type) > 0 else MISSING,
        image_type[1] if len(image_type) > 1 else MISSING,
        image_type[2] if len(image_type) > 2 else MISSING,
        "yes" if header.has_contrast_agent else "no",
        header.orientation,
        _cat(get("ConvolutionKernel")),
    ]
    text = [
        normalise_text(get("SeriesDescription")),
        normalise_text(get("ProtocolName")),
        normalise_text(get("SequenceName")),
        normalise_text(get("ScanOptions")),
        normalise_text(image_type),
    ]
    return numeric + categorical + text


def _order_key(header: SeriesHeader, index: int) -> tuple[float, str, int]:
    number = header.number
    return (float(number) if number is not None else math.inf, header.time, index)


def study_features(headers: Sequence[SeriesHeader]) -> list[list[Any]]:
    """Feature rows for every series of one study, in the order given.

    The order of the study's image series (by SeriesNumber, then SeriesTime) gives each
    row its ``series_position`` and ``contrast_before`` columns; non-image objects
    (:data:`NON_IMAGE_MODALITIES`) are left out of that order and placed last, so a study
    that already holds radpipe's SEG/SR/PDF from an earlier run classifies as before.
    """
    images = [i for i, h in enumerate(headers) if h.modality not in NON_IMAGE_MODALITIES]
    others = [i for i, h in enumerate(headers) if h.modality in NON_IMAGE_MODALITIES]
    order = sorted(images, key=lambda i: _order_key(headers[i], i))
    last = max(len(order) - 1, 1)
    rows: list[list[Any]] = [[] for _ in headers]
    seen_contrast = False
    for rank, i in enumerate(order):
        rows[i] = series_features(
            headers[i], position=rank / last, contrast_before=1.0 if seen_contrast else 0.0
        )
        seen_contrast = seen_contrast or headers[i].has_contrast_agent
    for i in others:
        rows[i] = series_features(
            headers[i], position=1.0, contrast_before=1.0 if seen_contrast else 0.0
        )
    return rows
