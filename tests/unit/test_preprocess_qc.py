"""QC and refusals of the preprocessing: odd stacks, poor registrations, non-brain input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset

from radpipe.preprocessing import qc, registration
from radpipe.preprocessing.dicom_io import MIN_SLICES, UnusableSeries, stack_geometry
from radpipe.preprocessing.templates import template_on_grid


def _headers(
    n: int = 24,
    *,
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M"),
    iop: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    step: tuple[float, float, float] = (0.0, 0.0, 5.0),
    positions: list[float] | None = None,
) -> list[tuple[Path, Dataset]]:
    out = []
    for k in range(n):
        ds = Dataset()
        ds.SeriesInstanceUID = "1.2.3.4"
        ds.SOPInstanceUID = f"1.2.3.4.{k}"
        ds.InstanceNumber = k + 1
        ds.ImageType = list(image_type)
        ds.ImageOrientationPatient = list(iop)
        z = positions[k] if positions is not None else k
        ds.ImagePositionPatient = [step[0] * z, step[1] * z, step[2] * z]
        ds.PixelSpacing = [1.0, 1.0]
        ds.Rows = ds.Columns = 64
        ds.SliceThickness = 5.0
        out.append((Path(f"{k}.dcm"), ds))
    # Arrival order is not slice order.
    return out[::2] + out[1::2]


def test_stack_geometry_sorts_slices_and_describes_the_stack() -> None:
    geom = stack_geometry(_headers(), "flair")
    assert [s.instance_number for s in geom.slices] == list(range(1, 25))
    assert geom.spacing == pytest.approx(5.0) and not geom.uneven and geom.tilt_deg < 1e-6
    ref = geom.reference()
    assert ref["size"] == [64, 64, 24] and ref["spacing"] == [1.0, 1.0, 5.0]
    assert ref["sopInstanceUIDs"][0] == "1.2.3.4.0"


def test_gantry_tilt_and_uneven_spacing_are_detected() -> None:
    tilted = stack_geometry(_headers(step=(0.0, np.tan(np.radians(15)) * 5, 5.0)), "ct_brain")
    assert tilted.tilt_deg == pytest.approx(15.0, abs=0.01)
    positions = [float(k) for k in range(24)]
    positions[12] += 0.3
    assert stack_geometry(_headers(positions=positions), "ct_brain").uneven


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (_headers(image_type=("ORIGINAL", "PRIMARY", "LOCALIZER")), "localizer"),
        (_headers(MIN_SLICES - 1), f"at least {MIN_SLICES}"),
        (
            _headers()[:12] + _headers(iop=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0))[12:],
            "orientations",
        ),
        (_headers(positions=[float(k // 2) for k in range(24)]), "same position"),
    ],
)
def test_unusable_stacks_are_refused_with_a_reason(
    headers: list[tuple[Path, Dataset]], reason: str
) -> None:
    with pytest.raises(UnusableSeries, match=reason) as info:
        stack_geometry(headers, "t1")
    assert info.value.hint


def _good_and_shifted(shift_mm: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t1, tmask = template_on_grid()
    rng = np.random.default_rng(0)
    ramp = np.linspace(-1, 1, t1.shape[0], dtype=np.float32)[:, None, None]
    good = t1 * (1 + 0.2 * ramp) + rng.normal(0, 0.03, t1.shape).astype(np.float32)
    return good, np.roll(good, shift_mm, axis=1), tmask > 0


def test_registration_qc_passes_good_and_flags_misregistered_anchor() -> None:
    t1, _ = template_on_grid()
    good, shifted, brain = _good_and_shifted(5)
    full = {"t1": 1.0}
    ok = qc.assess_mr("t1", qc.nmi(good, t1, brain), 0.8, full, {})
    assert ok.status == "pass" and not ok.review_recommended
    poor = qc.assess_mr("t1", qc.nmi(shifted, t1, brain), 0.5, full, {})
    assert poor.status == "review" and "registration of t1" in poor.reasons[0]
    noise = np.random.default_rng(1).normal(size=t1.shape).astype(np.float32)
    hopeless = qc.assess_mr("t1", qc.nmi(noise, t1, brain), 0.0, full, {})
    assert hopeless.status == "fail" and "not a brain image" in hopeless.reasons[0]


def test_channel_misalignment_and_partial_coverage_flag_review() -> None:
    good, _, brain = _good_and_shifted(5)
    # A T2-like channel (inverted contrast), aligned and moved 5 mm.
    t2 = (1.2 - good) * brain + np.random.default_rng(2).normal(0, 0.05, good.shape)
    aligned = qc.nmi(t2, good, brain)
    off = qc.nmi(np.roll(t2, 5, axis=1), good, brain)
    report = qc.assess_mr(
        "t1", 1.2, 0.8, {"t1": 1.0, "flair": 0.5, "t2": 1.0}, {"t2": aligned, "flair": off}
    )
    assert report.status == "review"
    assert any("co-registration of flair" in r for r in report.reasons)
    assert any("flair covers only 50%" in r for r in report.reasons)
    assert not any("t2" in r for r in report.reasons)


def test_non_brain_field_of_view_fails() -> None:
    report = qc.assess_mr("t1c", 1.2, 0.8, {"t1c": 0.3}, {})
    assert report.status == "fail"
    assert "field of view" in report.reasons[0]
    assert report.as_dict()["reviewRecommended"] is True


def test_compose_applies_first_then_then() -> None:
    first = sitk.Euler3DTransform((0, 0, 0), 0.0, 0.0, np.pi / 2, (10.0, 0.0, 0.0))
    then = sitk.TranslationTransform(3, (0.0, 5.0, 0.0))
    composed = registration.compose(first, then)
    p = (1.0, 2.0, 3.0)
    expected = then.TransformPoint(first.TransformPoint(p))
    assert np.allclose(composed.TransformPoint(p), expected)
    m = registration.affine_matrix(composed)
    assert np.allclose(m[:3, :3] @ np.asarray(p) + m[:3, 3], expected)
