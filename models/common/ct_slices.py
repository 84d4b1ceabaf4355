"""Synthetic head CT stacks as the CT preprocessing hands them to the hemorrhage model.

The synth phantom (with or without hemorrhage) is posed on the table and sampled the way the
synthetic studies' ``ct_brain`` series are (``radpipe.synth.study``): a 512 × 512 matrix over a
200–250 mm field of view, thin (0.625–1.25 mm, the series the hemorrhage app prefers) or 4–5 mm
slices averaged across their thickness, gantry tilt on half of the thick stacks, white CT noise
of the same sigma at 512 and the circular reconstruction field. The HU slices then go through
the preprocessing's own :func:`radpipe.preprocessing.ct.to_model_size` (anti-alias and resize to
256), so training sees exactly the texture inference sees. Thin stacks keep every other slice
or so (2–2.5 mm apart) so a case stays small; each slice is still a thin slice. Per-slice
labels are the hemorrhage subtypes present in the slice's central plane at the full matrix, as
the synth's truth defines them. Stored as int16 HU; :func:`model_input` applies the
preprocessing's own windows.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray

from radpipe.preprocessing.ct import CT_INPUT_SIZE, CT_WINDOWS, HU_RANGE, to_model_size, window
from radpipe.synth import anatomy as an
from radpipe.synth import contrasts as con
from radpipe.synth import pathology as pa
from radpipe.synth.geometry import (
    BRAIN_CENTRE_MNI,
    Pose,
    SeriesGeometry,
    orientation,
    phantom_image,
    place_stack,
    random_pose,
    resample,
)

#: Output order of the hemorrhage model: "any", then the synth's subtype codes 1..5.
LABELS = ("any", *pa.HEMORRHAGE_CODES)
#: The scanner matrix of the synthetic ``ct_brain`` series (protocols "ct5" and "ctthin").
MATRIX = 512
THIN_MM = (0.625, 0.75, 1.0, 1.25)
THICK_MM = (4.0, 4.8, 5.0)


def _phantom(
    seed: int, normal: bool, salt: int
) -> tuple[sitk.Image, sitk.Image, np.random.Generator]:
    """One head phantom's CT and label images, and the generator that draws its poses.

    ``salt`` separates the generators' seed streams, so each keeps its own cases.
    """
    base = an.base_anatomy()
    streams = np.random.SeedSequence([seed, int(normal), salt]).spawn(3)
    r_anat, r_path, r_geo = (np.random.default_rng(s) for s in streams)
    layers = an.head_layers(base, r_anat)
    path = pa.none(base) if normal else pa.hemorrhage(base, r_path)
    phantom = con.Phantom(base, layers, path, r_anat)
    ct = phantom_image(phantom.render("ct"), base.affine)
    return ct, phantom_image(path.labels, base.affine), r_geo


def _slice_labels(label_img: sitk.Image, pose: Pose, geom: SeriesGeometry) -> NDArray[np.uint8]:
    """(S, 6) per-slice labels of a stack: "any", then whether each subtype is in the slice."""
    lab = resample(label_img, pose, geom, labels=True).astype(np.uint8)
    y = np.zeros((len(lab), len(LABELS)), dtype=np.uint8)
    for code in range(1, 6):
        y[:, code] = (lab == code).reshape(len(lab), -1).any(axis=1)
    y[:, 0] = y[:, 1:].any(axis=1)
    return y


def _case(hus: list[NDArray], labels: list[NDArray]) -> dict[str, NDArray]:
    """The stacks of one phantom as one case, each slice tagged with its stack's index."""
    return {
        "hu": np.concatenate(hus),
        "labels": np.concatenate(labels),
        "study": np.concatenate([np.full(len(h), i, np.int16) for i, h in enumerate(hus)]),
    }


def make_stacks(seed: int, normal: bool, poses: int = 2) -> dict[str, NDArray]:
    """``poses`` stacks of one phantom: HU (S, 256, 256) int16 and labels (S, 6) uint8.

    The first pose is a thin stack, the second a thick one; further poses draw either.
    """
    ct, label_img, r_geo = _phantom(seed, normal, salt=12)
    hus, labels = [], []
    for k in range(poses):
        pose = random_pose(r_geo)
        thin = k == 0 if k < 2 else bool(r_geo.random() < 0.6)
        if thin:
            thickness = float(r_geo.choice(THIN_MM))
            spacing = float(r_geo.uniform(2.0, 2.5))
            tilt = 0.0
        else:
            thickness = spacing = float(r_geo.choice(THICK_MM))
            tilt = float(r_geo.uniform(-20, 0)) if r_geo.random() < 0.5 else 0.0
        fov = float(r_geo.uniform(200, 250))
        centre = pose.to_patient(BRAIN_CENTRE_MNI[None])[0] + r_geo.normal(0, 4.0, size=3)
        row, col = orientation("ax", np.eye(3), tilt)
        n = round(float(r_geo.uniform(150, 175)) / spacing)
        pixel = fov / MATRIX
        geom = place_stack(centre, row, col, MATRIX, MATRIX, (pixel, pixel), n, spacing, thickness)
        hu = resample(ct, pose, geom, default=-1000.0, slab="mean")
        sigma = float(r_geo.uniform(7, 12) if thin else r_geo.uniform(3, 5))
        hu += r_geo.standard_normal(hu.shape, dtype=np.float32) * np.float32(sigma)
        yy, xx = np.ogrid[:MATRIX, :MATRIX]
        hu[:, np.hypot(yy - (MATRIX - 1) / 2, xx - (MATRIX - 1) / 2) > MATRIX / 2] = HU_RANGE[0]
        np.clip(hu, *HU_RANGE, out=hu)
        small = to_model_size(hu, CT_INPUT_SIZE)
        y = _slice_labels(label_img, pose, geom)
        hus.append(np.round(small).astype(np.int16))
        labels.append(y)
    return _case(hus, labels)


def make_stacks_direct(seed: int, normal: bool, poses: int = 2) -> dict[str, NDArray]:
    """The first generator (kept to rebuild its training cases): stacks sampled directly at
    256 × 256 with noise added there, thin stacks 1.2–2.5 mm, tilt ±12°. Coarser than what the
    preprocessing hands over, which makes it a useful second texture for training.
    """
    ct, label_img, r_geo = _phantom(seed, normal, salt=11)
    hus, labels = [], []
    for _ in range(poses):
        pose = random_pose(r_geo)
        thin = r_geo.random() < 0.3
        spacing = float(r_geo.uniform(0.6, 1.25)) * 2 if thin else float(r_geo.choice([4.0, 5.0]))
        thickness = spacing
        fov = float(r_geo.uniform(200, 250))
        centre = pose.to_patient(BRAIN_CENTRE_MNI[None])[0] + r_geo.normal(0, 4.0, size=3)
        row, col = orientation("ax", np.eye(3), float(r_geo.uniform(-12, 12)))
        n = round(float(r_geo.uniform(150, 175)) / spacing)
        pixel = fov / CT_INPUT_SIZE
        geom = place_stack(
            centre, row, col, CT_INPUT_SIZE, CT_INPUT_SIZE, (pixel, pixel), n, spacing, thickness
        )
        hu = resample(ct, pose, geom, default=-1000.0)
        # noise after the 512 → 256 shrink the preprocessing does: about half the raw sigma
        sigma = float(r_geo.uniform(3.5, 6.0) if thin else r_geo.uniform(1.5, 3.0))
        hu += r_geo.standard_normal(hu.shape, dtype=np.float32) * np.float32(sigma)
        yy, xx = np.ogrid[:CT_INPUT_SIZE, :CT_INPUT_SIZE]
        outside = np.hypot(yy - 127.5, xx - 127.5) > 128 * float(r_geo.uniform(0.95, 1.3))
        hu[:, outside] = HU_RANGE[0]
        np.clip(hu, *HU_RANGE, out=hu)
        y = _slice_labels(label_img, pose, geom)
        hus.append(np.round(hu).astype(np.int16))
        labels.append(y)
    return _case(hus, labels)


def model_input(hu: NDArray) -> NDArray[np.float32]:
    """(N, 256, 256) HU → (N, 3, 256, 256) through the preprocessing's windows."""
    hu = hu.astype(np.float32)
    return np.stack([window(hu, c, w) for _, c, w in CT_WINDOWS], axis=1)
