"""The series classes: what the classifier predicts and the synthetic studies are labelled with.

One list, so the training corpus, the synthetic ground truth and the classifier cannot drift.
"""

from __future__ import annotations

SERIES_CLASSES: tuple[str, ...] = (
    "t1",
    "t1c",
    "t2",
    "flair",
    "dwi",
    "adc",
    "swi",
    "localizer",
    "perfusion",
    "derived",
    "ct_brain",
    "ct_bone",
    "ct_scout",
    "other",
)
