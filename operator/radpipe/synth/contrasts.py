"""Image contrasts from tissue classes: T1, T1 post-contrast, T2, FLAIR, DWI, ADC, SWI and CT HU.

Intensities are relative (MR) or Hounsfield units (CT), jittered per case so that no two studies
share exactly the same grey levels, as happens between scanners and sites. Inside the brain the
GM/WM/CSF fractions of the templates mix the tissue values, which gives realistic partial volume
at the cortex and ventricles for free.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from radpipe.synth.anatomy import BaseAnatomy, HeadLayers
from radpipe.synth.pathology import ED, ET, HEMORRHAGE_CODES, NCR, Pathology

# Columns: air, csf, (brain: unused), dura, bone, diploe, scalp, fat, sinus | gm, wm, ncr, ed, et
_KEYS = ("air", "csf", "brain", "dura", "bone", "diploe", "scalp", "fat", "sinus")
_BRAIN = ("gm", "wm", "ncr", "ed", "et")

TABLES: dict[str, dict[str, float]] = {
    "t1": dict(
        air=0.0, csf=0.18, brain=0.0, dura=0.35, bone=0.04, diploe=0.55, scalp=0.45, fat=0.95,
        sinus=0.25, gm=0.50, wm=0.72, ncr=0.22, ed=0.40, et=0.45,
    ),
    "t1c": dict(
        air=0.0, csf=0.18, brain=0.0, dura=0.70, bone=0.04, diploe=0.55, scalp=0.50, fat=0.95,
        sinus=0.95, gm=0.51, wm=0.72, ncr=0.22, ed=0.41, et=0.98,
    ),
    "t2": dict(
        air=0.0, csf=1.0, brain=0.0, dura=0.30, bone=0.04, diploe=0.45, scalp=0.45, fat=0.65,
        sinus=0.08, gm=0.55, wm=0.40, ncr=0.90, ed=0.78, et=0.60,
    ),
    "flair": dict(
        air=0.0, csf=0.06, brain=0.0, dura=0.30, bone=0.04, diploe=0.40, scalp=0.45, fat=0.70,
        sinus=0.08, gm=0.55, wm=0.42, ncr=0.35, ed=0.95, et=0.70,
    ),
    "dwi": dict(
        air=0.0, csf=0.05, brain=0.0, dura=0.10, bone=0.02, diploe=0.10, scalp=0.15, fat=0.05,
        sinus=0.02, gm=0.45, wm=0.40, ncr=0.15, ed=0.40, et=0.55,
    ),
    "b0": dict(
        air=0.0, csf=1.0, brain=0.0, dura=0.25, bone=0.03, diploe=0.20, scalp=0.35, fat=0.20,
        sinus=0.05, gm=0.55, wm=0.42, ncr=0.85, ed=0.75, et=0.60,
    ),
    "swi": dict(
        air=0.0, csf=0.70, brain=0.0, dura=0.30, bone=0.05, diploe=0.30, scalp=0.40, fat=0.60,
        sinus=0.05, gm=0.45, wm=0.52, ncr=0.30, ed=0.50, et=0.40,
    ),
    # ADC in 10^-6 mm²/s, the unit vendors store
    "adc": dict(
        air=0.0, csf=3000, brain=0.0, dura=900, bone=0.0, diploe=400, scalp=1100, fat=150,
        sinus=0.0, gm=830, wm=720, ncr=2000, ed=1400, et=950,
    ),
    # Hounsfield units
    "ct": dict(
        air=-1000, csf=6, brain=0.0, dura=45, bone=1450, diploe=650, scalp=38, fat=-95,
        sinus=48, gm=38, wm=28, ncr=15, ed=18, et=35,
    ),
}  # fmt: skip


class Phantom:
    """One case's phantom: renders any contrast on the MNI grid on demand.

    Per-case tissue values are jittered (MR ±6 %, CT ±2 HU) so no two studies share exactly
    the same grey levels. Work is done on index lists (brain envelope, lesion voxels), not on
    the whole 10-million-voxel grid, to keep a study within seconds.
    """

    def __init__(
        self,
        base: BaseAnatomy,
        layers: HeadLayers,
        pathology: Pathology,
        rng: np.random.Generator,
    ) -> None:
        from scipy import ndimage as ndi

        self.base, self.layers, self.pathology = base, layers, pathology
        self.tables: dict[str, dict[str, float]] = {}
        for name, table in TABLES.items():
            if name == "ct":
                self.tables[name] = {k: v + float(rng.normal(0, 2.0)) for k, v in table.items()}
                self.tables[name]["air"] = -1000.0
            else:
                self.tables[name] = {
                    k: v * float(rng.uniform(0.94, 1.06)) for k, v in table.items()
                }
        self.lesion_idx = np.flatnonzero(pathology.labels)
        self.lesion_codes = pathology.labels.ravel()[self.lesion_idx]
        # lesion heterogeneity: a coarse (4 mm) noise field sampled at lesion voxels only
        step = 4
        coarse = rng.standard_normal(tuple(s // step + 2 for s in base.shape)).astype(np.float32)
        ijk = np.array(np.unravel_index(self.lesion_idx, base.shape), dtype=np.float32) / step
        self.lesion_tex = ndi.map_coordinates(coarse, ijk, order=1, mode="nearest") * 0.6
        self.edema_idx = (
            np.flatnonzero(pathology.perilesional_edema & (pathology.labels == 0))
            if pathology.perilesional_edema is not None
            else np.zeros(0, dtype=np.int64)
        )
        # separable quadratic receive-coil bias, exp(f(x) + g(y) + h(z)), about ±20 %
        self.bias_terms = rng.normal(0.0, 0.1, size=(3, 2))

    def bias(self, img: NDArray[np.float32]) -> None:
        """Multiply a rendered MR volume in place by the case's smooth bias field."""
        for axis, n in enumerate(img.shape):
            u = np.linspace(-1.0, 1.0, n)
            a, b = self.bias_terms[axis]
            f = np.exp(a * u + b * u * u).astype(np.float32)
            shape = [1, 1, 1]
            shape[axis] = n
            img *= f.reshape(shape)

    def render(self, contrast: str) -> NDArray[np.float32]:
        """The noise-free phantom in one contrast on the MNI grid (float32)."""
        name = "t1" if contrast == "localizer" else contrast
        t = self.tables[name]
        base, path = self.base, self.pathology
        lut = np.array([t[k] for k in _KEYS], dtype=np.float32)
        img = lut[self.layers.tissue]
        flat = img.ravel()
        vals = base.gm_i * np.float32(t["gm"]) + base.wm_i * np.float32(t["wm"])
        vals += base.csf_i * np.float32(t["csf"])
        flat[base.icv_idx] = vals
        idx, codes, tex = self.lesion_idx, self.lesion_codes, self.lesion_tex
        if path.kind in ("glioma", "metastasis"):
            for code, key in ((ED, "ed"), (NCR, "ncr"), (ET, "et")):
                m = codes == code
                flat[idx[m]] = np.float32(t[key]) * (1.0 + 0.08 * tex[m])
        elif path.kind == "hemorrhage" and name == "ct":
            flat[self.edema_idx] = np.float32(t["ed"])
            sah = HEMORRHAGE_CODES["subarachnoid"]
            for code, hu in path.blood_hu.items():
                m = codes == code
                sel = idx[m]
                if code == sah:  # blood replaces the CSF fraction of the sulci only
                    g, w, c = base.gm.ravel()[sel], base.wm.ravel()[sel], base.csf.ravel()[sel]
                    flat[sel] = g * t["gm"] + w * t["wm"] + c * hu
                else:
                    flat[sel] = np.float32(hu) + 3.0 * tex[m]
        return img
