"""The preprocess stage run the way the runner runs it, on small CT stacks and odd inputs.

``stage_series`` (also used by the MR integration tests) puts DICOM files into the store
as the fetch stage would, with a manifest, and writes the classify result that picks them.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from radpipe.api.models import AnalysisJob, JobSpec
from radpipe.config import Settings
from radpipe.local.runner import LocalRunner
from radpipe.pipeline.contract import StageResult, result_key
from radpipe.pipeline.executor import execute_stage
from radpipe.pipeline.registry import get_stage
from radpipe.preprocessing.ct import CT_INPUT_SIZE, CT_WINDOWS
from radpipe.stages.preprocess import PreprocessStage


def stage_series(
    runner: LocalRunner, app: str, roles: dict[str, list[Path]]
) -> tuple[AnalysisJob, dict[str, str]]:
    """A submitted job whose fetch and classify results hold ``roles`` (role → files)."""
    import pydicom

    job = runner.submit(JobSpec.model_validate({"accession": "PRE1", "app": app}))
    prefix = f"jobs/{job.uid}/fetch/"
    outputs: dict[str, dict[str, object]] = {}
    series, chosen = [], {}
    for role, files in roles.items():
        first = pydicom.dcmread(files[0], stop_before_pixels=True)
        uid = str(first.SeriesInstanceUID)
        chosen[role] = uid
        instances = []
        for path in files:
            sop = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            name = f"instances/{uid}/{sop}.dcm"
            info = runner.store.put_file(prefix + name, path)
            outputs[name] = info.as_dict()
            instances.append({"key": prefix + name, "sop_instance_uid": sop})
        series.append({"series_instance_uid": uid, "instances": instances})
    for stage, data, outs in (
        ("fetch", {"manifest": {"series": series}}, outputs),
        ("classify", {"roles": chosen}, {}),
    ):
        result = StageResult(
            job=job.uid, stage=stage, state="succeeded", attempt=1, outputs=outs, data=data
        )
        runner.store.put_json(result_key(job.uid, stage), result.model_dump(mode="json"))
    return job, chosen


def run_preprocess(runner: LocalRunner, job: AnalysisJob, app: str) -> StageResult:
    """Execute the preprocess stage of ``job``."""
    return execute_stage(
        job, runner.apps()[app].spec, "preprocess", runner.store, runner.settings
    ).result


def write_ct_stack(
    folder: Path,
    n: int = 24,
    *,
    size: int = 48,
    spacing: float = 5.0,
    tilt_deg: float = 0.0,
    drop: tuple[int, ...] = (),
    shift_slice: int | None = None,
    head: bool = True,
    normal_down: bool = False,
) -> list[Path]:
    """A small axial CT stack: a water-density disc in an air field, bone ring around it.

    ``tilt_deg`` shears the stack like a gantry tilt (positions drift in y per slice);
    ``drop`` leaves slices out; ``shift_slice`` moves one slice 1.5 mm (uneven spacing);
    ``normal_down`` stores the stack with IOP whose normal points to the feet.
    """
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    hu = np.full((size, size), -1000.0)
    if head:
        hu[r < size * 0.42] = 1000.0  # skull
        hu[r < size * 0.36] = 35.0  # brain
        hu[(r < 4) & (yy < size / 2)] = 70.0  # a small hyperdensity, top half of the image
    stored = (hu + 1024).astype(np.uint16)
    paths = []
    iop = [1.0, 0.0, 0.0, 0.0, -1.0, 0.0] if normal_down else [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    for k in range(n):
        if k in drop:
            continue
        z = k * spacing + (1.5 if k == shift_slice else 0.0)
        y = np.tan(np.radians(tilt_deg)) * z
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = "1.2.3"
        ds.SeriesInstanceUID = series_uid
        ds.Modality = "CT"
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImageOrientationPatient = iop
        ds.ImagePositionPatient = [-50.0, -50.0 + y, (-1 if normal_down else 1) * z]
        ds.PixelSpacing = [2.0, 2.0]
        ds.SliceThickness = spacing
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleSlope = 1
        ds.RescaleIntercept = -1024
        ds.PixelData = (stored + k).tobytes()  # +k HU per slice: slice order is visible
        path = folder / f"{k:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@pytest.fixture
def runner(settings: Settings) -> LocalRunner:
    """A local runner on the test's own store."""
    return LocalRunner(settings)


def test_stage_is_registered() -> None:
    assert get_stage("preprocess") is PreprocessStage
    assert PreprocessStage.requires == ("fetch", "classify")


def test_ct_stage_writes_windows_slices_and_hu(runner: LocalRunner, tmp_path: Path) -> None:
    # Stored feet-last (normal toward the feet) to check the output is ordered upward.
    files = write_ct_stack(tmp_path / "ct", normal_down=True)
    job, chosen = stage_series(runner, "hemorrhage", {"ct_brain": files})
    result = run_preprocess(runner, job, "hemorrhage")
    assert result.state == "succeeded", result.message
    prefix = f"jobs/{job.uid}/preprocess/"
    path = tmp_path / "input.npy"
    runner.store.get_file(prefix + "input.npy", path)
    x = np.load(path)
    assert x.shape == (24, 3, CT_INPUT_SIZE, CT_INPUT_SIZE) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    # Brain is 35 HU + k on stored slice k, whose z is -5k: the lowest slice (k = 23) comes
    # first. Brain window 40/80 maps HU h to h / 80.
    centre = CT_INPUT_SIZE // 2
    assert x[0, 0, centre, centre + 40] == pytest.approx((35 + 23) / 80, abs=0.01)
    assert x[-1, 0, centre, centre + 40] == pytest.approx((35 + 0) / 80, abs=0.01)
    assert CT_WINDOWS[0][1:] == (40.0, 80.0)
    slices = runner.store.get_json(prefix + "slices.json")
    assert slices["SeriesInstanceUID"] == chosen["ct_brain"]
    z = [s["z"] for s in slices["slices"]]
    assert z == sorted(z) and len(z) == 24  # inferior → superior
    # Rows were stored toward anterior (IOP column (0, -1, 0)): flipped back, so the
    # hyperdensity (top half of the stored image, i.e. posterior) is now in the bottom half.
    assert x[-1, 0, centre + 10, centre] == pytest.approx(70 / 80, abs=0.01)
    assert x[-1, 0, centre - 10, centre] == pytest.approx(35 / 80, abs=0.01)
    hu_path = tmp_path / "hu.nii.gz"
    runner.store.get_file(prefix + "hu.nii.gz", hu_path)
    hu = nib.load(hu_path)
    assert hu.shape == (48, 48, 24)
    assert np.asarray(hu.dataobj).min() == -1000
    qc = runner.store.get_json(prefix + "qc.json")
    assert qc["status"] == "pass" and not result.data["reviewRecommended"]
    prov = runner.store.get_json(prefix + "provenance.json")
    assert prov["inputs"]["ct_brain"]["SeriesInstanceUID"] == chosen["ct_brain"]
    assert {"radpipe", "SimpleITK", "nipype"} <= set(prov["software"])
    assert result.metrics["peak_memory_mb"] > 0


def test_ct_gantry_tilt_keeps_slices_and_writes_sheared_affine(
    runner: LocalRunner, tmp_path: Path
) -> None:
    job, _ = stage_series(
        runner, "hemorrhage", {"ct_brain": write_ct_stack(tmp_path / "ct", tilt_deg=12.0)}
    )
    result = run_preprocess(runner, job, "hemorrhage")
    assert result.state == "succeeded", result.message
    assert result.data["qc"]["metrics"]["gantryTiltDeg"] == pytest.approx(12.0, abs=0.1)
    hu_path = tmp_path / "hu.nii.gz"
    runner.store.get_file(f"jobs/{job.uid}/preprocess/hu.nii.gz", hu_path)
    affine = nib.load(hu_path).affine
    # The slice axis steps 5 mm up and tan(12°)·5 mm along y: the shear is kept.
    assert affine[2, 2] == pytest.approx(5.0, abs=1e-3)
    assert abs(affine[1, 2]) == pytest.approx(np.tan(np.radians(12.0)) * 5.0, abs=1e-3)


def test_ct_uneven_spacing_is_flagged_and_missing_slices_refused(
    runner: LocalRunner, tmp_path: Path
) -> None:
    job, _ = stage_series(
        runner, "hemorrhage", {"ct_brain": write_ct_stack(tmp_path / "a", shift_slice=10)}
    )
    result = run_preprocess(runner, job, "hemorrhage")
    assert result.state == "succeeded", result.message
    assert result.data["reviewRecommended"] is True
    assert result.data["qc"]["metrics"]["volumeResampledToEvenSpacing"] is True

    job, _ = stage_series(
        runner, "hemorrhage", {"ct_brain": write_ct_stack(tmp_path / "b", n=30, drop=(10, 11))}
    )
    result = run_preprocess(runner, job, "hemorrhage")
    assert result.state == "failed" and not result.retryable
    assert "slices are missing" in (result.message or "")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"n": 12}, "at least 20"),
        ({"head": False}, "not a head CT"),
    ],
)
def test_ct_unusable_input_fails_with_reason(
    runner: LocalRunner, tmp_path: Path, kwargs: dict[str, object], reason: str
) -> None:
    job, _ = stage_series(
        runner,
        "hemorrhage",
        {"ct_brain": write_ct_stack(tmp_path / "ct", **kwargs)},  # type: ignore[arg-type]
    )
    result = run_preprocess(runner, job, "hemorrhage")
    assert result.state == "failed"
    assert reason in (result.message or "")


def test_mr_missing_required_role_fails_before_any_work(
    runner: LocalRunner, tmp_path: Path
) -> None:
    # The metastasis app requires t1c; a FLAIR alone is refused without running anything.
    files = write_ct_stack(tmp_path / "flair")  # geometry is irrelevant: refused first
    job, _ = stage_series(runner, "metastasis", {"flair": files})
    result = run_preprocess(runner, job, "metastasis")
    assert result.state == "failed"
    assert "required role(s) t1c" in (result.message or "")
    assert json.dumps(result.data) == "{}"
