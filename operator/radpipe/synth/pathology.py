"""Pathology painted into the MNI-space phantom: glioma, metastases, intracranial hemorrhage.

Label conventions (``labels`` array, uint8):

* MR tumours use BraTS labels: 1 necrotic / non-enhancing core (NCR), 2 peritumoral edema (ED),
  4 enhancing tumour (ET). Metastases use the same labels; ``instances`` numbers each lesion's
  core (ET+NCR) 1..N.
* CT hemorrhage uses subtype codes in the order of the hemorrhage app's outputs:
  1 epidural, 2 intraparenchymal, 3 intraventricular, 4 subarachnoid, 5 subdural.

Every lesion is built in a small box around it, so 15 metastases cost little more than one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from radpipe.synth.anatomy import BaseAnatomy, smooth_noise

NCR, ED, ET = 1, 2, 4
HEMORRHAGE_CODES: dict[str, int] = {
    "epidural": 1,
    "intraparenchymal": 2,
    "intraventricular": 3,
    "subarachnoid": 4,
    "subdural": 5,
}
HEMORRHAGE_NAMES: dict[int, str] = {v: k for k, v in HEMORRHAGE_CODES.items()}
BRAIN_CENTRE_MNI = np.array([0.0, -18.0, 12.0])


@dataclass
class Lesion:
    """One lesion as painted in MNI space (volumes filled in after painting)."""

    label: str
    centre_mni: tuple[float, float, float]
    nominal_diameter_mm: float
    index: int = 0
    subtype: str | None = None


@dataclass
class Pathology:
    """Label maps on the phantom grid plus what each lesion is."""

    kind: str
    labels: NDArray[np.uint8]
    instances: NDArray[np.uint16] | None = None
    lesions: list[Lesion] = field(default_factory=list)
    blood_hu: dict[int, float] = field(default_factory=dict)
    perilesional_edema: NDArray[np.bool_] | None = None  # CT: hypodense rim around a hematoma


def _box(
    shape: tuple[int, ...], centre_ijk: NDArray[np.float64], radius_vox: float
) -> tuple[slice, slice, slice]:
    lo = np.maximum(np.floor(centre_ijk - radius_vox).astype(int), 0)
    hi = np.minimum(np.ceil(centre_ijk + radius_vox).astype(int) + 1, shape)
    return (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))


def _random_rotation(rng: np.random.Generator) -> NDArray[np.float64]:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _ellipsoid_distance(
    base: BaseAnatomy,
    box: tuple[slice, slice, slice],
    centre_mni: NDArray[np.float64],
    axes: NDArray[np.float64],
    rot: NDArray[np.float64],
) -> NDArray[np.float32]:
    """Distance (mm, in units of a unit sphere scaled by ``axes``) from centre inside a box."""
    ii, jj, kk = (np.arange(s.start, s.stop) for s in box)
    a = base.affine
    x = (a[0, 3] + ii * a[0, 0] - centre_mni[0])[:, None, None]
    y = (a[1, 3] + jj * a[1, 1] - centre_mni[1])[None, :, None]
    z = (a[2, 3] + kk * a[2, 2] - centre_mni[2])[None, None, :]
    # rotate into the ellipsoid's frame, then scale each axis
    u = (rot[0, 0] * x + rot[1, 0] * y + rot[2, 0] * z) / axes[0]
    v = (rot[0, 1] * x + rot[1, 1] * y + rot[2, 1] * z) / axes[1]
    w = (rot[0, 2] * x + rot[1, 2] * y + rot[2, 2] * z) / axes[2]
    return np.sqrt(u * u + v * v + w * w).astype(np.float32)


def _pick_voxel(
    base: BaseAnatomy, candidates: NDArray[np.bool_], rng: np.random.Generator
) -> NDArray[np.float64]:
    idx = np.flatnonzero(candidates)
    if idx.size == 0:
        raise RuntimeError("no candidate location for a lesion")
    ijk = np.array(np.unravel_index(int(rng.choice(idx)), candidates.shape), dtype=float)
    return base.world(ijk[None])[0]


def glioma(base: BaseAnatomy, rng: np.random.Generator) -> Pathology:
    """A glioblastoma-like tumour: necrotic core, irregular enhancing rim, edema along WM."""
    labels = np.zeros(base.shape, dtype=np.uint8)
    candidates = (base.wm > 0.6) & (base.d_in > 22.0)
    centre = _pick_voxel(base, candidates, rng)
    r_wt = float(rng.uniform(25.0, 42.0))
    r_tc = r_wt * float(rng.uniform(0.45, 0.75))
    r_ncr = r_tc * float(rng.uniform(0.35, 0.7)) if rng.random() < 0.85 else 0.0
    axes = rng.uniform(0.75, 1.25, size=3)
    rot = _random_rotation(rng)
    c_ijk = base.index(centre[None])[0]
    box = _box(base.shape, c_ijk, r_wt * 1.9)
    d = _ellipsoid_distance(base, box, centre, axes, rot)
    shape = d.shape
    n1, n2, n3 = (smooth_noise(shape, rng, step=s) for s in (10, 7, 6))
    tissue = (base.gm[box] + base.wm[box]) > 0.5
    # edema prefers white matter: shrink the effective distance where WM is high
    d_ed = d + 0.28 * r_wt * n1 - 8.0 * (base.wm[box] - 0.5)
    sub = np.zeros(shape, dtype=np.uint8)
    sub[(d_ed < r_wt) & tissue] = ED
    tc = (d + 0.22 * r_tc * n2 < r_tc) & base.brain[box]
    sub[tc] = ET
    if r_ncr > 0:
        sub[(d + 0.3 * r_ncr * n3 < r_ncr) & base.brain[box]] = NCR
    labels[box] = sub
    lesion = Lesion("glioma", tuple(float(v) for v in centre), 2 * r_tc)  # type: ignore[arg-type]
    return Pathology("glioma", labels, lesions=[lesion])


def metastases(base: BaseAnatomy, rng: np.random.Generator) -> Pathology:
    """1 to 15 metastases of 2 to 30 mm at the grey/white junction; larger ones ring-enhance."""
    labels = np.zeros(base.shape, dtype=np.uint8)
    instances = np.zeros(base.shape, dtype=np.uint16)
    n = int(rng.integers(1, 16))
    # small lesions are commoner: log-uniform diameters
    diameters = np.sort(np.exp(rng.uniform(np.log(2.0), np.log(30.0), size=n)))[::-1]
    junction = (base.gm > 0.3) & (base.gm < 0.7) & base.brain
    placed: list[tuple[NDArray[np.float64], float]] = []
    lesions: list[Lesion] = []
    for diameter in diameters:
        r = float(diameter) / 2.0
        ok = junction & (base.d_in > r + 3.0)
        centre = None
        for _ in range(30):
            c = _pick_voxel(base, ok, rng)
            if all(np.linalg.norm(c - p) > r + pr + 6.0 for p, pr in placed):
                centre = c
                break
        if centre is None:
            continue
        placed.append((centre, r))
        r_ed = r * float(rng.uniform(1.6, 3.0)) if diameter > 6 else 0.0
        c_ijk = base.index(centre[None])[0]
        box = _box(base.shape, c_ijk, max(r, r_ed) * 1.5 + 3)
        axes = rng.uniform(0.85, 1.15, size=3)
        d = _ellipsoid_distance(base, box, centre, axes, _random_rotation(rng))
        sub = labels[box]
        inst = instances[box]
        if r_ed > 0:
            noise = smooth_noise(d.shape, rng, step=6)
            tissue = (base.gm[box] + base.wm[box]) > 0.5
            edema = (d + 0.25 * r_ed * noise < r_ed) & tissue & (sub == 0)
            sub[edema] = ED
        core = d < max(r, 0.8)
        sub[core] = ET
        if diameter > 10 and rng.random() < 0.65:
            sub[d < r * float(rng.uniform(0.4, 0.65))] = NCR
        inst[core] = len(lesions) + 1
        lesions.append(
            Lesion("metastasis", tuple(float(v) for v in centre), float(diameter), len(lesions) + 1)  # type: ignore[arg-type]
        )
    return Pathology("metastasis", labels, instances=instances, lesions=lesions)


def _surface_point(base: BaseAnatomy, direction: NDArray[np.float64]) -> NDArray[np.float64]:
    """Where a ray from the brain centre leaves the intracranial envelope (MNI mm)."""
    direction = direction / np.linalg.norm(direction)
    last = BRAIN_CENTRE_MNI
    for t in np.arange(0.0, 130.0, 1.0):
        p = BRAIN_CENTRE_MNI + t * direction
        ijk = np.round(base.index(p[None])[0]).astype(int)
        if np.any(ijk < 0) or np.any(ijk >= base.shape) or not base.icv[tuple(ijk)]:
            return last
        last = p
    return last


def _convexity_direction(rng: np.random.Generator, side: float) -> NDArray[np.float64]:
    # lateral convexity: mostly sideways, some up/down and front/back
    return np.array([side * rng.uniform(0.6, 1.0), rng.uniform(-0.7, 0.5), rng.uniform(-0.2, 0.8)])


def _shell_collection(
    base: BaseAnatomy,
    rng: np.random.Generator,
    radius: float,
    t_max: float,
    profile: str,
    side: float,
) -> tuple[tuple[slice, slice, slice], NDArray[np.bool_], NDArray[np.float64]]:
    """A blood collection under the inner table: lens ("lens") or crescent ("crescent")."""
    p = _surface_point(base, _convexity_direction(rng, side))
    box = _box(base.shape, base.index(p[None])[0], radius + 2)
    r = _ellipsoid_distance(base, box, p, np.ones(3), np.eye(3))
    rr = np.clip(r / radius, 0.0, 1.0)
    if profile == "lens":
        thickness = t_max * (1.0 - rr**2)
    else:
        thickness = t_max * np.sqrt(np.clip(1.0 - rr**6, 0.0, 1.0))
    a = base.affine
    xs = (a[0, 3] + np.arange(box[0].start, box[0].stop) * a[0, 0])[:, None, None]
    same_side = xs * side > 2.0  # neither collection crosses the falx here
    mask = base.icv[box] & (base.d_in[box] < thickness) & (r < radius) & same_side
    return box, mask, p


def hemorrhage(
    base: BaseAnatomy, rng: np.random.Generator, subtypes: Sequence[str] | None = None
) -> Pathology:
    """One to three hemorrhage subtypes (or exactly ``subtypes``) with acute-blood HU values."""
    labels = np.zeros(base.shape, dtype=np.uint8)
    names = list(HEMORRHAGE_CODES)
    weights = np.array([0.6, 1.2, 0.8, 1.0, 1.2])
    k = int(rng.choice([1, 1, 2, 2, 3]))
    chosen = rng.choice(len(names), size=k, replace=False, p=weights / weights.sum())
    if subtypes is not None:
        unknown = set(subtypes) - set(names)
        if unknown:
            raise ValueError(f"unknown hemorrhage subtype(s): {', '.join(sorted(unknown))}")
        chosen = np.array([names.index(s) for s in subtypes])
    lesions: list[Lesion] = []
    blood_hu: dict[int, float] = {}
    edema = np.zeros(base.shape, dtype=bool)
    for i in sorted(int(c) for c in chosen):
        name = names[i]
        code = HEMORRHAGE_CODES[name]
        side = float(rng.choice([-1.0, 1.0]))
        if name == "epidural":
            radius, t_max = float(rng.uniform(18, 32)), float(rng.uniform(8, 18))
            box, mask, p = _shell_collection(base, rng, radius, t_max, "lens", side)
            labels[box][mask] = code
            centre, diameter = p, 2 * radius
            blood_hu[code] = float(rng.uniform(55, 80))
        elif name == "subdural":
            radius, t_max = float(rng.uniform(40, 62)), float(rng.uniform(4, 12))
            box, mask, p = _shell_collection(base, rng, radius, t_max, "crescent", side)
            labels[box][mask] = code
            centre, diameter = p, 2 * radius
            blood_hu[code] = float(rng.uniform(50, 75))
        elif name == "intraparenchymal":
            if rng.random() < 0.6:  # hypertensive: basal ganglia / thalamus
                centre = np.array(
                    [side * rng.uniform(18, 28), rng.uniform(-22, 8), rng.uniform(-2, 12)]
                )
            else:  # lobar
                centre = _pick_voxel(base, (base.wm > 0.6) & (base.d_in > 20.0), rng)
            radius = float(rng.uniform(6, 20))
            box = _box(base.shape, base.index(centre[None])[0], radius * 2.2)
            d = _ellipsoid_distance(
                base, box, centre, rng.uniform(0.75, 1.3, size=3), _random_rotation(rng)
            )
            noise = smooth_noise(d.shape, rng, step=5)
            core = (d + 0.25 * radius * noise < radius) & base.brain[box]
            labels[box][core] = code
            ring = (d < radius * 1.6) & ~core & base.brain[box]
            edema[box] |= ring
            diameter = 2 * radius
            blood_hu[code] = float(rng.uniform(60, 85))
        elif name == "intraventricular":
            vent = base.ventricles
            ys = np.nonzero(vent)[1]
            # blood layers in the dependent (posterior, for a supine patient) horns
            cut = float(np.quantile(ys, rng.uniform(0.1, 0.4)))
            jj = np.arange(base.shape[1])[None, :, None]
            mask = vent & (jj <= cut)
            labels[mask] = code
            centre = base.world(np.argwhere(mask).mean(0)[None])[0]
            diameter = 0.0
            blood_hu[code] = float(rng.uniform(50, 75))
        else:  # subarachnoid: blood in the sulci around a convexity or sylvian point
            p = _surface_point(base, _convexity_direction(rng, side))
            p = p + (BRAIN_CENTRE_MNI - p) * 0.15
            radius = float(rng.uniform(25, 45))
            box = _box(base.shape, base.index(p[None])[0], radius)
            d = _ellipsoid_distance(base, box, p, np.ones(3), np.eye(3))
            sulci = (base.csf[box] > 0.35) & ~base.ventricles[box] & (base.d_in[box] < 25.0)
            mask = sulci & (d < radius)
            labels[box][mask & (labels[box] == 0)] = code
            centre, diameter = p, 2 * radius
            blood_hu[code] = float(rng.uniform(45, 70))
        lesions.append(
            Lesion("hemorrhage", tuple(float(v) for v in centre), float(diameter), code, name)  # type: ignore[arg-type]
        )
    return Pathology(
        "hemorrhage", labels, lesions=lesions, blood_hu=blood_hu, perilesional_edema=edema
    )


def none(base: BaseAnatomy) -> Pathology:
    """A normal study: empty label map."""
    return Pathology("normal", np.zeros(base.shape, dtype=np.uint8))


def for_kind(kind: str, base: BaseAnatomy, rng: np.random.Generator) -> Pathology:
    """The pathology a study kind draws: ``mr-glioma``/``glioma``, ``mr-metastasis``/
    ``metastasis``, ``ct-hemorrhage``/``hemorrhage``; anything else is a normal study."""
    name = kind.removeprefix("mr-").removeprefix("ct-")
    if name == "glioma":
        return glioma(base, rng)
    if name == "metastasis":
        return metastases(base, rng)
    if name == "hemorrhage":
        return hemorrhage(base, rng)
    return none(base)
