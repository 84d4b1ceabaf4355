"""Train the glioma 3D U-Net on synthetic cases rendered onto the model grid (CPU, minutes).


    .venv-train/bin/python models/glioma-unet/train.py [--steps N] [--cases N] [--real N]

Grid cases (``models.common.mr_grid``, seeds 0..cases-1) are rendered straight onto the model
grid; ``--real N`` adds N real-path cases (``models.common.mr_real``: synthetic DICOM study →
the preprocess stage's workflow, seeds 1000..1000+N-1), drawn for ``--real-fraction`` of the
patches, so the network sees what the pipeline will feed it.

Writes var/train/glioma-unet/checkpoint.pt; export.py turns it into model.onnx.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.common import mr_grid, mr_real
from models.common.nets import UNet3D
from models.common.training import (
    WORK,
    cached_cases,
    crop,
    random_patch_start,
    schedule_or_fine_tune,
    seed_everything,
    soft_dice_loss,
)

NAME = "glioma-unet"
#: BraTS label value → class index of the network's output.
CLASS_LABELS = (0, 1, 2, 4)
BASE, LEVELS = 8, 3
#: First seed of the real-path training studies (held-out studies use 100000..).
REAL_SEED = 1000


def make(seed: int) -> dict[str, np.ndarray]:
    """A training case: normals every 8th seed (so the model learns to say nothing)."""
    kind = "normal" if seed % 8 == 7 else "glioma"
    case = mr_grid.make_case(kind, seed)
    return {"image": case.image, "labels": case.labels}


def batches(
    pools: list[list[dict[str, np.ndarray]]],
    weights: list[float],
    patch: int,
    batch: int,
    rng: np.random.Generator,
):
    """Endless (x, y) batches: 75 % of patches centred on tumour, the rest anywhere.

    Each patch comes from a case of pool i with probability weights[i]."""
    lut = np.zeros(256, dtype=np.int64)
    for index, value in enumerate(CLASS_LABELS):
        lut[value] = index
    size = (patch,) * 3
    while True:
        xs, ys = [], []
        for _ in range(batch):
            cases = pools[int(rng.choice(len(pools), p=weights))]
            case = cases[int(rng.integers(len(cases)))]
            labels = case["labels"]
            centre = None
            if rng.random() < 0.75 and labels.any():
                fg = np.flatnonzero(labels[::4, ::4, ::4])
                if fg.size:
                    ijk = np.unravel_index(int(rng.choice(fg)), labels[::4, ::4, ::4].shape)
                    centre = np.array(ijk) * 4
            start = random_patch_start(labels.shape, size, rng, centre)
            x = crop(case["image"], start, size).astype(np.float32)
            y = lut[crop(labels, start, size)]
            if rng.random() < 0.5:  # left-right mirror: the template is near-symmetric
                x, y = x[:, ::-1], y[::-1]
            # per-channel contrast jitter beyond what the renderer varies
            x = x * rng.uniform(0.9, 1.1, size=(4, 1, 1, 1)) + rng.uniform(-0.1, 0.1, (4, 1, 1, 1))
            xs.append(np.ascontiguousarray(x))
            ys.append(np.ascontiguousarray(y))
        yield torch.from_numpy(np.stack(xs)).float(), torch.from_numpy(np.stack(ys))


def main() -> None:
    """Generate (or reuse) the training cases and train."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--real", type=int, default=0, help="real-path cases to add")
    parser.add_argument("--real-fraction", type=float, default=0.5)
    args = parser.parse_args()
    seed_everything(args.seed)
    cases = cached_cases(NAME, make, range(args.cases), workers=args.workers)
    pools, weights = [cases], [1.0]
    if args.real:
        real = mr_real.real_cases("glioma", range(REAL_SEED, REAL_SEED + args.real))
        pools.append([{"image": c["image"], "labels": c["labels"]} for c in real])
        weights = [1.0 - args.real_fraction, args.real_fraction]
    model = UNet3D(4, len(CLASS_LABELS), BASE, LEVELS)
    optim = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    out = WORK / NAME / "checkpoint.pt"
    sched, done = schedule_or_fine_tune(model, optim, out, args.steps, args.lr, args.resume)
    ce = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(args.seed + done)
    started = time.time()
    model.train()
    for step, (x, y) in enumerate(batches(pools, weights, args.patch, args.batch, rng), start=1):
        logits = model(x)
        loss = ce(logits, y) + soft_dice_loss(logits, y, len(CLASS_LABELS))
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
        if step % 25 == 0 or step == args.steps:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - started:.0f} s)", flush=True)
            state = {"model": model.state_dict(), "step": done + step, "args": vars(args)}
            torch.save(state, out)
        if step == args.steps:
            break


if __name__ == "__main__":
    main()
