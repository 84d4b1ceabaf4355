"""Synthetic MR cases through the real path: DICOM study → the preprocess stage's workflow.

:mod:`models.common.mr_grid` renders cases straight onto the model grid, which is fast but
only approximates what the pipeline feeds the models. Here a case is a full synthetic DICOM
study (``radpipe.synth.generate_study``, vendor protocols: thick 2D T2/FLAIR, 3D T1/T1c,
pose, noise, coil bias) run through :func:`radpipe.preprocessing.mr_workflow.run_mr_workflow`
exactly as the preprocess stage runs it (dcm2niix, N4, registration to MNI, resampling,
brain mask, z-score) — so the image is what the infer stage reads, and the truth is the
generator's label map on the model grid.

Series are picked by their true class (the classifier is not part of what is measured
here); where a class has several series, the one with the most slices (3D / thinnest) wins,
as the apps' ``prefer`` rules do.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from models.common.cache import WORK, cached_cases
from models.common.mr_grid import CHANNELS, MRCase, brain_box

from radpipe.results.synthetic import cached_study, to_model_grid
from radpipe.serving.inputs import mask_outside
from radpipe.synth.truth import StudyTruth

#: Generated DICOM studies (large; reproducible, never committed).
STUDIES = WORK / "studies"


def _series_dirs(truth: StudyTruth, folder: Path) -> dict[str, Path]:
    best: dict[str, tuple[int, Path]] = {}
    for s in truth.series:
        known = best.get(s.series_class)
        if s.series_class in CHANNELS and (known is None or s.n_instances > known[0]):
            best[s.series_class] = (s.n_instances, folder / s.path)
    return {role: path for role, (_, path) in best.items()}


def _grid(folder: Path, name: str) -> np.ndarray:
    img = nib.load(folder / name)
    return to_model_grid(np.asarray(img.dataobj), np.asarray(img.affine))  # type: ignore[attr-defined]


def make_real_case(kind: str, seed: int, *, crop: bool = True) -> MRCase:
    """One ``glioma``/``metastasis``/``normal`` study through the real preprocessing.

    ``crop`` cuts the result to :func:`mr_grid.brain_box` (what training uses); without it
    the arrays are on the full model grid.
    """
    from radpipe.preprocessing.mr_workflow import MRConfig, run_mr_workflow

    folder = cached_study(f"mr-{kind}", seed, STUDIES, small=False)
    truth = StudyTruth.load(folder)
    work = Path(tempfile.mkdtemp(prefix=f"mr-real-{kind}-{seed}-"))
    try:
        result = run_mr_workflow(_series_dirs(truth, folder), work, MRConfig(processes=1))
        image = np.load(result.input_npy).astype(np.float32)
        mask = np.asarray(nib.load(result.mask).dataobj) > 0  # type: ignore[attr-defined]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    labels = _grid(folder, truth.labels_mni).astype(np.uint8)
    instances = np.zeros(labels.shape, np.uint16)
    if truth.instances_mni:
        instances = _grid(folder, truth.instances_mni).astype(np.uint16)
    image = mask_outside(image, mask)
    box = brain_box() if crop else tuple(slice(0, s) for s in mask.shape)
    instances = instances[box]
    diameters: dict[int, float] = {}
    counts = np.bincount(instances.ravel())
    for i in range(1, counts.size):
        if counts[i]:
            diameters[i] = float((6.0 * counts[i] / np.pi) ** (1.0 / 3.0))
    return MRCase(
        image[(slice(None), *box)].astype(np.float16),
        labels[box],
        instances,
        mask[box],
        diameters,
    )


def _arrays(kind: str, seed: int) -> dict[str, np.ndarray]:
    case = make_real_case(kind, seed)
    ids = np.array(sorted(case.diameters), dtype=np.int64)
    return {
        "image": case.image,
        "labels": case.labels,
        "instances": case.instances,
        "mask": case.mask,
        "ids": ids,
        "diameters": np.array([case.diameters[i] for i in ids], dtype=np.float64),
    }


def _make_metastasis(seed: int) -> dict[str, np.ndarray]:
    return _arrays("metastasis", seed)


def _make_glioma(seed: int) -> dict[str, np.ndarray]:
    return _arrays("glioma", seed)


def _make_normal(seed: int) -> dict[str, np.ndarray]:
    return _arrays("normal", seed)


MAKERS = {"metastasis": _make_metastasis, "glioma": _make_glioma, "normal": _make_normal}


def real_cases(kind: str, seeds: Sequence[int], workers: int = 1) -> list[dict[str, np.ndarray]]:
    """Real-path cases of ``kind``, cached as var/train/mr-real/<kind>/cases/<seed>.npz."""
    return cached_cases(f"mr-real/{kind}", MAKERS[kind], seeds, workers=workers)


def as_case(arrays: dict[str, np.ndarray]) -> MRCase:
    """A cached real-path case back as an :class:`MRCase`."""
    diameters = {int(i): float(d) for i, d in zip(arrays["ids"], arrays["diameters"], strict=True)}
    return MRCase(arrays["image"], arrays["labels"], arrays["instances"], arrays["mask"], diameters)


def main() -> None:
    """Build the real-path cache: ``python -m models.common.mr_real KIND FIRST COUNT``."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("kind", choices=sorted(MAKERS))
    parser.add_argument("first", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    real_cases(args.kind, range(args.first, args.first + args.count), args.workers)


if __name__ == "__main__":
    main()
