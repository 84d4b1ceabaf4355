"""Where a model runs: ONNX Runtime in-process (embedded default) or a V2 model server.

Both backends take and return the same named tensors and report the model name and version
that answered, so the infer stage does not care which one it has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from radpipe.serving.predictors import Predictor
from radpipe.serving.spec import ModelSpec
from radpipe.serving.v2_client import V2Client

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Answer:
    """Outputs plus who made them."""

    outputs: dict[str, np.ndarray]
    model_name: str
    model_version: str


class Backend(Protocol):
    """Runs one model on whole-study tensors."""

    where: str

    def infer(self, inputs: dict[str, np.ndarray], progress: Progress | None = None) -> Answer:
        """Run the model; outputs are every output of the model's spec."""


_PREDICTORS: dict[tuple[str, str], Predictor] = {}


def _predictor(spec: ModelSpec) -> Predictor:
    # One ONNX Runtime session per model file per process: loading costs as much as a study.
    key = (str(spec.onnx_path), spec.version)
    if key not in _PREDICTORS:
        _PREDICTORS[key] = Predictor(spec)
    return _PREDICTORS[key]


class InProcessBackend:
    """ONNX Runtime in this process."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.predictor = _predictor(spec)
        self.where = f"in-process ({self.predictor.network.provider})"

    def infer(self, inputs: dict[str, np.ndarray], progress: Progress | None = None) -> Answer:
        """Run the predictor here."""
        outputs = self.predictor.predict(inputs, progress)
        return Answer(outputs, self.spec.name, self.spec.version)


class RemoteBackend:
    """A KServe V2 server at ``url``; binary tensors, retries and timeouts by V2Client."""

    def __init__(self, spec: ModelSpec, url: str, **client_options: Any) -> None:
        self.spec = spec
        self.client = V2Client(url, **client_options)
        self.where = url

    def infer(self, inputs: dict[str, np.ndarray], progress: Progress | None = None) -> Answer:
        """One V2 infer call (the server does the whole study)."""
        result = self.client.infer(self.spec.name, inputs, [t.name for t in self.spec.outputs])
        if progress is not None:
            progress(1, 1)
        return Answer(result.outputs, result.model_name, result.model_version)
