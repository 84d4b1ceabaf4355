"""Training plumbing shared by the model scripts: seeds, case caches, patches, losses, export."""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from models.common.cache import WORK, cached_cases
from torch import nn

__all__ = ["WORK", "cached_cases"]


def seed_everything(seed: int, threads: int = 2) -> None:
    """Fixed seeds and a fixed thread count, so a run is repeatable on the same machine."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def mr_unet_arguments(description: str | None, cases: int, workers: int) -> argparse.ArgumentParser:
    """The options the MR U-Net training scripts share: grid cases, steps, patches, real path."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cases", type=int, default=cases)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument("--workers", type=int, default=workers)
    parser.add_argument("--real", type=int, default=0, help="real-path cases to add")
    parser.add_argument("--real-fraction", type=float, default=0.5)
    return parser


def schedule_or_fine_tune(
    model: nn.Module,
    optim: torch.optim.Optimizer,
    checkpoint: Path,
    steps: int,
    lr: float,
    resume: bool,
) -> tuple[torch.optim.lr_scheduler.LRScheduler, int]:
    """The learning-rate schedule of a run, and the steps its checkpoint already holds.

    A new run gets a one-cycle schedule; with ``resume`` the model takes the checkpoint's
    weights and fine-tunes with a cosine decay from ``lr`` (no warm-up).
    """
    if not resume:
        return torch.optim.lr_scheduler.OneCycleLR(optim, lr, total_steps=steps), 0
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    return torch.optim.lr_scheduler.CosineAnnealingLR(optim, steps), int(state["step"])


def random_patch_start(
    shape: Sequence[int], patch: Sequence[int], rng: np.random.Generator, centre: Any = None
) -> tuple[int, ...]:
    """A patch origin inside ``shape``; around ``centre`` (jittered) when given."""
    start = []
    for axis, (size, p) in enumerate(zip(shape, patch, strict=True)):
        hi = max(size - p, 0)
        if centre is None:
            start.append(int(rng.integers(0, hi + 1)))
        else:
            c = int(centre[axis]) - p // 2 + int(rng.integers(-p // 3, p // 3 + 1))
            start.append(min(max(c, 0), hi))
    return tuple(start)


def crop(array: np.ndarray, start: Sequence[int], patch: Sequence[int]) -> np.ndarray:
    """The patch of the last len(patch) axes of ``array`` at ``start``, zero-padded if short."""
    lead = array.ndim - len(patch)
    box = tuple(slice(s, s + p) for s, p in zip(start, patch, strict=True))
    out = array[(slice(None),) * lead + box]
    pad = [(0, 0)] * lead + [(0, p - o) for p, o in zip(patch, out.shape[lead:], strict=True)]
    if any(after for _, after in pad):
        out = np.pad(out, pad)
    return out


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, classes: int) -> torch.Tensor:
    """One minus the mean soft Dice over the foreground classes (target holds class indices)."""
    probs = torch.softmax(logits, dim=1)
    onehot = nn.functional.one_hot(target, classes).permute(0, 4, 1, 2, 3).float()
    dims = (0, 2, 3, 4)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + 1.0) / (denom + 1.0)
    return 1.0 - dice[1:].mean()


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    final: str,
    dynamic: dict[str, dict[int, str]],
) -> None:
    """Export ``model`` followed by softmax/sigmoid (``final``) to ONNX, opset 17."""

    class WithHead(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.inner(x)
            return torch.softmax(y, dim=1) if final == "softmax" else torch.sigmoid(y)

    wrapped = WithHead(model).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        wrapped,
        (example,),
        str(path),
        input_names=["input"],
        output_names=["output"],
        dynamic_axes=dynamic,
        opset_version=17,
        dynamo=False,
    )
