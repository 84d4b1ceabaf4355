"""An ONNX Runtime session for one exported network: CUDA when present, else CPU."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: Environment variable that caps ONNX Runtime's intra-op threads (default: all cores).
THREADS_ENV = "RADPIPE_ORT_THREADS"


def providers() -> list[str]:
    """Execution providers in preference order: CUDA if this onnxruntime build has it."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxNetwork:
    """One loaded network; ``run`` maps a single input array to the first output."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = threads or int(os.environ.get(THREADS_ENV, "0") or 0)
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=providers())
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    @property
    def provider(self) -> str:
        """The execution provider actually in use (first of the session's)."""
        return str(self.session.get_providers()[0])

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on one float32 batch."""
        out = self.session.run([self.output_name], {self.input_name: batch})[0]
        return np.asarray(out)
