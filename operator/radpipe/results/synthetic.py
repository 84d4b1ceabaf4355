"""Postprocess inputs made from a synthetic study's ground truth (tests, bench, demo).

A perfect "model" for a synthetic study: the truth label map on the model grid, the exact
native ↔ grid transform from the pose the generator applied, and the source instances of
the series the labels belong to. Scoring postprocess against truth then measures only
postprocess itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from radpipe.preprocessing import grid
from radpipe.results.findings import HEMORRHAGE_CLASSES, SliceRef
from radpipe.results.native import _FLIP, GridMapping, NativeGeometry
from radpipe.synth.truth import StudyTruth


@dataclass
class SyntheticCase:
    """One synthetic study prepared as postprocess would see it."""

    truth: StudyTruth
    study_dir: Path
    datasets: list[Dataset]  # source series, slice order
    mapping: GridMapping
    labels_grid: NDArray[np.uint8] | None = None
    brain_grid: NDArray[np.bool_] | None = None
    probabilities: NDArray[np.float32] | None = None  # CT: N × 6
    slices: list[SliceRef] | None = None


def to_model_grid(array: NDArray[Any], affine_ras: NDArray[Any]) -> NDArray[Any]:
    """Paste an array on a 1 mm RAS grid (integer offset from the model grid) into the grid."""
    offset = np.round(affine_ras[:3, 3] - np.asarray(grid.ORIGIN_RAS)).astype(int)
    if not np.allclose(affine_ras[:3, :3], np.eye(3)):
        raise ValueError("expects a 1 mm RAS-aligned array (nilearn's MNI152 grid)")
    out = np.zeros(grid.SHAPE, dtype=array.dtype)
    src = [
        slice(max(0, -o), min(n, s - o))
        for o, n, s in zip(offset, array.shape, grid.SHAPE, strict=True)
    ]
    dst = [
        slice(max(0, o), max(0, o) + (sl.stop - sl.start))
        for o, sl in zip(offset, src, strict=True)
    ]
    out[tuple(dst)] = array[tuple(src)]
    return out


def read_series(folder: Path) -> tuple[NativeGeometry, list[Dataset]]:
    """Read a series folder and return its geometry and its instances in slice order."""
    datasets = [pydicom.dcmread(path) for path in sorted(folder.glob("*.dcm"))]
    return NativeGeometry.from_datasets(datasets)


def pose_mapping(truth: StudyTruth, geometry: NativeGeometry) -> GridMapping:
    """The exact mapping from the pose: patient LPS = matrix · MNI RAS."""
    matrix = np.asarray(truth.transform.matrix, dtype=float)
    grid_to_native = np.eye(4)
    grid_to_native[:3, :3] = matrix[:3, :3] @ _FLIP  # grid LPS → MNI RAS → patient LPS
    grid_to_native[:3, 3] = matrix[:3, 3]
    return GridMapping(geometry, np.linalg.inv(grid_to_native))


def brain_mask_grid() -> NDArray[np.bool_]:
    """nilearn's MNI152 brain mask on the model grid (what preprocess's mask stands for)."""
    from nilearn.datasets import load_mni152_brain_mask  # slow import: only when used

    image = load_mni152_brain_mask(resolution=1)
    return to_model_grid(np.asarray(image.dataobj) > 0, np.asarray(image.affine))


def load_case(study_dir: Path, *, with_brain: bool = True) -> SyntheticCase:
    """Prepare a generated study (``radpipe.synth.generate_study``) for postprocess."""
    study_dir = Path(study_dir)
    truth = StudyTruth.load(study_dir)
    if truth.modality == "CT":
        return _ct_case(truth, study_dir)
    source = next(s for s in truth.series if s.labels_path)
    geometry, datasets = read_series(study_dir / source.path)
    labels_img: Any = nib.load(study_dir / truth.labels_mni)
    labels = to_model_grid(np.asarray(labels_img.dataobj, dtype=np.uint8), labels_img.affine)
    return SyntheticCase(
        truth=truth,
        study_dir=study_dir,
        datasets=datasets,
        mapping=pose_mapping(truth, geometry),
        labels_grid=labels,
        brain_grid=brain_mask_grid() if with_brain else None,
    )


def _ct_case(truth: StudyTruth, study_dir: Path) -> SyntheticCase:
    source = next(s for s in truth.series if s.slice_labels is not None)
    geometry, datasets = read_series(study_dir / source.path)
    by_uid = {str(ds.SOPInstanceUID): i for i, ds in enumerate(datasets)}
    # slice_labels follow the files' instance order; re-order them into slice order
    files = sorted((study_dir / source.path).glob("*.dcm"))
    labels_per_slice: list[list[str]] = [[] for _ in datasets]
    for path, names in zip(files, source.slice_labels or [], strict=False):
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        labels_per_slice[by_uid[uid]] = names
    probs = np.full((len(datasets), len(HEMORRHAGE_CLASSES)), 0.02, dtype=np.float32)
    for i, names in enumerate(labels_per_slice):
        for name in names:
            probs[i, HEMORRHAGE_CLASSES.index(name)] = 0.95
        if names:
            probs[i, 0] = 0.97
    slices = [
        SliceRef(str(ds.SOPInstanceUID), int(ds.InstanceNumber), float(ds.ImagePositionPatient[2]))
        for ds in datasets
    ]
    return SyntheticCase(
        truth=truth,
        study_dir=study_dir,
        datasets=datasets,
        mapping=pose_mapping(truth, geometry),
        probabilities=probs,
        slices=slices,
    )


def hu_volume(datasets: list[Dataset]) -> NDArray[np.float32]:
    """The CT series in Hounsfield units, (slice, row, column)."""
    return np.stack(
        [
            ds.pixel_array.astype(np.float32) * float(ds.get("RescaleSlope", 1))
            + float(ds.get("RescaleIntercept", 0))
            for ds in datasets
        ]
    )


def _put_result(
    store: Any, job_uid: str, stage: str, outputs: dict[str, Any], data: dict[str, Any]
) -> None:
    from radpipe.pipeline.contract import StageResult, result_key

    result = StageResult(
        job=job_uid,
        stage=stage,
        state="succeeded",
        attempt=1,
        outputs={name: info.as_dict() for name, info in outputs.items()},
        data=data,
    )
    store.put_json(result_key(job_uid, stage), result.model_dump(mode="json"))


def seed_upstream(
    store: Any, job_uid: str, case: SyntheticCase, model: str = "synthetic-truth"
) -> None:
    """Write fetch/classify/preprocess/infer results of ``case`` as those stages would.

    The "model" is the ground truth itself, so postprocess can be scored exactly. Only the
    series the findings map onto is stored (what postprocess and report read).
    """
    import io

    import SimpleITK as sitk

    from radpipe.pipeline.contract import stage_prefix

    truth = case.truth
    role = "ct_brain" if truth.modality == "CT" else "t1c"
    series = next(s for s in truth.series if s.series_class == role)
    fetch = stage_prefix(job_uid, "fetch")
    instances = []
    fetch_outputs = {}
    for ds in case.datasets:
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        name = f"instances/{series.series_instance_uid}/{ds.SOPInstanceUID}.dcm"
        fetch_outputs[name] = store.put_bytes(fetch + name, buffer.getvalue())
        instances.append({"key": fetch + name, "sop_instance_uid": str(ds.SOPInstanceUID)})
    manifest = {
        "study_instance_uid": truth.study_instance_uid,
        "accession_number": truth.accession,
        "series": [
            {
                "series_instance_uid": series.series_instance_uid,
                "series_description": series.description,
                "modality": truth.modality,
                "instances": instances,
            }
        ],
    }
    _put_result(store, job_uid, "fetch", fetch_outputs, {"manifest": manifest})
    _put_result(store, job_uid, "classify", {}, {"roles": {role: series.series_instance_uid}})
    pre = stage_prefix(job_uid, "preprocess")
    infer = stage_prefix(job_uid, "infer")
    pre_outputs: dict[str, Any] = {}
    prediction: NDArray[Any] | None
    if truth.modality == "CT":
        slices = [
            {"sopInstanceUID": s.sop_instance_uid, "instanceNumber": s.instance_number, "z": s.z}
            for s in case.slices or []
        ]
        pre_outputs["slices.json"] = store.put_json(pre + "slices.json", {"slices": slices})
        prediction = case.probabilities
    else:
        tfm = sitk.AffineTransform(3)
        grid_to_native = case.mapping.grid_to_native
        tfm.SetMatrix([float(v) for v in grid_to_native[:3, :3].ravel()])
        tfm.SetTranslation([float(v) for v in grid_to_native[:3, 3]])
        with tempfile_path(".tfm") as path:
            sitk.WriteTransform(tfm, str(path))
            pre_outputs["transforms/t1c_to_mni.tfm"] = store.put_file(
                pre + "transforms/t1c_to_mni.tfm", path
            )
        if case.brain_grid is not None:
            with tempfile_path(".nii.gz") as path:
                nib.save(nib.Nifti1Image(case.brain_grid.astype(np.uint8), grid.affine_ras()), path)
                pre_outputs["mask.nii.gz"] = store.put_file(pre + "mask.nii.gz", path)
        prediction = case.labels_grid
    _put_result(store, job_uid, "preprocess", pre_outputs, {"summary": "ground truth (synthetic)"})
    if prediction is None:
        raise ValueError("the synthetic case has no prediction to seed")
    buffer = io.BytesIO()
    np.save(buffer, prediction)
    out = {"prediction.npy": store.put_bytes(infer + "prediction.npy", buffer.getvalue())}
    _put_result(store, job_uid, "infer", out, {"modelVersions": {model: "truth"}})


class tempfile_path:
    """A temporary file path with the given suffix, removed afterwards."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    def __enter__(self) -> Path:
        import tempfile

        handle, name = tempfile.mkstemp(suffix=self.suffix)
        import os

        os.close(handle)
        self.path = Path(name)
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def cached_study(kind: str, seed: int, cache: Path | None = None, *, small: bool = True) -> Path:
    """A synthetic study, generated once and kept (generation is deterministic).

    Kept under ``$RADPIPE_SYNTH_CACHE`` or ``~/.cache/radpipe/studies``; a study whose
    truth.json is missing (an interrupted generation) is generated again.
    """
    import os
    import shutil

    from radpipe.synth.study import generate_study

    root = cache or Path(
        os.environ.get("RADPIPE_SYNTH_CACHE", Path.home() / ".cache" / "radpipe" / "studies")
    )
    folder = root / f"{kind}-{seed}-{'small' if small else 'full'}"
    if not (folder / "truth" / "truth.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        partial = root / f".{folder.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        generate_study(kind, partial, seed=seed, small=small)
        partial.rename(folder)
    return folder
