"""Synthetic studies: geometry consistency, truth vs label maps, pathology, determinism."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from scipy import ndimage as ndi

from radpipe.synth import StudyTruth, generate_study
from radpipe.synth import pathology as pa
from radpipe.synth.anatomy import base_anatomy
from radpipe.synth.study import _study_info
from tests.synth_fixtures import small_ct, small_mr  # noqa: F401  (session fixtures)


def _nifti(path: Path) -> nib.Nifti1Image:
    img = nib.load(path)
    assert isinstance(img, nib.Nifti1Image)
    return img


def _read_series(folder: Path) -> tuple[np.ndarray, np.ndarray, list[pydicom.FileDataset]]:
    """Volume (slices, rows, cols) in real-world values and its voxel→LPS affine."""
    dss = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    iop = np.asarray(dss[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    dss.sort(key=lambda d: float(np.dot(normal, np.asarray(d.ImagePositionPatient, float))))
    vol = np.stack([d.pixel_array.astype(np.float32) for d in dss])
    slope = float(getattr(dss[0], "RescaleSlope", 1.0))
    vol = vol * slope + float(getattr(dss[0], "RescaleIntercept", 0.0))
    pos = np.array([d.ImagePositionPatient for d in dss], dtype=float)
    steps = np.diff(pos @ normal)
    assert np.allclose(steps, steps[0], atol=1e-3), "slices must be evenly spaced"
    dr, dc = (float(v) for v in dss[0].PixelSpacing)
    aff = np.eye(4)
    aff[:3, 0] = iop[:3] * dc
    aff[:3, 1] = iop[3:] * dr
    aff[:3, 2] = normal * (steps[0] if len(steps) else 1.0)
    aff[:3, 3] = pos[0]
    return vol, aff, dss


def _expected_t1_in_series(
    truth: StudyTruth, aff: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """The noise-free T1 contrast of the template, sampled at the series' voxel centres."""
    base = base_anatomy()
    expected = base.gm * 0.5 + base.wm * 0.72 + base.csf * 0.18
    n, r, c = shape
    kk, rr, cc = np.meshgrid(np.arange(n), np.arange(r), np.arange(c), indexing="ij")
    vox = np.stack([cc.ravel(), rr.ravel(), kk.ravel(), np.ones(cc.size)])
    lps = aff @ vox
    mni = np.linalg.inv(np.asarray(truth.transform.matrix)) @ lps
    ijk = np.linalg.inv(base.affine) @ mni
    return ndi.map_coordinates(expected, ijk[:3], order=1).reshape(shape)


def test_truth_lists_every_series_and_file(small_mr: tuple[Path, StudyTruth]) -> None:  # noqa: F811
    out, truth = small_mr
    assert StudyTruth.load(out) == truth
    classes = [s.series_class for s in truth.series]
    for needed in ("localizer", "t1", "t1c", "t2", "flair", "dwi", "adc", "derived"):
        assert needed in classes
    for s in truth.series:
        files = list((out / s.path).glob("*.dcm"))
        assert len(files) == s.n_instances > 0
        ds = pydicom.dcmread(files[0], stop_before_pixels=True)
        assert ds.SeriesInstanceUID == s.series_instance_uid
        assert ds.StudyInstanceUID == truth.study_instance_uid
        assert ds.AccessionNumber == truth.accession and ds.PatientID == truth.patient_id
    assert truth.patient_name.startswith("SYNTH^GLIOMA^")


def test_dicom_geometry_matches_phantom(small_mr: tuple[Path, StudyTruth]) -> None:  # noqa: F811
    """Reconstruct T1 from DICOM positions alone and compare with the template at those points."""
    out, truth = small_mr
    t1 = truth.series_by_class("t1")[0]
    vol, aff, _ = _read_series(out / t1.path)
    expected = _expected_t1_in_series(truth, aff, vol.shape)
    brain = expected > 0.3
    corr = np.corrcoef(vol[brain], expected[brain])[0, 1]
    assert corr > 0.7, corr
    # a one-voxel-per-mm error in the geometry would wreck the agreement: check it is sensitive
    shifted = np.roll(expected, 6, axis=2)
    assert np.corrcoef(vol[brain], shifted[brain])[0, 1] < corr - 0.1


def test_acquisition_labels_share_the_dicom_geometry(small_mr: tuple[Path, StudyTruth]) -> None:  # noqa: F811
    out, truth = small_mr
    t1c = truth.series_by_class("t1c")[0]
    assert t1c.labels_path
    vol, aff, _ = _read_series(out / t1c.path)
    img = _nifti(out / t1c.labels_path)
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ aff
    assert np.allclose(img.affine, ras, atol=1e-3)
    labels = np.asarray(img.dataobj).transpose(2, 1, 0)
    assert labels.shape == vol.shape
    # enhancing tumour is the brightest tissue on T1c; edema darker than enhancing rim
    assert vol[labels == pa.ET].mean() > 1.3 * vol[labels == pa.ED].mean()


def test_truth_volumes_match_label_maps(small_mr: tuple[Path, StudyTruth]) -> None:  # noqa: F811
    out, truth = small_mr
    labels = np.asarray(_nifti(out / truth.labels_mni).dataobj)
    assert labels.shape == (197, 233, 189)  # nilearn's MNI152 1 mm grid
    cm3 = truth.transform.scale**3 / 1000.0
    v = truth.volumes_cm3
    for name, code in (("ET", 4), ("NCR", 1), ("ED", 2)):
        assert v[name] == pytest.approx(np.count_nonzero(labels == code) * cm3, rel=1e-3)
        assert v[name] > 0
    assert v["TC"] == pytest.approx(v["ET"] + v["NCR"], rel=1e-3)
    assert v["WT"] == pytest.approx(v["TC"] + v["ED"], rel=1e-3)
    assert 900 < truth.brain_cm3 < 2200
    # the acquisition-space map sees about the same whole tumour
    t1c = truth.series_by_class("t1c")[0]
    img = _nifti(out / str(t1c.labels_path))
    vox_cm3 = abs(np.linalg.det(img.affine[:3, :3])) / 1000.0
    wt_acq = np.count_nonzero(np.asarray(img.dataobj)) * vox_cm3
    assert wt_acq == pytest.approx(v["WT"], rel=0.2)


def test_ct_hemorrhage_hu_and_slice_labels(small_ct: tuple[Path, StudyTruth]) -> None:  # noqa: F811
    out, truth = small_ct
    assert truth.modality == "CT" and truth.hemorrhage_subtypes
    classes = [s.series_class for s in truth.series]
    assert classes.count("ct_brain") == 2 and "ct_bone" in classes and "ct_scout" in classes
    thin = next(s for s in truth.series if s.labels_path)
    vol, _aff, dss = _read_series(out / thin.path)
    assert dss[0].RescaleIntercept is not None and "AXIAL" in dss[0].ImageType
    labels = np.asarray(_nifti(out / str(thin.labels_path)).dataobj).transpose(2, 1, 0)
    blood = vol[labels > 0]
    assert 35 < np.median(blood) < 95  # acute blood
    brain = vol[(vol > 15) & (vol < 50)]
    assert 20 < np.median(brain) < 45
    assert thin.slice_labels is not None and len(thin.slice_labels) == thin.n_instances
    seen = {name for sl in thin.slice_labels for name in sl}
    assert seen <= set(truth.hemorrhage_subtypes) and seen


def test_each_hemorrhage_subtype_can_be_painted() -> None:
    base = base_anatomy()
    path = pa.hemorrhage(base, np.random.default_rng(4), subtypes=list(pa.HEMORRHAGE_CODES))
    counts = np.bincount(path.labels.ravel(), minlength=6)
    for name, code in pa.HEMORRHAGE_CODES.items():
        assert counts[code] > 50, name
        assert 45 <= path.blood_hu[code] <= 85


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metastases_count_and_size(seed: int) -> None:
    base = base_anatomy()
    path = pa.metastases(base, np.random.default_rng(seed))
    assert 1 <= len(path.lesions) <= 15
    assert path.instances is not None
    for les in path.lesions:
        assert 2.0 <= les.nominal_diameter_mm <= 30.0
        assert np.count_nonzero(path.instances == les.index) > 0
    # every lesion core enhances
    assert np.all(np.isin(path.labels[path.instances > 0], [pa.ET, pa.NCR]))


def test_glioma_has_brats_structure() -> None:
    base = base_anatomy()
    for seed in range(3):
        path = pa.glioma(base, np.random.default_rng(seed))
        counts = np.bincount(path.labels.ravel(), minlength=5)
        assert counts[pa.ET] > 1000 and counts[pa.ED] > counts[pa.ET]
        assert not np.any(path.labels[~base.icv])  # inside the head's envelope only


def test_metastasis_study_counts_lesions(tmp_path: Path) -> None:
    a = generate_study("mr-metastasis", tmp_path / "a", seed=5, vendor="philips", small=True)
    assert a.kind == "mr-metastasis" and 1 <= a.lesion_count <= 15
    assert all(les.label == "metastasis" and les.volume_cm3 > 0 for les in a.lesions)
    assert all(0.5 < les.diameter_mm < 40 for les in a.lesions)
    assert a.vendor == "philips" and a.manufacturer.startswith("Philips")
    assert (tmp_path / "a" / str(a.instances_mni)).is_file()


def test_uids_follow_seed_and_identifiers() -> None:
    def info(seed: int, pid: str | None) -> str:
        rng = np.random.default_rng(0)
        return _study_info("mr-glioma", seed, "ge", rng, pid, None, None, "MR").study_uid

    assert info(1, None) == info(1, None)
    assert info(1, None) != info(2, None)
    assert info(1, None) != info(1, "OTHER-ID")


def test_writer_process_writes_the_same_bytes(tmp_path: Path) -> None:
    """Full-size studies write DICOM in a second process; the files must not change with it."""
    here = generate_study("mr-glioma", tmp_path / "here", seed=3, small=True, parallel=False)
    there = generate_study("mr-glioma", tmp_path / "there", seed=3, small=True, parallel=True)
    files = sorted(p.relative_to(tmp_path / "here") for p in (tmp_path / "here").rglob("*.dcm"))
    assert len(files) == sum(s.n_instances for s in here.series) > 0
    assert [s.n_instances for s in there.series] == [s.n_instances for s in here.series]
    for name in files:
        assert (tmp_path / "there" / name).read_bytes() == (tmp_path / "here" / name).read_bytes()
