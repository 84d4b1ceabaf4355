"""Train the glioma 3D U-Net on synthetic cases (CPU in minutes, or a lent GPU).


    .venv-train/bin/python models/glioma-unet/train.py [--steps N] [--cases N] [--real N]
    python3 models/glioma-unet/train.py --resume --packed var/carry/glioma --device cuda \
        --seconds 330 --batch 16 --patch 64 --lr 2e-3     # on a lent GPU machine

Grid cases (``models.common.mr_grid``, seeds 0..cases-1) are rendered straight onto the model
grid; ``--real N`` adds N real-path cases (``models.common.mr_real``: synthetic DICOM study →
the preprocess stage's workflow, seeds 1000..1000+N-1), drawn for ``--real-fraction`` of the
patches, so the network sees what the pipeline will feed it. ``--packed DIR`` trains on a
pack of real-path cases instead (``models.common.packed``: what a GPU machine, which cannot
run the preprocessing, is given) and reports Dice on the pack's validation cases.

Patches are centred on tumour three times in four, on a voxel of a tumour label drawn
uniformly among the labels the case has, so the small necrotic core is seen as often as the
oedema. Writes var/train/glioma-unet/checkpoint.pt; export.py turns it into model.onnx.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.common.nets import UNet3D
from models.common.training import (
    WORK,
    cached_cases,
    mr_unet_arguments,
    random_patch_start,
    schedule_or_fine_tune,
    seed_everything,
    soft_dice_loss,
)

NAME = "glioma-unet"
#: BraTS label value → class index of the network's output.
CLASS_LABELS = (0, 1, 2, 4)
BASE, LEVELS = 8, 3
#: Class index of each BraTS label value (a lookup table over uint8 labels).
CLASS_INDEX = np.zeros(256, dtype=np.uint8)
CLASS_INDEX[list(CLASS_LABELS)] = np.arange(len(CLASS_LABELS), dtype=np.uint8)
#: First seed of the real-path training studies (held-out studies use 100000..).
REAL_SEED = 1000


def make(seed: int) -> dict[str, np.ndarray]:
    """A training case: normals every 8th seed (so the model learns to say nothing)."""
    from models.common import mr_grid

    kind = "normal" if seed % 8 == 7 else "glioma"
    case = mr_grid.make_case(kind, seed)
    return {"image": case.image, "labels": case.labels}


class Case:
    """A training case on the training device, with the voxels of each tumour label."""

    def __init__(self, arrays: dict[str, np.ndarray], device: torch.device) -> None:
        labels = arrays["labels"]
        self.shape = labels.shape
        self.image = torch.from_numpy(np.ascontiguousarray(arrays["image"])).to(device)
        self.classes = torch.from_numpy(CLASS_INDEX[labels]).to(device)
        # every 2nd voxel along each axis is plenty to pick centres from, and 8× smaller
        sub = labels[::2, ::2, ::2]
        self.voxels = {
            int(v): np.argwhere(sub == v) * 2 for v in CLASS_LABELS[1:] if (sub == v).any()
        }

    def patch(self, start: tuple[int, ...], size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The image and class patch at ``start``, zero-padded where the case is smaller."""
        box = tuple(slice(s, s + size) for s in start)
        x, y = self.image[(slice(None), *box)], self.classes[box]
        short = [size - n for n in y.shape]
        if any(short):
            pad = (0, short[2], 0, short[1], 0, short[0])
            x, y = torch.nn.functional.pad(x, pad), torch.nn.functional.pad(y, pad)
        return x, y


def batches(
    pools: list[list[Case]],
    weights: list[float],
    patch: int,
    batch: int,
    rng: np.random.Generator,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (x, y) batches: 75 % of patches centred on tumour, the rest anywhere.

    Each patch comes from a case of pool i with probability weights[i]."""
    size = (patch,) * 3
    while True:
        xs, ys = [], []
        for _ in range(batch):
            cases = pools[int(rng.choice(len(pools), p=weights))]
            case = cases[int(rng.integers(len(cases)))]
            centre = None
            if rng.random() < 0.75 and case.voxels:
                label = list(case.voxels)[int(rng.integers(len(case.voxels)))]
                voxels = case.voxels[label]
                centre = voxels[int(rng.integers(len(voxels)))]
            x, y = case.patch(random_patch_start(case.shape, size, rng, centre), patch)
            x = x.float()
            if rng.random() < 0.5:  # left-right mirror: the template is near-symmetric
                x, y = x.flip(1), y.flip(0)
            # per-channel contrast jitter beyond what the renderer varies
            gain = torch.from_numpy(rng.uniform(0.9, 1.1, (4, 1, 1, 1))).to(x)
            offset = torch.from_numpy(rng.uniform(-0.1, 0.1, (4, 1, 1, 1))).to(x)
            xs.append(x * gain + offset)
            ys.append(y.long())
        yield torch.stack(xs), torch.stack(ys)


def region_dice(model: UNet3D, case: Case) -> dict[str, float]:
    """WT/TC/ET Dice and necrosis volumes (voxels) of one whole case, in one forward pass."""
    multiple = 2 ** (LEVELS - 1)
    pad = [(-n) % multiple for n in case.shape]
    x = torch.nn.functional.pad(case.image.float(), (0, pad[2], 0, pad[1], 0, pad[0]))
    with torch.no_grad():
        predicted = model(x[None]).argmax(1)[0][: case.shape[0], : case.shape[1], : case.shape[2]]
    truth = case.classes.long()
    scores: dict[str, float] = {}
    for region, members in (("WT", (1, 2, 3)), ("TC", (1, 3)), ("ET", (3,))):
        p = torch.isin(predicted, torch.tensor(members, device=predicted.device))
        t = torch.isin(truth, torch.tensor(members, device=truth.device))
        scores[region] = float(2 * (p & t).sum() / max(int(p.sum() + t.sum()), 1))
    scores["necrosis"] = float((predicted == 1).sum())
    scores["necrosisTrue"] = float((truth == 1).sum())
    return scores


def validate(model: UNet3D, cases: list[Case]) -> str:
    """One line of mean Dice over ``cases`` and the necrosis volume found against the truth."""
    model.eval()
    rows = [region_dice(model, c) for c in cases]
    model.train()
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    return (
        f"validation WT {mean['WT']:.3f} TC {mean['TC']:.3f} ET {mean['ET']:.3f} "
        f"necrosis {mean['necrosis']:.0f}/{mean['necrosisTrue']:.0f} voxels"
    )


def main() -> None:
    """Generate (or reuse) the training cases and train."""
    parser = mr_unet_arguments(__doc__, cases=24, workers=2)
    parser.add_argument("--packed", type=Path, help="train on this pack of real-path cases only")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a lent GPU machine")
    parser.add_argument(
        "--seconds",
        type=float,
        help="train for this long instead of --steps, the cosine decay following the clock",
    )
    args = parser.parse_args()
    seed_everything(args.seed)
    device = torch.device(args.device)
    validation: list[Case] = []
    if args.packed:
        from models.common.packed import load_pack

        pools = [[Case(c, device) for c in load_pack(args.packed, "train")]]
        weights = [1.0]
        validation = [Case(c, device) for c in load_pack(args.packed, "validation")]
    else:
        cases = cached_cases(NAME, make, range(args.cases), workers=args.workers)
        pools, weights = [[Case(c, device) for c in cases]], [1.0]
        if args.real:
            from models.common import mr_real

            real = mr_real.real_cases("glioma", range(REAL_SEED, REAL_SEED + args.real))
            pools.append([Case(c, device) for c in real])
            weights = [1.0 - args.real_fraction, args.real_fraction]
    model = UNet3D(4, len(CLASS_LABELS), BASE, LEVELS)
    optim = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    out = WORK / NAME / "checkpoint.pt"
    steps = math.inf if args.seconds else args.steps
    sched, done = schedule_or_fine_tune(model, optim, out, args.steps, args.lr, args.resume)
    model.to(device)
    if validation:
        print(f"before: {validate(model, validation)}", flush=True)
    ce = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(args.seed + done)
    started = reported = checked = time.time()
    model.train()
    step = 0

    def save() -> None:
        weights_now = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        torch.save({"model": weights_now, "step": done + step, "args": settings}, out)

    for step, (x, y) in enumerate(batches(pools, weights, args.patch, args.batch, rng), start=1):
        if (
            args.seconds
        ):  # cosine decay over wall-clock time, so a lent machine's slot is used whole
            elapsed = (time.time() - started) / args.seconds
            for group in optim.param_groups:
                group["lr"] = args.lr * 0.5 * (1.0 + math.cos(math.pi * min(elapsed, 1.0)))
        logits = model(x)
        loss = ce(logits, y) + soft_dice_loss(logits, y, len(CLASS_LABELS))
        optim.zero_grad()
        loss.backward()
        optim.step()
        if not args.seconds:
            sched.step()
        finished = step >= steps or (args.seconds and time.time() - started >= args.seconds)
        # report (and save) every 25 steps, but no more than twice a minute on a fast device
        if finished or (step % 25 == 0 and time.time() - reported >= 30 * (device.type != "cpu")):
            reported = time.time()
            line = f"step {step} loss {loss.item():.4f} ({reported - started:.0f} s)"
            if validation and (finished or reported - checked >= 120):
                checked = reported
                line += f" {validate(model, validation)}"
            print(line, flush=True)
            save()
        if finished:
            break


if __name__ == "__main__":
    main()
