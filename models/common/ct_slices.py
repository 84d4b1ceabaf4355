"""Synthetic head CT stacks as the CT preprocessing hands them to the hemorrhage model.

The synth phantom (with or without hemorrhage) is posed on the table and sampled as an axial
stack (thick 5 mm or thin 0.6–1.25 mm slices, 200–250 mm field of view) directly at the model's
256 × 256 size, with CT noise and the circular reconstruction field; per-slice labels are the
hemorrhage subtypes present in the slice's central plane, as the synth's truth defines them.
Stored as int16 HU; :func:`model_input` applies the preprocessing's own windows.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from radpipe.preprocessing.ct import CT_INPUT_SIZE, CT_WINDOWS, HU_RANGE, window
from radpipe.synth import anatomy as an
from radpipe.synth import contrasts as con
from radpipe.synth import pathology as pa
from radpipe.synth.geometry import (
    BRAIN_CENTRE_MNI,
    orientation,
    phantom_image,
    place_stack,
    random_pose,
    resample,
)

#: Output order of the hemorrhage model: "any", then the synth's subtype codes 1..5.
LABELS = ("any", *pa.HEMORRHAGE_CODES)


def make_stacks(seed: int, normal: bool, poses: int = 2) -> dict[str, NDArray]:
    """``poses`` stacks of one phantom: HU (S, 256, 256) int16 and labels (S, 6) uint8."""
    base = an.base_anatomy()
    streams = np.random.SeedSequence([seed, int(normal), 11]).spawn(3)
    r_anat, r_path, r_geo = (np.random.default_rng(s) for s in streams)
    layers = an.head_layers(base, r_anat)
    path = pa.none(base) if normal else pa.hemorrhage(base, r_path)
    phantom = con.Phantom(base, layers, path, r_anat)
    ct = phantom_image(phantom.render("ct"), base.affine)
    label_img = phantom_image(path.labels, base.affine)
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
        lab = resample(label_img, pose, geom, labels=True).astype(np.uint8)
        y = np.zeros((len(lab), len(LABELS)), dtype=np.uint8)
        for code in range(1, 6):
            y[:, code] = (lab == code).reshape(len(lab), -1).any(axis=1)
        y[:, 0] = y[:, 1:].any(axis=1)
        hus.append(np.round(hu).astype(np.int16))
        labels.append(y)
    return {
        "hu": np.concatenate(hus),
        "labels": np.concatenate(labels),
        "study": np.concatenate([np.full(len(h), i, np.int16) for i, h in enumerate(hus)]),
    }


def model_input(hu: NDArray) -> NDArray[np.float32]:
    """(N, 256, 256) HU → (N, 3, 256, 256) through the preprocessing's windows."""
    hu = hu.astype(np.float32)
    return np.stack([window(hu, c, w) for _, c, w in CT_WINDOWS], axis=1)
