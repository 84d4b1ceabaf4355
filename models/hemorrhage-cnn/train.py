"""Train the hemorrhage 2D CNN (3 CT windows per slice → 6 sigmoid outputs) on synthetic CT.

    .venv-train/bin/python models/hemorrhage-cnn/train.py [--steps N] [--resume]

Two case sets, each generated once and cached as one ``.npz`` per seed (models/common/cache.py):

* ``--phantoms``/``--normals``: stacks as the CT preprocessing hands them over (512 matrix,
  thin or thick slices, :func:`to_model_size`), under var/train/hemorrhage-cnn/v2/cases;
* ``--direct-phantoms``/``--direct-normals``: the first generator's stacks (sampled straight at
  256), under var/train/hemorrhage-cnn/cases — a second texture, free since it was cached.

Every slice goes through the preprocessing's windows and the network's 2 × 2 pooling once, at
start (float16 in memory), so a step is pure network compute. Batches are half slices with
hemorrhage (each subtype equally often) and half without; BCE on the six outputs; AdamW with
a one-cycle schedule over ``--steps``. The checkpoint (var/train/hemorrhage-cnn/checkpoint.pt,
every 25 steps) holds the optimizer, schedule and random states, so ``--resume`` continues an
interrupted run exactly where it stopped; ``--finetune`` instead starts a fresh cosine decay
from ``--lr`` over ``--steps`` more steps. export.py turns the checkpoint into model.onnx.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # net.py

from models.common.ct_slices import (
    LABELS,
    make_stacks,
    make_stacks_direct,
    model_input,
)
from models.common.training import WORK, cached_cases, seed_everything
from net import HemorrhageCNN, pool

NAME = "hemorrhage-cnn"
#: Seeds ≥ NORMAL_OFFSET are normal heads (no hemorrhage).
NORMAL_OFFSET = 50_000


def make(seed: int) -> dict[str, np.ndarray]:
    """Two stacks (thin, thick) of one phantom, as the preprocessing hands them over."""
    return make_stacks(seed % NORMAL_OFFSET, normal=seed >= NORMAL_OFFSET)


def make_direct(seed: int) -> dict[str, np.ndarray]:
    """Two stacks of one phantom from the first (direct 256) generator."""
    return make_stacks_direct(seed % NORMAL_OFFSET, normal=seed >= NORMAL_OFFSET)


def seeds(phantoms: int, normals: int) -> list[int]:
    """Bleeding phantoms 0.., normal heads NORMAL_OFFSET.."""
    return [*range(phantoms), *range(NORMAL_OFFSET, NORMAL_OFFSET + normals)]


def pooled_inputs(hu: np.ndarray, chunk: int = 256) -> torch.Tensor:
    """(N, 256, 256) HU → (N, 3, 128, 128) float16: windows, then the network's pooling."""
    out = torch.empty((len(hu), 3, *(s // 2 for s in hu.shape[1:])), dtype=torch.float16)
    with torch.no_grad():
        for i in range(0, len(hu), chunk):
            x = torch.from_numpy(model_input(hu[i : i + chunk]))
            out[i : i + chunk] = pool(x).half()
    return out


def load(args: argparse.Namespace) -> tuple[torch.Tensor, np.ndarray]:
    """All training slices (pooled inputs) and their labels."""
    cases = cached_cases(
        f"{NAME}/v2", make, seeds(args.phantoms, args.normals), workers=args.workers
    )
    cases += cached_cases(
        NAME, make_direct, seeds(args.direct_phantoms, args.direct_normals), workers=args.workers
    )
    labels = np.concatenate([c["labels"] for c in cases]).astype(np.float32)
    x = torch.cat([pooled_inputs(c["hu"]) for c in cases])
    return x, labels


def batch_indices(pools: list[np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    """Half slices with hemorrhage (subtype drawn uniformly, then a slice with it), half without.

    ``pools[0]`` holds the slices without hemorrhage, ``pools[k]`` those with subtype k.
    """
    half = size // 2
    present = [k for k in range(1, len(pools)) if len(pools[k])]
    if len(present) == len(pools) - 1:
        subtypes = rng.integers(1, len(pools), half)
    else:  # a small case set may lack a subtype
        subtypes = rng.choice(present, half)
    pos = [rng.choice(pools[k]) for k in subtypes]
    neg = rng.choice(pools[0], size - half)
    return np.concatenate([np.array(pos, dtype=np.int64), neg])


def main() -> None:
    """Load (or generate) the cases and train on balanced slice batches."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phantoms", type=int, default=16)
    parser.add_argument("--normals", type=int, default=8)
    parser.add_argument("--direct-phantoms", type=int, default=32)
    parser.add_argument("--direct-normals", type=int, default=8)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resume", action="store_true", help="continue the interrupted run")
    parser.add_argument("--finetune", action="store_true", help="new cosine decay from --lr")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    seed_everything(args.seed, args.threads)
    out = WORK / NAME / "checkpoint.pt"
    model = HemorrhageCNN(3, len(LABELS))
    optim = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched: torch.optim.lr_scheduler.LRScheduler
    if args.finetune:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, args.steps)
    else:
        sched = torch.optim.lr_scheduler.OneCycleLR(
            optim, args.lr, total_steps=args.steps, pct_start=0.15
        )
    rng = np.random.default_rng(args.seed)
    start, base = 0, 0
    if args.resume or args.finetune:
        state = torch.load(out, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        if args.resume:  # the same run: optimizer, schedule and random streams as they were
            optim.load_state_dict(state["optim"])
            sched.load_state_dict(state["sched"])
            rng.bit_generator.state = state["rng"]
            torch.set_rng_state(state["torch_rng"])
            start, base = int(state["run_step"]), int(state["step"]) - int(state["run_step"])
        else:  # a new phase on top of the loaded weights
            base = int(state["step"])
            rng = np.random.default_rng(args.seed + base)
    clock = time.time()
    x, labels = load(args)
    counts = ", ".join(f"{n} {int(labels[:, i].sum())}" for i, n in enumerate(LABELS))
    print(f"{len(x)} slices ({counts}); loaded in {time.time() - clock:.0f} s", flush=True)
    pools = [np.flatnonzero(labels[:, 0] == 0)]
    pools += [np.flatnonzero(labels[:, k] > 0) for k in range(1, len(LABELS))]
    started = time.time()
    model.train()
    for step in range(start + 1, args.steps + 1):
        idx = batch_indices(pools, args.batch, rng)
        xb = x[torch.from_numpy(idx)].float()
        flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
        xb[flip] = xb[flip].flip(-1)
        logits = model.body(xb)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, torch.from_numpy(labels[idx])
        )
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
        if step % 25 == 0 or step == args.steps:
            took = time.time() - started
            print(f"step {step} loss {loss.item():.4f} ({took:.0f} s)", flush=True)
            state = {
                "model": model.state_dict(),
                "optim": optim.state_dict(),
                "sched": sched.state_dict(),
                "rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "step": base + step,
                "run_step": step,
                "args": vars(args),
            }
            torch.save(state, out.with_suffix(".tmp"))
            out.with_suffix(".tmp").replace(out)


if __name__ == "__main__":
    main()
