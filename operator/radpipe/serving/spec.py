"""What a model directory holds and how a served model describes itself.

A model lives in ``models/<name>/``: ``model.onnx`` (the network), ``model.json`` (this spec:
version, task, tensors, labels, inference settings), ``MODEL_CARD.md`` and ``metrics.json``.
The directory name is the model's name (the InferenceService name apps refer to); the version
comes from ``model.json``. Both appear in every V2 response and in provenance.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

#: V2 datatype names and the numpy dtypes they stand for.
V2_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}

Task = Literal["segmentation3d", "lesion3d", "slices2d"]


class ModelSpecError(Exception):
    """A model directory is missing a file or its model.json is invalid."""


def v2_datatype(dtype: np.dtype[Any]) -> str:
    """The V2 datatype name of a numpy dtype."""
    for name, candidate in V2_DTYPES.items():
        if candidate == dtype:
            return name
    raise ValueError(f"no V2 datatype for numpy dtype {dtype}")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor: name, V2 datatype, shape (-1 for any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype[Any]:
        """The numpy dtype."""
        return V2_DTYPES[self.datatype]

    def metadata(self) -> dict[str, Any]:
        """The V2 ``$metadata_tensor`` form."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    def check(self, array: np.ndarray) -> str | None:
        """Why ``array`` does not fit this spec, or None when it does."""
        if array.dtype != self.dtype:
            return f"input {self.name!r} must be {self.datatype}, got {v2_datatype(array.dtype)}"
        if array.ndim != len(self.shape) or any(
            want not in (-1, got) for want, got in zip(self.shape, array.shape, strict=True)
        ):
            return (
                f"input {self.name!r} must have shape {list(self.shape)}, got {list(array.shape)}"
            )
        return None


@dataclass(frozen=True)
class ModelSpec:
    """The contents of ``model.json`` plus where the model directory is."""

    name: str
    version: str
    task: Task
    directory: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def onnx_path(self) -> Path:
        """The exported network."""
        return self.directory / str(self.settings.get("onnx", "model.onnx"))

    def sha256(self) -> str:
        """Checksum of the ONNX file (recorded in provenance next to the version)."""
        digest = hashlib.sha256()
        with self.onnx_path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


def _tensors(raw: Any, where: str) -> tuple[TensorSpec, ...]:
    try:
        specs = tuple(TensorSpec(t["name"], t["datatype"], tuple(t["shape"])) for t in raw)
    except (TypeError, KeyError) as err:
        raise ModelSpecError(f"{where}: each tensor needs name, datatype and shape") from err
    for t in specs:
        if t.datatype not in V2_DTYPES:
            raise ModelSpecError(f"{where}: unknown datatype {t.datatype!r}")
    return specs


def load_spec(directory: Path) -> ModelSpec:
    """Read ``directory/model.json``; ModelSpecError says what is missing."""
    path = directory / "model.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ModelSpecError(f"{directory} is not a model directory: no model.json") from err
    except json.JSONDecodeError as err:
        raise ModelSpecError(f"{path} is not valid JSON: {err}") from err
    try:
        spec = ModelSpec(
            name=directory.name,
            version=str(raw["version"]),
            task=raw["task"],
            directory=directory,
            inputs=_tensors(raw["inputs"], str(path)),
            outputs=_tensors(raw["outputs"], str(path)),
            settings=dict(raw.get("settings", {})),
        )
    except KeyError as err:
        raise ModelSpecError(f"{path} lacks the field {err.args[0]!r}") from err
    if spec.task not in ("segmentation3d", "lesion3d", "slices2d"):
        raise ModelSpecError(f"{path}: unknown task {spec.task!r}")
    if not spec.onnx_path.is_file():
        raise ModelSpecError(f"{directory} has no {spec.onnx_path.name}")
    return spec


def default_models_dir() -> Path:
    """The bundled ``models/`` directory of a source checkout."""
    return Path(__file__).resolve().parents[3] / "models"


def find_models(models_dir: Path, names: list[str] | None = None) -> list[ModelSpec]:
    """Every model directory under ``models_dir`` (or just ``names``), sorted by name."""
    if names:
        dirs = [models_dir / n for n in names]
    else:
        dirs = sorted(p.parent for p in models_dir.glob("*/model.json"))
    return [load_spec(d) for d in dirs]
