"""Cached training cases packed small enough to carry to a lent GPU machine.

A real-path MR case is ~55 MB as a float16 ``.npz``; the GPU machine takes 64 MiB in all and
cannot run the preprocessing (no dcm2niix, no SimpleITK there). So the cases are built here
(:mod:`models.common.mr_real`) and packed: the image quantised to int8 in steps of 1/8 of a
z-score unit (the images are z-scored, and their noise is larger than that step), cut to the
lesion's bounding box plus a margin of normal brain, and compressed with LZMA: ~2.5 MB a case.

    .venv/bin/python -m models.common.packed glioma 1000:1024 1024:1026 \
        --normal 2000:2002 --out var/carry/glioma

Only numpy and the standard library are needed to read a pack back (:func:`load_pack`).
"""

from __future__ import annotations

import argparse
import io
import lzma
from pathlib import Path

import numpy as np

#: Quantisation steps per z-score unit: int8 then covers ±15.9 (the images are clipped z-scores).
STEPS = 8.0


def pack_case(arrays: dict[str, np.ndarray], margin: int | None) -> bytes:
    """One case (``image`` [C, X, Y, Z], ``labels`` [X, Y, Z]) as LZMA-compressed bytes.

    With ``margin`` the arrays are cut to the labelled voxels' box plus ``margin`` voxels
    (a case without labels is kept whole)."""
    image, labels = arrays["image"], arrays["labels"]
    box: tuple[slice, ...] = tuple(slice(0, s) for s in labels.shape)
    if margin is not None and labels.any():
        found = np.argwhere(labels > 0)
        low = np.maximum(found.min(0) - margin, 0)
        high = np.minimum(found.max(0) + margin + 1, labels.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))
    scaled = np.round(image[(slice(None), *box)].astype(np.float32) * STEPS)
    quantised = np.clip(scaled, -127, 127).astype(np.int8)
    buffer = io.BytesIO()
    np.savez(buffer, image=quantised, labels=labels[box])
    return lzma.compress(buffer.getvalue(), preset=6)


def unpack_case(blob: bytes) -> dict[str, np.ndarray]:
    """A packed case back as float16 ``image`` and uint8 ``labels``."""
    with np.load(io.BytesIO(lzma.decompress(blob))) as arrays:
        image = (arrays["image"].astype(np.float32) / STEPS).astype(np.float16)
        return {"image": image, "labels": arrays["labels"]}


def load_pack(folder: Path, role: str) -> list[dict[str, np.ndarray]]:
    """Every case of ``role`` (``train``/``validation``) in a pack folder, in seed order."""
    files = sorted((folder / role).glob("*.xz"), key=lambda p: int(p.name.split(".")[0]))
    if not files:
        raise FileNotFoundError(f"no packed cases in {folder / role}: run models.common.packed")
    return [unpack_case(path.read_bytes()) for path in files]


def _seeds(span: str) -> range:
    first, _, stop = span.partition(":")
    return range(int(first), int(stop or int(first) + 1))


def main() -> None:
    """Pack cached real-path cases of one kind (built first if missing)."""
    from models.common import mr_real

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=sorted(mr_real.MAKERS))
    parser.add_argument("train", help="training seeds FIRST:STOP")
    parser.add_argument("validation", help="validation seeds FIRST:STOP")
    parser.add_argument("--normal", default="", help="real-path normal seeds FIRST:STOP")
    parser.add_argument("--margin", type=int, default=24)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    jobs = [
        ("train", args.kind, _seeds(args.train)),
        ("validation", args.kind, _seeds(args.validation)),
    ]
    if args.normal:
        jobs.append(("train", "normal", _seeds(args.normal)))
    total = 0
    for role, kind, seeds in jobs:
        (args.out / role).mkdir(parents=True, exist_ok=True)
        for seed, arrays in zip(seeds, mr_real.real_cases(kind, seeds), strict=True):
            blob = pack_case(arrays, args.margin)
            (args.out / role / f"{seed}.xz").write_bytes(blob)
            total += len(blob)
    print(f"packed into {args.out}: {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
