"""Whole-study predictors: one exported network plus the work around it.

A predictor takes and returns named numpy tensors exactly as the V2 protocol carries them, so
the same object answers in-process (embedded default) and behind the KServe ModelServer, and
both give the same outputs. Per task:

* ``segmentation3d`` (glioma): ``image`` (C, X, Y, Z) FP32 → ``labels`` (X, Y, Z) UINT8, by
  Gaussian-weighted sliding window over softmax scores, argmax, class → label value.
* ``lesion3d`` (metastasis): ``image`` (C, X, Y, Z) FP32 → ``probability`` (X, Y, Z) FP32.
* ``slices2d`` (hemorrhage): ``slices`` (N, 3, H, W) FP32 → ``probabilities`` (N, K) FP32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from radpipe.serving.onnx_model import OnnxNetwork
from radpipe.serving.sliding_window import sliding_window
from radpipe.serving.spec import ModelSpec

Tensors = dict[str, np.ndarray]


class PredictionError(ValueError):
    """The request does not fit the model (wrong input name, shape or datatype)."""


class Predictor:
    """Runs one model on whole-study tensors."""

    def __init__(self, spec: ModelSpec, threads: int | None = None) -> None:
        self.spec = spec
        self.network = OnnxNetwork(spec.onnx_path, threads)
        self.settings: dict[str, Any] = spec.settings

    @property
    def name(self) -> str:
        """The model's name."""
        return self.spec.name

    @property
    def version(self) -> str:
        """The model's version."""
        return self.spec.version

    def validate(self, inputs: Tensors) -> None:
        """Raise PredictionError unless ``inputs`` match the spec's inputs exactly."""
        expected = {t.name for t in self.spec.inputs}
        if set(inputs) != expected:
            raise PredictionError(
                f"model {self.name} takes inputs {sorted(expected)}, got {sorted(inputs)}"
            )
        for tensor in self.spec.inputs:
            problem = tensor.check(inputs[tensor.name])
            if problem:
                raise PredictionError(f"model {self.name}: {problem}")

    def predict(
        self, inputs: Tensors, progress: Callable[[int, int], None] | None = None
    ) -> Tensors:
        """Validate and run; returns every output named in the spec."""
        self.validate(inputs)
        array = inputs[self.spec.inputs[0].name]
        task = self.spec.task
        if task == "slices2d":
            return {self.spec.outputs[0].name: self._slices(array, progress)}
        scores = sliding_window(
            array,
            tuple(self.settings.get("patch", (128, 128, 128))),
            self.network.run,
            overlap=float(self.settings.get("overlap", 0.5)),
            progress=progress,
        )
        if task == "segmentation3d":
            values = np.asarray(self.settings.get("class_labels", range(scores.shape[0])))
            labels = values.astype(np.uint8)[np.argmax(scores, axis=0)]
            return {self.spec.outputs[0].name: labels}
        return {self.spec.outputs[0].name: np.ascontiguousarray(scores[0], dtype=np.float32)}

    def _slices(
        self, slices: np.ndarray, progress: Callable[[int, int], None] | None
    ) -> np.ndarray:
        batch = int(self.settings.get("batch", 16))
        parts = []
        for start in range(0, slices.shape[0], batch):
            parts.append(self.network.run(np.ascontiguousarray(slices[start : start + batch])))
            if progress is not None:
                progress(min(start + batch, slices.shape[0]), slices.shape[0])
        if not parts:
            return np.zeros((0, self.spec.outputs[0].shape[-1]), dtype=np.float32)
        return np.concatenate(parts).astype(np.float32)
