"""A rule-based baseline: keyword matching on SeriesDescription (what sites script by hand).

Used by the benchmark to show what the learned classifier adds; never used for selection.
"""

from __future__ import annotations

import re

from radpipe.series.features import normalise_text
from radpipe.series.headers import SeriesHeader

#: (class, pattern) tried in order on the normalised description; first match wins.
RULES: tuple[tuple[str, str], ...] = (
    ("localizer", r"\b(loc|localizer|localiser|scout|survey|3 ?pl(ane)?|locator)\b"),
    ("ct_scout", r"\b(topogram|topo|surview|scanogram)\b"),
    ("adc", r"\b(adc|apparent)\b"),
    ("dwi", r"\b(dwi|diff|diffusion|trace|tracew|b1000)\b"),
    ("swi", r"\b(swi|swan|swip|susceptibility|venobold|fsbb)\b"),
    ("perfusion", r"\b(perf|perfusion|dsc|pwi|asl|rcbv)\b"),
    ("derived", r"\b(mpr|mip|minip|reformat|sub|subtraction)\b"),
    ("flair", r"\b(flair|tirm|dark ?fluid)\b"),
    ("t1c", r"\b(pluscontrast|post|gd|gad|gado|km|ce|contrast|enhanced)\b"),
    ("t1", r"\b(t1|t1w|mprage|bravo|spgr|fspgr|tfe|vibe)\b"),
    ("t2", r"\b(t2|t2w|tse|fse|propeller|blade)\b"),
    ("ct_bone", r"\b(bone|skull)\b"),
    ("ct_brain", r"\b(head|brain|cerebrum|schadel)\b"),
)
_COMPILED = tuple((cls, re.compile(pattern)) for cls, pattern in RULES)


def keyword_class(header: SeriesHeader) -> str:
    """The class the keyword rules give a series' description ("other" when none match)."""
    text = normalise_text(header.get("SeriesDescription") or header.get("ProtocolName"))
    for cls, pattern in _COMPILED:
        if pattern.search(text):
            if cls == "t1c" and not re.search(r"\bt1", text):
                continue  # "post" alone does not make a T1 post-contrast
            return cls
    return "other"
