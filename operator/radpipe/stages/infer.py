"""The infer stage: the preprocessed study through the app's model, in-process or served.

Inputs (from ``preprocess``): MR ``input.npy`` (4, 240, 240, 155) float32 in
``MR_CHANNELS`` order and ``mask.nii.gz`` (brain mask on the grid); CT ``input.npy``
(N, 3, H, W) float32 (three HU windows per slice) and ``slices.json``.

Where the model runs: ``settings.models.endpoints[<name>].url`` → a KServe V2 server (binary
tensors, retries with backoff, timeout); no URL → ONNX Runtime in this process. Both run the
same predictor code, so both give the same outputs.

Outputs, under ``jobs/<uid>/infer/``:

* glioma (``segmentation3d``): ``prediction.npy`` uint8 (240, 240, 155), BraTS labels 0/1/2/4;
* metastasis (``lesion3d``): ``probability.npy`` float16 on the grid, ``prediction.npy``
  uint16 lesion instances 1..N (connected components of probability ≥ threshold), and
  ``lesions.json`` (per lesion: centre voxel and MNI mm, volume, equivalent diameter, score);
* hemorrhage (``slices2d``): ``prediction.npy`` float32 (N, 6) per-slice probabilities, in
  the order of ``settings.labels``; per-study scores in ``result.json`` data.

``data.modelVersions`` is {model name: version that answered}; the local runner copies it into
the job status, and provenance records version, ONNX checksum and where the model ran.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from radpipe.pipeline.contract import (
    Stage,
    StageContext,
    StageError,
    StageOutcome,
    TransientStageError,
)
from radpipe.preprocessing import grid
from radpipe.serving.backends import Backend, InProcessBackend, RemoteBackend
from radpipe.serving.inputs import bounding_box, mask_outside
from radpipe.serving.lesions import lesion_table
from radpipe.serving.predictors import PredictionError
from radpipe.serving.spec import ModelSpec, ModelSpecError, default_models_dir, load_spec
from radpipe.serving.v2_client import V2Error, V2Unavailable

#: Voxel volume of the model grid in cm³ (1 mm isotropic).
VOXEL_CM3 = float(np.prod(grid.SPACING)) / 1000.0


class InferStage(Stage):
    """Run the app's model(s) on the preprocessed study."""

    name: ClassVar[str] = "infer"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("preprocess",)

    def run(self, ctx: StageContext) -> StageOutcome:
        """Load the inputs, run each model of the app, write predictions."""
        if not ctx.app.models:
            raise StageError("the app names no model", hint="add a models: entry to the app")
        outcome = StageOutcome()
        versions: dict[str, str] = {}
        provenance: list[dict[str, Any]] = []
        for ref in ctx.app.models:
            spec = _spec(ctx, ref.inference_service)
            backend = _backend(ctx, spec)
            started = time.perf_counter()
            if spec.task == "slices2d":
                data, answer = _run_ct(ctx, spec, backend)
            else:
                data, answer = _run_mr(ctx, spec, backend)
            pinned = ref.version if ref.version != "latest" else None
            endpoint = ctx.settings.models.endpoints.get(spec.name)
            pinned = pinned or (endpoint.version if endpoint else None)
            if pinned and answer.model_version != pinned:
                raise StageError(
                    f"model {spec.name} answered as version {answer.model_version}, "
                    f"but version {pinned} is pinned",
                    hint="deploy the pinned version or set the app's model version to latest",
                )
            versions[answer.model_name] = answer.model_version
            outcome.data.update(data)
            outcome.metrics[f"{spec.name}.seconds"] = round(time.perf_counter() - started, 3)
            provenance.append(
                {
                    "name": answer.model_name,
                    "version": answer.model_version,
                    "role": ref.role,
                    "task": spec.task,
                    "onnxSha256": spec.sha256(),
                    "where": backend.where,
                }
            )
        outcome.data["modelVersions"] = versions
        outcome.provenance["models"] = provenance
        ctx.progress(1.0, "inference done")
        return outcome


def _spec(ctx: StageContext, name: str) -> ModelSpec:
    directory = Path(ctx.settings.models.dir or default_models_dir())
    try:
        return load_spec(directory / name)
    except ModelSpecError as err:
        raise StageError(
            f"model {name}: {err}", hint=f"check models.dir ({directory}) in the configuration"
        ) from err


def _backend(ctx: StageContext, spec: ModelSpec) -> Backend:
    endpoint = ctx.settings.models.endpoints.get(spec.name)
    if endpoint is not None and endpoint.url:
        return RemoteBackend(
            spec,
            endpoint.url,
            timeout=endpoint.timeout_seconds,
            attempts=endpoint.attempts,
            backoff=endpoint.backoff_seconds,
            max_backoff=endpoint.max_backoff_seconds,
        )
    return InProcessBackend(spec)


def _infer(ctx: StageContext, backend: Backend, inputs: dict[str, np.ndarray]) -> Any:
    """Run a backend, turning its failures into stage errors a person can act on."""

    def progress(done: int, total: int) -> None:
        ctx.progress(0.1 + 0.8 * done / max(total, 1), f"inference {done}/{total}")

    try:
        return backend.infer(inputs, progress)
    except V2Unavailable as err:
        raise TransientStageError(
            str(err), hint=f"check that the model server at {backend.where} is running"
        ) from err
    except V2Error as err:
        raise StageError(str(err), hint="the input does not fit the served model") from err
    except PredictionError as err:
        raise StageError(str(err), hint="the preprocessed input does not fit the model") from err


def _load_npy(ctx: StageContext, name: str) -> np.ndarray:
    path = ctx.fetch_input("preprocess", name, ctx.workdir / name)
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        raise StageError(f"preprocess output {name} is not a numpy array: {err}") from err


def _run_mr(ctx: StageContext, spec: ModelSpec, backend: Backend) -> tuple[dict[str, Any], Any]:
    import nibabel as nib

    volume = _load_npy(ctx, "input.npy")
    expected = (len(grid.MR_CHANNELS), *grid.SHAPE)
    if volume.shape != expected:
        raise StageError(
            f"preprocess input.npy has shape {volume.shape}, the MR models need {expected}",
            hint="re-run preprocess for this job",
        )
    mask_path = ctx.fetch_input("preprocess", "mask.nii.gz", ctx.workdir / "mask.nii.gz")
    mask = np.asarray(nib.load(str(mask_path)).dataobj) > 0  # type: ignore[attr-defined]
    if mask.shape != grid.SHAPE:
        raise StageError(f"mask.nii.gz has shape {mask.shape}, expected {grid.SHAPE}")
    if not mask.any():
        raise StageError("the brain mask is empty", hint="check the preprocess stage's QC")
    channels = [grid.MR_CHANNELS.index(c) for c in spec.settings.get("channels", [])] or list(
        range(volume.shape[0])
    )
    # Crop to the brain: what the model never looks at is not sent nor computed.
    box = bounding_box(mask, margin=int(spec.settings.get("crop_margin", 4)))
    image = mask_outside(volume[channels], mask)[(slice(None), *box)]
    ctx.progress(0.1, f"running {spec.name} on {list(image.shape[1:])} voxels")
    answer = _infer(ctx, backend, {spec.inputs[0].name: np.ascontiguousarray(image)})
    result = answer.outputs[spec.outputs[0].name]
    if result.shape != image.shape[1:]:
        raise StageError(f"model {spec.name} returned shape {result.shape} for {image.shape}")
    if spec.task == "segmentation3d":
        labels = np.zeros(grid.SHAPE, dtype=np.uint8)
        labels[box] = result
        labels[~mask] = 0
        _put_npy(ctx, "prediction.npy", labels)
        counts = {
            int(v): int(n) for v, n in zip(*np.unique(labels, return_counts=True), strict=True)
        }
        et, ncr, ed = counts.get(4, 0), counts.get(1, 0), counts.get(2, 0)
        volumes = {
            "ET": et * VOXEL_CM3,
            "TC": (et + ncr) * VOXEL_CM3,
            "WT": (et + ncr + ed) * VOXEL_CM3,
            "brain": int(mask.sum()) * VOXEL_CM3,
        }
        return {"volumesCm3": {k: round(v, 3) for k, v in volumes.items()}}, answer
    probability = np.zeros(grid.SHAPE, dtype=np.float32)
    probability[box] = result
    probability[~mask] = 0.0
    threshold = float(spec.settings.get("threshold", 0.5))
    instances, lesions = lesion_table(
        probability, threshold, int(spec.settings.get("min_voxels", 3)), grid.affine_ras()
    )
    _put_npy(ctx, "probability.npy", probability.astype(np.float16))
    _put_npy(ctx, "prediction.npy", instances)
    ctx.put_json("lesions.json", lesions)
    return {"lesionCount": len(lesions), "threshold": threshold}, answer


def _run_ct(ctx: StageContext, spec: ModelSpec, backend: Backend) -> tuple[dict[str, Any], Any]:
    slices = _load_npy(ctx, "input.npy")
    want = spec.inputs[0].shape
    if slices.ndim != 4 or any(w not in (-1, s) for w, s in zip(want, slices.shape, strict=True)):
        raise StageError(
            f"preprocess input.npy has shape {slices.shape}, model {spec.name} needs {list(want)}",
            hint="re-run preprocess for this job",
        )
    ctx.progress(0.1, f"running {spec.name} on {slices.shape[0]} slices")
    answer = _infer(ctx, backend, {spec.inputs[0].name: slices.astype(np.float32, copy=False)})
    probs = answer.outputs[spec.outputs[0].name].astype(np.float32)
    if probs.shape[0] != slices.shape[0]:
        raise StageError(f"model {spec.name} returned {probs.shape[0]} rows for {len(slices)}")
    _put_npy(ctx, "prediction.npy", probs)
    names = list(spec.settings.get("labels", [f"p{i}" for i in range(probs.shape[1])]))
    # Per-study score: the most suspicious slice, per output (as a radiologist reads a scan).
    study = {
        n: round(float(probs[:, i].max()), 4) if len(probs) else 0.0 for i, n in enumerate(names)
    }
    key = {n: int(np.argmax(probs[:, i])) if len(probs) else -1 for i, n in enumerate(names)}
    return {"studyProbabilities": study, "keySliceIndex": key, "labels": names}, answer


def _put_npy(ctx: StageContext, name: str, array: np.ndarray) -> None:
    path = ctx.workdir / f"out-{name}"
    np.save(path, array, allow_pickle=False)
    ctx.put_file(name, path)
    path.unlink()
