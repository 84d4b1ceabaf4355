"""Synthetic MR cases rendered straight onto the model grid (no DICOM round trip).

The synth phantom (anatomy, contrasts, pathology) lives on the padded MNI152 template grid;
preprocessing maps real studies onto the BraTS-sized model grid in the same MNI space, so a
training case is the phantom resampled onto the model grid with what preprocessing leaves
behind: a small residual misregistration (rigid jitter), receive-coil bias, acquisition blur
(thick 2D slices), Rician noise, per-case contrast — then the same intensity normalisation
and brain masking as inference.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from models.common.norm import normalise_mr
from numpy.typing import NDArray
from scipy import ndimage as ndi

from radpipe.preprocessing import grid
from radpipe.serving.inputs import mask_outside
from radpipe.synth import anatomy as an
from radpipe.synth import contrasts as con
from radpipe.synth import pathology as pa
from radpipe.synth.geometry import rotation_xyz

CHANNELS = grid.MR_CHANNELS
#: Relative Rician noise per contrast at the synth's nominal SNR (0.55 / SNR).
NOISE = {"t1": 0.55 / 30, "t1c": 0.55 / 30, "t2": 0.55 / 40, "flair": 0.55 / 25}
MARGIN = 6


@dataclass
class MRCase:
    """One case cropped to the brain box of the model grid."""

    image: NDArray[np.float16]  # (4, X, Y, Z) normalised and masked
    labels: NDArray[np.uint8]  # BraTS labels
    instances: NDArray[np.uint16]  # metastasis cores numbered 1..N (0 elsewhere)
    mask: NDArray[np.bool_]
    diameters: dict[int, float]  # instance -> equivalent-sphere diameter (mm)


@functools.lru_cache(maxsize=1)
def brain_box() -> tuple[slice, slice, slice]:
    """Bounding box (with margin) of the template brain mask on the model grid."""
    m = template_mask()
    idx = np.argwhere(m)
    lo = np.maximum(idx.min(0) - MARGIN, 0)
    hi = np.minimum(idx.max(0) + MARGIN + 1, grid.SHAPE)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]


def _grid_to_template(jitter: NDArray[np.float64] | None) -> tuple[NDArray, NDArray]:
    """(matrix, offset) mapping model-grid indices to template indices, with optional jitter."""
    base = an.base_anatomy()
    g = grid.affine_ras()
    t_inv = np.linalg.inv(base.affine)
    world = g
    if jitter is not None:
        world = jitter @ g
    m = t_inv @ world
    return m[:3, :3], m[:3, 3]


def _resample(
    arr: NDArray, jitter: NDArray[np.float64] | None, order: int, box: tuple[slice, ...]
) -> NDArray:
    mat, off = _grid_to_template(jitter)
    start = np.array([s.start for s in box], dtype=float)
    shape = tuple(s.stop - s.start for s in box)
    return ndi.affine_transform(
        arr, mat, offset=off + mat @ start, output_shape=shape, order=order, mode="constant"
    )


@functools.lru_cache(maxsize=1)
def template_mask() -> NDArray[np.bool_]:
    """The MNI brain mask on the full model grid (what preprocessing ships as mask.nii.gz)."""
    base = an.base_anatomy()
    full = tuple(slice(0, s) for s in grid.SHAPE)
    return _resample(base.brain.astype(np.uint8), None, 0, full).astype(bool)


def random_jitter(rng: np.random.Generator, scale: float = 1.0) -> NDArray[np.float64]:
    """A small rigid+scale world transform about the brain centre (residual misregistration)."""
    angles = rng.uniform(-4, 4, size=3) * scale
    rot = rotation_xyz(*angles) * (1.0 + rng.uniform(-0.04, 0.04) * scale)
    centre = np.array([0.0, -18.0, 12.0])
    shift = rng.uniform(-3, 3, size=3) * scale
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = centre - rot @ centre + shift
    return m


def _acquisition(img: NDArray[np.float32], rng: np.random.Generator, contrast: str) -> NDArray:
    """Blur of a thick-slice acquisition resampled to 1 mm, then Rician noise."""
    sigma = [0.35, 0.35, 0.35]
    if (contrast in ("t2", "flair") or rng.random() < 0.2) and rng.random() < 0.7:
        axis = int(rng.choice([2, 2, 2, 1, 0]))
        sigma[axis] = float(rng.uniform(3.0, 6.0)) / 2.355
    img = ndi.gaussian_filter(img, sigma)
    noise = NOISE[contrast] * float(rng.uniform(0.6, 2.0)) * float(img.max())
    re = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
    im = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
    out: NDArray = np.sqrt(re * re + im * im)
    return out


def _extra_bias(box: tuple[slice, ...], rng: np.random.Generator) -> NDArray[np.float32]:
    """A per-sequence linear log-bias (the synth's own bias is shared by all sequences)."""
    axes = [np.linspace(-1.0, 1.0, s.stop - s.start, dtype=np.float32) for s in box]
    c = rng.normal(0.0, 0.06, size=3).astype(np.float32)
    log = c[0] * axes[0][:, None, None] + c[1] * axes[1][None, :, None]
    return np.exp(log + c[2] * axes[2][None, None, :]).astype(np.float32)  # type: ignore[no-any-return]


def make_case(kind: str, seed: int, *, augment: bool = True) -> MRCase:
    """Render one ``glioma``/``metastasis``/``normal`` case onto the model grid's brain box."""
    base = an.base_anatomy()
    streams = np.random.SeedSequence([seed, ("glioma", "metastasis", "normal").index(kind), 7])
    r_anat, r_path, r_aug = (np.random.default_rng(s) for s in streams.spawn(3))
    layers = an.head_layers(base, r_anat)
    path = pa.for_kind(kind, base, r_path)
    phantom = con.Phantom(base, layers, path, r_anat)
    jitter = random_jitter(r_aug, 1.0 if augment else 0.5)
    box = brain_box()
    channels = []
    for c in CHANNELS:
        img = phantom.render(c)
        phantom.bias(img)
        img = _resample(img.astype(np.float32), jitter, 1, box) * _extra_bias(box, r_aug)
        channels.append(_acquisition(img, r_aug, c))
    raw = np.stack(channels).astype(np.float32)
    labels = _resample(path.labels, jitter, 0, box).astype(np.uint8)
    instances = np.zeros(labels.shape, np.uint16)
    diameters: dict[int, float] = {}
    if path.instances is not None:
        instances = _resample(path.instances, jitter, 0, box).astype(np.uint16)
        counts = np.bincount(instances.ravel())
        for i in range(1, counts.size):
            if counts[i]:
                diameters[i] = float((6.0 * counts[i] / np.pi) ** (1.0 / 3.0))
    mask = template_mask()[box]
    if augment:
        r = int(r_aug.integers(-2, 3))
        if r > 0:
            mask = ndi.binary_dilation(mask, iterations=r)
        elif r < 0:
            mask = ndi.binary_erosion(mask, iterations=-r)
    image = mask_outside(normalise_mr(raw, mask), mask)
    return MRCase(image.astype(np.float16), labels, instances, mask, diameters)
