"""Train the hemorrhage 2D CNN (3 CT windows per slice → 6 sigmoid outputs) on synthetic CT.

    .venv-train/bin/python models/hemorrhage-cnn/train.py [--steps N] [--phantoms N]

Writes var/train/hemorrhage-cnn/checkpoint.pt; export.py turns it into model.onnx.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.common.ct_slices import LABELS, make_stacks, model_input
from models.common.nets import SliceCNN
from models.common.training import WORK, cached_cases, seed_everything

NAME = "hemorrhage-cnn"
#: Seeds ≥ NORMAL_OFFSET are normal heads (no hemorrhage).
NORMAL_OFFSET = 50_000


def make(seed: int) -> dict[str, np.ndarray]:
    """Two posed stacks of one phantom."""
    return make_stacks(seed % NORMAL_OFFSET, normal=seed >= NORMAL_OFFSET)


def main() -> None:
    """Generate (or reuse) the stacks and train on balanced slice batches."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phantoms", type=int, default=32)
    parser.add_argument("--normals", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    seed_everything(args.seed)
    seeds = [*range(args.phantoms), *range(NORMAL_OFFSET, NORMAL_OFFSET + args.normals)]
    cases = cached_cases(NAME, make, seeds, workers=args.workers)
    hu = np.concatenate([c["hu"] for c in cases])
    labels = np.concatenate([c["labels"] for c in cases]).astype(np.float32)
    positive = np.flatnonzero(labels[:, 0] > 0)
    negative = np.flatnonzero(labels[:, 0] == 0)
    print(f"{len(hu)} slices, {len(positive)} with hemorrhage", flush=True)
    model = SliceCNN(3, len(LABELS))
    optim = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched: torch.optim.lr_scheduler.LRScheduler
    out = WORK / NAME / "checkpoint.pt"
    done = 0
    if args.resume:  # fine-tune: cosine decay from --lr, no warm-up
        state = torch.load(out, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        done = int(state["step"])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, args.steps)
    else:
        sched = torch.optim.lr_scheduler.OneCycleLR(optim, args.lr, total_steps=args.steps)
    rng = np.random.default_rng(args.seed + done)
    started = time.time()
    model.train()
    for step in range(1, args.steps + 1):
        half = args.batch // 2
        idx = np.concatenate([rng.choice(positive, half), rng.choice(negative, args.batch - half)])
        x = model_input(hu[idx] + rng.normal(0, 3, size=(len(idx), 1, 1)).astype(np.float32))
        flip = rng.random(len(idx)) < 0.5
        x[flip] = x[flip][..., ::-1]
        logits = model(torch.from_numpy(np.ascontiguousarray(x)))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, torch.from_numpy(labels[idx])
        )
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
        if step % 25 == 0 or step == args.steps:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - started:.0f} s)", flush=True)
            state = {"model": model.state_dict(), "step": done + step, "args": vars(args)}
            torch.save(state, out)


if __name__ == "__main__":
    main()
