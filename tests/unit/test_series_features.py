"""Header features: missing or malformed tags never crash, and each feature means something."""

from __future__ import annotations

import math

from pydicom.dataset import Dataset

from radpipe.series.features import (
    CATEGORICAL_FEATURES,
    FEATURE_NAMES,
    NUMERIC_FEATURES,
    TEXT_FEATURES,
    normalise_text,
    series_features,
    study_features,
    vendor_of,
)
from radpipe.series.headers import SeriesHeader, orientation_of


def _row(header: SeriesHeader) -> dict[str, object]:
    return dict(zip(FEATURE_NAMES, series_features(header), strict=True))


def test_an_empty_header_gives_a_full_row_of_missing_values() -> None:
    row = _row(SeriesHeader.from_mapping({}))
    assert len(row) == len(FEATURE_NAMES)
    assert all(math.isnan(float(row[name])) for name in NUMERIC_FEATURES)  # type: ignore[arg-type]
    assert all(
        row[name] == "NA"
        for name in CATEGORICAL_FEATURES
        if name not in ("contrast_agent", "orientation")
    )
    assert row["contrast_agent"] == "no"
    assert row["orientation"] == "unknown"
    assert all(row[name] == "" for name in TEXT_FEATURES)


def test_malformed_values_are_treated_as_missing() -> None:
    header = SeriesHeader.from_mapping(
        {
            "SliceThickness": "abc",
            "RepetitionTime": float("inf"),
            "EchoTime": [],
            "ImageOrientationPatient": [1, 0],
            "ImageType": "",
            "SeriesNumber": None,
        }
    )
    row = _row(header)
    assert math.isnan(row["slice_thickness"])  # type: ignore[arg-type]
    assert math.isnan(row["repetition_time"])  # type: ignore[arg-type]
    assert math.isnan(row["echo_time"])  # type: ignore[arg-type]
    assert row["orientation"] == "unknown"
    assert row["image_type_0"] == "NA"


def test_a_pydicom_dataset_with_few_tags_is_read() -> None:
    ds = Dataset()
    ds.Modality = "MR"
    ds.SeriesDescription = "Ax T2 FSE"
    ds.RepetitionTime = "4500"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    ds.ScanningSequence = ["SE"]
    header = SeriesHeader.from_dataset(ds, n_instances=24)
    row = _row(header)
    assert row["modality"] == "MR"
    assert row["repetition_time"] == 4500.0
    assert row["n_instances"] == 24.0
    assert row["image_type_0"] == "ORIGINAL"
    assert row["scanning_sequence"] == "SE"
    assert row["series_description"] == "ax t2 fse"
    assert math.isnan(row["inversion_time"])  # type: ignore[arg-type]


def test_orientation_names_the_plane_from_the_direction_cosines() -> None:
    assert orientation_of([1, 0, 0, 0, 1, 0]) == "ax"
    assert orientation_of([0, 1, 0, 0, 0, -1]) == "sag"
    assert orientation_of([1, 0, 0, 0, 0, -1]) == "cor"
    assert orientation_of([1, 0, 0, 0, 0.7071, 0.7071]) == "oblique"
    assert orientation_of([1, 0, 0, 0, 0.99, 0.14]) == "ax"  # AC-PC tilt stays axial
    assert orientation_of(None) == "unknown"
    assert orientation_of([0, 0, 0, 0, 0, 0]) == "unknown"


def test_text_is_normalised_across_languages_and_contrast_marks() -> None:
    assert "pluscontrast" in normalise_text("AX T1 +C").split()
    assert "pluscontrast" in normalise_text("T1 C+ ax").split()
    assert "pluscontrast" in normalise_text("3D_T1_SAG+Gd").split()
    assert normalise_text("T1 pós-contraste") == "t1 pos contraste"
    assert normalise_text("Schädel nativ") == "schadel nativ"
    assert normalise_text("t1_mpr_sag_p2_iso") == "t1 mpr sag p2 iso"
    assert normalise_text(["FAST_GEMS", "EDR_GEMS"]) == "fast gems edr gems"
    assert normalise_text(None) == ""


def test_vendor_names_are_normalised() -> None:
    assert vendor_of("GE MEDICAL SYSTEMS") == "ge"
    assert vendor_of("Siemens Healthineers") == "siemens"
    assert vendor_of("Philips Medical Systems") == "philips"
    assert vendor_of("TOSHIBA") == vendor_of("CANON_MEC") == "canon"
    assert vendor_of("ACME") == "other"
    assert vendor_of(None) == "NA"


def test_contrast_agent_presence_and_study_context() -> None:
    pre = SeriesHeader.from_mapping({"SeriesNumber": 3, "SeriesDescription": "T1"})
    post = SeriesHeader.from_mapping(
        {"SeriesNumber": 7, "SeriesDescription": "T1", "ContrastBolusAgent": "Gadovist"}
    )
    late = SeriesHeader.from_mapping({"SeriesNumber": 9, "SeriesDescription": "T1"})
    rows = study_features([late, pre, post])  # any input order; context follows SeriesNumber
    named = [dict(zip(FEATURE_NAMES, r, strict=True)) for r in rows]
    late_row, pre_row, post_row = named
    assert post_row["contrast_agent"] == "yes" and pre_row["contrast_agent"] == "no"
    assert pre_row["contrast_before"] == 0.0
    assert post_row["contrast_before"] == 0.0
    assert late_row["contrast_before"] == 1.0
    assert (pre_row["series_position"], post_row["series_position"]) == (0.0, 0.5)
    assert late_row["series_position"] == 1.0


def test_results_already_in_the_study_do_not_change_the_images_features() -> None:
    """A re-run on a study holding radpipe's earlier SEG/SR/PDF classifies as the first run."""
    images = [
        SeriesHeader.from_mapping({"SeriesNumber": n, "Modality": "MR", "SeriesDescription": d})
        for n, d in [(2, "Scout"), (3, "T1 SAG"), (8, "T1W_3D CE")]
    ]
    results = [
        SeriesHeader.from_mapping({"SeriesNumber": 9001, "Modality": m, "SeriesDescription": d})
        for m, d in [("SEG", "radpipe glioma segmentation"), ("SR", "radpipe measurements")] * 3
    ] + [SeriesHeader.from_mapping({"SeriesNumber": 9003, "Modality": "DOC"})]
    alone = study_features(images)
    mixed = study_features(results[:3] + images + results[3:])
    assert mixed[3:6] == alone
    assert study_features([*images, images[0]])[:3] != alone  # an extra image series does count
