"""Checkpoint → ONNX, shared by the models' export scripts (training venv: needs torch)."""

from __future__ import annotations

from pathlib import Path

import torch
from models.common.training import WORK, export_onnx
from torch import nn


def export_checkpoint(
    name: str, model: nn.Module, example: torch.Tensor, final: str, dynamic_axes: list[int]
) -> Path:
    """Load var/train/<name>/checkpoint.pt into ``model``, write models/<name>/model.onnx."""
    state = torch.load(WORK / name / "checkpoint.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    model.eval()
    target = Path(__file__).resolve().parents[1] / name / "model.onnx"
    axes = {i: f"d{i}" for i in dynamic_axes}
    export_onnx(model, example, target, final, {"input": axes, "output": axes})
    print(f"exported {name} (step {state['step']}) to {target} ({target.stat().st_size} bytes)")
    return target
