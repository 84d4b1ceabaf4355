"""Train the metastasis 3D U-Net (T1c + FLAIR → lesion probability) on synthetic cases.

    .venv-train/bin/python models/metastasis-unet/train.py [--steps N] [--cases N] [--real N]

Grid cases (``models.common.mr_grid``, seeds 0..cases-1) are rendered straight onto the model
grid; ``--real N`` adds N real-path cases (``models.common.mr_real``: synthetic DICOM study →
the preprocess stage's workflow, seeds 1000..1000+N-1), drawn for ``--real-fraction`` of the
patches, so the network sees what the pipeline will feed it.

Writes var/train/metastasis-unet/checkpoint.pt; export.py turns it into model.onnx.
"""

from __future__ import annotations

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
    mr_unet_arguments,
    random_patch_start,
    schedule_or_fine_tune,
    seed_everything,
)

NAME = "metastasis-unet"
#: Model input channels, as indices into the grid's MR_CHANNELS (t1, t1c, t2, flair).
CHANNELS = ("t1c", "flair")
BASE, LEVELS = 8, 3


def make(seed: int) -> dict[str, np.ndarray]:
    """A training case: normals every 8th seed (false positives are learnt there)."""
    kind = "normal" if seed % 8 == 7 else "metastasis"
    case = mr_grid.make_case(kind, seed)
    index = [mr_grid.CHANNELS.index(c) for c in CHANNELS]
    return {"image": case.image[index], "instances": case.instances}


#: First seed of the real-path training studies (held-out studies use 90000.. and 100000..).
REAL_SEED = 1000


def real_case(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A cached real-path case in this model's training form."""
    index = [mr_grid.CHANNELS.index(c) for c in CHANNELS]
    return {"image": arrays["image"][index], "instances": arrays["instances"]}


def batches(
    pools: list[list[dict[str, np.ndarray]]],
    weights: list[float],
    patch: int,
    batch: int,
    rng: np.random.Generator,
    lesion_fraction: float = 0.7,
):
    """Endless (x, y) batches: 70 % centred on a lesion chosen uniformly (small ones too).

    Each patch comes from a case of pool i with probability weights[i]."""
    size = (patch,) * 3
    while True:
        xs, ys = [], []
        for _ in range(batch):
            cases = pools[int(rng.choice(len(pools), p=weights))]
            case = cases[int(rng.integers(len(cases)))]
            inst = case["instances"]
            centre = None
            if rng.random() < lesion_fraction and "centres" in case and len(case["centres"]):
                centre = case["centres"][int(rng.integers(len(case["centres"])))]
            start = random_patch_start(inst.shape, size, rng, centre)
            x = crop(case["image"], start, size).astype(np.float32)
            y = (crop(inst, start, size) > 0).astype(np.float32)
            if rng.random() < 0.5:
                x, y = x[:, ::-1], y[::-1]
            x = x * rng.uniform(0.9, 1.1, size=(2, 1, 1, 1)) + rng.uniform(-0.1, 0.1, (2, 1, 1, 1))
            if rng.random() < 0.2:  # FLAIR is optional for this app: learn to do without
                x[1] = 0.0
            xs.append(np.ascontiguousarray(x))
            ys.append(np.ascontiguousarray(y))
        yield torch.from_numpy(np.stack(xs)).float(), torch.from_numpy(np.stack(ys))[:, None]


def dice_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE (positives up-weighted: lesions are rare) plus soft Dice."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, target, pos_weight=torch.tensor(3.0)
    )
    p = torch.sigmoid(logits)
    dice = (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return bce + (1 - dice)


def main() -> None:
    """Generate (or reuse) the training cases and train."""
    parser = mr_unet_arguments(__doc__, cases=16, workers=1)
    parser.add_argument(
        "--lesion-fraction", type=float, default=0.7, help="patches centred on a lesion"
    )
    args = parser.parse_args()
    seed_everything(args.seed)
    cases = cached_cases(NAME, make, range(args.cases), workers=args.workers)
    pools, weights = [cases], [1.0]
    if args.real:
        real = mr_real.real_cases("metastasis", range(REAL_SEED, REAL_SEED + args.real))
        pools.append([real_case(c) for c in real])
        weights = [1.0 - args.real_fraction, args.real_fraction]
    for case in (c for pool in pools for c in pool):
        inst = case["instances"]
        ids = np.unique(inst)[1:]
        from scipy import ndimage as ndi

        case["centres"] = np.array(ndi.center_of_mass(inst > 0, inst, ids)) if ids.size else []
    model = UNet3D(len(CHANNELS), 1, BASE, LEVELS)
    optim = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    out = WORK / NAME / "checkpoint.pt"
    sched, done = schedule_or_fine_tune(model, optim, out, args.steps, args.lr, args.resume)
    rng = np.random.default_rng(args.seed + done)
    started = time.time()
    model.train()
    for step, (x, y) in enumerate(
        batches(pools, weights, args.patch, args.batch, rng, args.lesion_fraction), start=1
    ):
        loss = dice_bce(model(x), y)
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
