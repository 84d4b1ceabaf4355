"""Findings against synthetic ground truth: volumes within 5 %, lesions, hemorrhage, atlas."""

from __future__ import annotations

import numpy as np
import pytest

from radpipe.results import atlas
from radpipe.results import findings as F
from radpipe.results.schema import (
    ResultsDocument,
    SchemaVersionError,
    StudyRef,
    json_schema,
    load_document,
)
from radpipe.results.synthetic import SyntheticCase, cached_study, load_case


@pytest.fixture(scope="module")
def glioma() -> SyntheticCase:
    return load_case(cached_study("mr-glioma", 1))


@pytest.fixture(scope="module")
def metastasis() -> SyntheticCase:
    return load_case(cached_study("mr-metastasis", 3), with_brain=False)


def test_glioma_volumes_within_5_percent_of_truth(glioma: SyntheticCase) -> None:
    measurements, brain = F.glioma_measurements(
        glioma.labels_grid, glioma.mapping, glioma.brain_grid
    )
    truth = glioma.truth.volumes_cm3
    got = {m.name: m.value for m in measurements}
    assert set(got) == {"ET", "NCR", "ED", "TC", "WT"}
    for name, expected in truth.items():
        assert got[name] == pytest.approx(expected, rel=0.05), name
    assert brain == pytest.approx(glioma.truth.brain_cm3, rel=0.05)
    wt = next(m for m in measurements if m.name == "WT")
    assert wt.percent_of_brain == pytest.approx(
        100 * truth["WT"] / glioma.truth.brain_cm3, rel=0.05
    )
    assert "Tumour segmented" in F.glioma_findings(measurements)[0].text


def test_native_label_map_matches_truth_in_acquisition_space(glioma: SyntheticCase) -> None:
    import nibabel as nib

    source = next(s for s in glioma.truth.series if s.labels_path)
    truth = np.asarray(nib.load(glioma.study_dir / source.labels_path).dataobj)
    native = glioma.mapping.to_native(glioma.labels_grid)
    assert native.shape == (len(glioma.datasets), *truth.shape[:2][::-1])
    voxel = glioma.mapping.geometry.voxel_cm3
    whole = np.count_nonzero(native) * voxel
    assert whole == pytest.approx(glioma.truth.volumes_cm3["WT"], rel=0.05)


def test_edema_left_out_on_request(glioma: SyntheticCase) -> None:
    measurements, _ = F.glioma_measurements(
        glioma.labels_grid, glioma.mapping, None, include_edema=False
    )
    assert {m.name for m in measurements} == {"ET", "NCR", "TC"}


def test_empty_segmentation_reports_no_tumour(glioma: SyntheticCase) -> None:
    empty = np.zeros_like(glioma.labels_grid)
    measurements, _ = F.glioma_measurements(empty, glioma.mapping, None)
    assert all(m.value == 0 for m in measurements)
    finding = F.glioma_findings(measurements)[0]
    assert not finding.present and finding.text == "No tumour segmented."
    lesions, numbered = F.metastasis_lesions(empty, glioma.mapping, "job")
    assert lesions == [] and not numbered.any()


def test_metastasis_lesions_match_truth(metastasis: SyntheticCase) -> None:
    lesions, numbered = F.metastasis_lesions(
        metastasis.labels_grid, metastasis.mapping, "rp-job", min_diameter_mm=2.0
    )
    truth = metastasis.truth.lesions
    assert len(lesions) == metastasis.truth.lesion_count == len(truth)
    assert set(np.unique(numbered)) == set(range(len(lesions) + 1))
    for lesion in lesions:
        match = min(
            truth, key=lambda t: np.linalg.norm(np.subtract(t.centre, lesion.centre_mni_mm))
        )
        assert np.linalg.norm(np.subtract(match.centre, lesion.centre_mni_mm)) < 2.0
        assert lesion.volume_cm3 == pytest.approx(match.volume_cm3, rel=0.05)
        # longest diameter of a blob is at least its equivalent-sphere diameter
        assert match.diameter_mm * 0.9 <= lesion.longest_diameter_mm <= match.diameter_mm * 1.8
        side = "left" if match.centre[0] < -3 else "right" if match.centre[0] > 3 else "midline"
        assert lesion.hemisphere == side
    assert [les.id for les in lesions] == list(range(1, len(lesions) + 1))
    assert lesions[0].volume_cm3 >= lesions[-1].volume_cm3
    uids = {les.tracking_uid for les in lesions}
    assert len(uids) == len(lesions)
    again, _ = F.metastasis_lesions(metastasis.labels_grid, metastasis.mapping, "rp-job")
    assert [les.tracking_uid for les in again] == [les.tracking_uid for les in lesions]
    summary = {m.name: m.value for m in F.metastasis_measurements(lesions)}
    assert summary["lesionCount"] == len(truth)


def test_small_lesions_dropped_below_min_diameter(metastasis: SyntheticCase) -> None:
    lesions, _ = F.metastasis_lesions(
        metastasis.labels_grid, metastasis.mapping, "job", min_diameter_mm=10.0
    )
    assert lesions and all(les.longest_diameter_mm >= 10.0 for les in lesions)


def test_hemorrhage_probabilities_key_slices_and_volume() -> None:
    probs = np.full((10, 6), 0.05, dtype=np.float32)
    probs[4:7, 0] = [0.7, 0.95, 0.8]
    probs[4:7, 5] = [0.6, 0.9, 0.7]
    slices = [F.SliceRef(f"1.2.{i}", i + 1) for i in range(10)]
    study = F.hemorrhage_probabilities(probs)
    assert study["any"] == pytest.approx(0.95) and study["subdural"] == pytest.approx(0.9)
    keys = F.key_slices(probs, slices, 2)
    assert [k.instance_number for k in keys] == [6, 7]
    findings = F.hemorrhage_findings(study, 0.5, 12.0)
    assert findings[0].present and "12.0 cm³" in findings[0].text
    assert [f.code for f in findings if f.present] == ["any", "subdural"]
    # a skull ring with a 50-95 HU collection inside, on flagged slices only
    hu = np.full((6, 64, 64), 30.0, dtype=np.float32)
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 32)
    hu[:, (r > 28) & (r < 31)] = 1000.0
    hu[:, (r > 28.5)] = np.where(hu[:, (r > 28.5)] == 1000.0, 1000.0, -1000.0)
    hu[1:5, 20:30, 20:30] = 70.0
    flagged = np.array([False, True, True, True, False, False])
    volume, mask = F.bleed_volume(hu, (0.5, 0.5, 5.0), flagged)
    assert volume == pytest.approx(3 * 100 * 0.5 * 0.5 * 5.0 / 1000.0, rel=0.05)
    assert not mask[4].any()


def test_atlas_hemisphere_and_regions() -> None:
    assert atlas.hemisphere(-30) == "left" and atlas.hemisphere(30) == "right"
    assert atlas.hemisphere(1) == "midline"
    assert atlas.region((-40, 30, 30)) == "frontal lobe"
    assert atlas.region((30, -50, 50)) == "parietal lobe"
    assert atlas.region((50, -20, -15)) == "temporal lobe"
    assert atlas.region((10, -90, 10)) == "occipital lobe"
    assert atlas.region((20, -65, -35)) == "cerebellum"
    assert atlas.region((0, -28, -25)) == "brainstem"
    assert atlas.describe((-40, 30, 30)) == ("left", "left frontal lobe")


def test_schema_versioning() -> None:
    doc = ResultsDocument(
        job="j", app="glioma", study=StudyRef(study_instance_uid="1", accession="A")
    )
    wire = doc.wire()
    assert wire["schemaVersion"] == "1.0"
    assert load_document(wire) == doc
    with pytest.raises(SchemaVersionError, match="upgrade radpipe"):
        load_document({**wire, "schemaVersion": "2.0"})
    schema = json_schema()
    assert "schemaVersion" in schema["properties"]


def test_instance_map_from_infer_gives_the_same_lesions(metastasis: SyntheticCase) -> None:
    import nibabel as nib

    from radpipe.results.synthetic import to_model_grid

    image = nib.load(metastasis.study_dir / str(metastasis.truth.instances_mni))
    instances = to_model_grid(np.asarray(image.dataobj).astype(np.uint16), image.affine)  # type: ignore[attr-defined]
    from_instances, _ = F.metastasis_lesions(instances, metastasis.mapping, "job")
    from_labels, _ = F.metastasis_lesions(metastasis.labels_grid, metastasis.mapping, "job")
    assert [les.volume_cm3 for les in from_instances] == [les.volume_cm3 for les in from_labels]
