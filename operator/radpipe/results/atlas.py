"""Coarse brain location from MNI152 coordinates: hemisphere and lobe/region.

No lobe atlas ships offline with nilearn (its atlas fetchers download), so the lobe is read
from boxes in MNI space drawn from standard anatomy (central sulcus near y = -20 at the
vertex, parieto-occipital boundary near y = -70, temporal lobe below the Sylvian fissure).
It is **approximate**: good for "left frontal" in a report, not for surgical planning; a
lesion near a boundary may be named after its neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence

#: |x| below this (mm) counts as midline.
MIDLINE_MM = 3.0


def hemisphere(x_ras: float) -> str:
    """``left``/``right``/``midline`` from the RAS x coordinate (MNI: +x is the right side)."""
    if abs(x_ras) < MIDLINE_MM:
        return "midline"
    return "right" if x_ras > 0 else "left"


def region(mni_ras: Sequence[float]) -> str:
    """The coarse region (lobe, deep grey matter, cerebellum, brainstem) at an MNI point."""
    x, y, z = (float(v) for v in mni_ras[:3])
    ax = abs(x)
    if ax < 12 and -45 <= y <= -10 and z < -8:
        return "brainstem"
    if y < -40 and z < -18:
        return "cerebellum"
    if z < -10 and -45 <= y < 12:
        # below the Sylvian fissure: lateral is temporal, medial is the brainstem
        return "temporal lobe" if ax >= 22 else "brainstem"
    if ax < 26 and -35 <= y <= 22 and -8 <= z <= 22:
        return "deep grey matter"
    if 26 <= ax < 42 and -30 <= y <= 25 and -10 <= z <= 22:
        return "insula"
    if y < -70:
        return "occipital lobe"
    if z < 8 and y < 12 and ax >= 28:
        return "temporal lobe"
    if y < -20 and z >= 8:
        return "parietal lobe"
    if y < -45:
        return "occipital lobe" if z < 8 else "parietal lobe"
    return "frontal lobe"


def describe(mni_ras: Sequence[float]) -> tuple[str, str]:
    """``(hemisphere, "left frontal lobe")``: the pair a report shows for one lesion."""
    side = hemisphere(float(mni_ras[0]))
    where = region(mni_ras)
    if side == "midline" or where == "brainstem":
        return side, where
    return side, f"{side} {where}"
