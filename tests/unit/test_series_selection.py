"""Selection rules: roles, minimum probability, tie-breaks, and the reasons given."""

from __future__ import annotations

from typing import Any

import pytest

from radpipe.api.apps import bundled_apps
from radpipe.api.models import SeriesRequirements
from radpipe.series.headers import SeriesHeader
from radpipe.series.model import Prediction
from radpipe.series.selection import (
    PREFERENCES,
    ClassifiedSeries,
    SelectionError,
    rank,
    select_series,
)


def _series(number: int, label: str, probability: float = 0.99, **headers: Any) -> ClassifiedSeries:
    values = {
        "SeriesInstanceUID": f"1.2.3.{number}",
        "SeriesNumber": number,
        "SeriesDescription": headers.pop("desc", f"series {label}"),
        "ImageType": ["ORIGINAL", "PRIMARY"],
        "MRAcquisitionType": "2D",
        "SliceThickness": 5.0,
        "ImageOrientationPatient": [1, 0, 0, 0, 1, 0],
    }
    values.update(headers)
    rest = (1.0 - probability) / 2
    probs = {label: probability, "other": rest, "t1" if label != "t1" else "t2": rest}
    return ClassifiedSeries(
        SeriesHeader.from_mapping(values), Prediction(label, probability, probs)
    )


SAG = [0, 1, 0, 0, 0, -1]
GLIOMA = SeriesRequirements(
    required=["t1", "t1c", "t2", "flair"],
    min_probability=0.8,
    prefer=["original", "3d", "thinnest", "axial", "latest-post-contrast"],
)


def test_each_role_gets_the_series_of_its_class() -> None:
    series = [_series(1, "localizer"), _series(2, "t1"), _series(3, "t2"), _series(4, "flair")]
    series.append(_series(5, "t1c"))
    selection = select_series(series, GLIOMA)
    assert selection.ok
    chosen = {role: c.chosen.header.number for role, c in selection.choices.items() if c.chosen}
    assert chosen == {"t1": 2, "t1c": 5, "t2": 3, "flair": 4}
    assert "the only t1c series" in selection.choices["t1c"].reason


def test_3d_is_preferred_over_2d_and_the_reason_says_so() -> None:
    series = [
        _series(5, "t1c", desc="AX T1 +C"),
        _series(6, "t1c", desc="SAG 3D T1 +C", MRAcquisitionType="3D", SliceThickness=1.0),
    ]
    choice = select_series(series, GLIOMA).choices["t1c"]
    assert choice.chosen is not None and choice.chosen.header.number == 6
    assert "'3d'" in choice.reason and "3D" in choice.reason and "series 5" in choice.reason


def test_original_beats_derived_even_when_the_reformat_is_3d_and_thinner() -> None:
    series = [
        _series(5, "t1c", MRAcquisitionType="3D", SliceThickness=1.0),
        _series(
            900,
            "t1c",
            ImageType=["DERIVED", "SECONDARY", "MPR"],
            MRAcquisitionType="3D",
            SliceThickness=0.5,
        ),
    ]
    choice = select_series(series, GLIOMA).choices["t1c"]
    assert choice.chosen is not None and choice.chosen.header.number == 5
    assert "'original'" in choice.reason


def test_thinner_slices_then_axial_decide_between_equal_acquisitions() -> None:
    thin = _series(3, "t2", SliceThickness=3.0, ImageOrientationPatient=SAG)
    thick = _series(4, "t2", SliceThickness=5.0)
    assert select_series([thick, thin], GLIOMA).choices["t2"].chosen is thin
    sagittal = _series(3, "t2", ImageOrientationPatient=SAG)
    axial = _series(4, "t2")
    choice = select_series([sagittal, axial], GLIOMA).choices["t2"]
    assert choice.chosen is axial
    assert "'axial'" in choice.reason


def test_the_latest_post_contrast_series_wins_but_only_for_post_contrast_roles() -> None:
    early, late = _series(7, "t1c"), _series(11, "t1c")
    assert select_series([early, late], GLIOMA).choices["t1c"].chosen is late
    # for a pre-contrast role the same preference does nothing: the lower number stays
    t1_early, t1_late = _series(3, "t1"), _series(9, "t1")
    assert rank([t1_late, t1_early], "t1", ["latest-post-contrast"])[0] is t1_early


def test_probability_breaks_remaining_ties() -> None:
    sure, unsure = _series(4, "flair", 0.99), _series(3, "flair", 0.85)
    choice = select_series([unsure, sure], GLIOMA).choices["flair"]
    assert choice.chosen is sure
    assert "higher probability" in choice.reason


def test_low_confidence_leaves_the_role_empty_and_names_the_candidate() -> None:
    series = [
        _series(2, "t1"),
        _series(3, "t2"),
        _series(4, "flair"),
        _series(8, "t1c", 0.6, desc="T1 odd name"),
    ]
    selection = select_series(series, GLIOMA)
    assert not selection.ok and selection.missing == ["t1c"]
    reason = selection.choices["t1c"].reason
    assert "T1 post-contrast" in reason and "low confidence" in reason
    assert "series 8 'T1 odd name'" in reason and "0.60" in reason


def test_a_missing_contrast_is_named_with_the_nearest_series() -> None:
    series = [_series(2, "t1"), _series(3, "t2"), _series(5, "t1c")]
    selection = select_series(series, GLIOMA)
    assert selection.missing == ["flair"]
    assert "no FLAIR (flair) series found" in selection.choices["flair"].reason


def test_optional_roles_do_not_fail_the_selection() -> None:
    rules = SeriesRequirements(required=["t1c"], optional=["flair"], min_probability=0.8)
    selection = select_series([_series(5, "t1c")], rules)
    assert selection.ok
    assert selection.choices["flair"].chosen is None
    assert not selection.choices["flair"].required


def test_unknown_preferences_are_refused() -> None:
    rules = SeriesRequirements(required=["t1"], prefer=["shiniest"])
    with pytest.raises(SelectionError, match="shiniest"):
        select_series([_series(1, "t1")], rules)


def test_every_bundled_app_uses_known_preferences_and_classes() -> None:
    from radpipe.series.classes import SERIES_CLASSES

    for name, app in bundled_apps().items():
        rules = app.spec.series
        assert set(rules.prefer) <= set(PREFERENCES), name
        assert set(rules.required + rules.optional) <= set(SERIES_CLASSES), name
