"""Per-app selection rules: which classified series fills each role the app needs.

The rules are data, taken from the app's ``spec.series`` (:class:`SeriesRequirements`):

* ``required`` / ``optional`` roles; a role is filled by a series of the same class name;
* ``minProbability``: a series is a candidate only when the classifier's probability for its
  class reaches it;
* ``prefer``: tie-breaks applied in order when several candidates remain; see
  :data:`PREFERENCES`. Whatever is left is decided by probability, then series number.

Every choice comes with a reason a person can read, and a missing required role comes with
the candidate series that came closest, so the job fails at classify and says why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from radpipe.api.models import SeriesRequirements
from radpipe.series.headers import SeriesHeader
from radpipe.series.model import Prediction

#: Roles that are post-contrast (``latest-post-contrast`` applies to them only).
POST_CONTRAST_ROLES: frozenset[str] = frozenset({"t1c"})

#: Names people read in messages.
ROLE_TITLES: dict[str, str] = {
    "t1": "T1 (pre-contrast)",
    "t1c": "T1 post-contrast",
    "t2": "T2",
    "flair": "FLAIR",
    "dwi": "diffusion (DWI)",
    "adc": "ADC map",
    "swi": "SWI",
    "perfusion": "perfusion",
    "ct_brain": "non-contrast CT head, brain kernel",
    "ct_bone": "CT head, bone kernel",
}


class SelectionError(ValueError):
    """The selection rules themselves are invalid (an unknown tie-break, for example)."""


@dataclass(frozen=True)
class ClassifiedSeries:
    """A series header with the classifier's prediction for it."""

    header: SeriesHeader
    prediction: Prediction

    @property
    def label(self) -> str:
        """The predicted class."""
        return self.prediction.label

    @property
    def probability(self) -> float:
        """The probability of the predicted class."""
        return self.prediction.probability

    def probability_of(self, cls: str) -> float:
        """The probability the classifier gave ``cls`` for this series."""
        return self.prediction.probabilities.get(cls, 0.0)

    def describe(self) -> str:
        """ "series 7 'AX T1 +C'" - how messages name a series."""
        number = self.header.number
        name = f"series {number}" if number is not None else f"series {self.header.uid}"
        return f"{name} '{self.header.description}'"


@dataclass(frozen=True)
class Preference:
    """One tie-break: a sort key (smaller is better) and how to say what it saw."""

    key: Callable[[ClassifiedSeries, str], float]
    explain: Callable[[ClassifiedSeries, str], str]


def _thickness(s: ClassifiedSeries) -> float:
    value = s.header.slice_thickness
    return float(value) if value is not None else math.inf


def _number(s: ClassifiedSeries) -> float:
    number = s.header.number
    return float(number) if number is not None else -math.inf


def _plane(name: str, title: str) -> Preference:
    return Preference(
        key=lambda s, _role: 0.0 if s.header.orientation == name else 1.0,
        explain=lambda s, _role: title if s.header.orientation == name else s.header.orientation,
    )


#: The tie-breaks an app may name in ``prefer``.
PREFERENCES: dict[str, Preference] = {
    "original": Preference(
        key=lambda s, _r: 0.0 if s.header.is_original else 1.0,
        explain=lambda s, _r: "original" if s.header.is_original else "derived",
    ),
    "3d": Preference(
        key=lambda s, _r: 0.0 if s.header.is_3d else 1.0,
        explain=lambda s, _r: "3D" if s.header.is_3d else "2D",
    ),
    "2d": Preference(
        key=lambda s, _r: 1.0 if s.header.is_3d else 0.0,
        explain=lambda s, _r: "3D" if s.header.is_3d else "2D",
    ),
    "thinnest": Preference(
        key=lambda s, _r: _thickness(s),
        explain=lambda s, _r: f"{_thickness(s):g} mm slices",
    ),
    "thickest": Preference(
        key=lambda s, _r: -_thickness(s) if math.isfinite(_thickness(s)) else math.inf,
        explain=lambda s, _r: f"{_thickness(s):g} mm slices",
    ),
    "axial": _plane("ax", "axial"),
    "sagittal": _plane("sag", "sagittal"),
    "coronal": _plane("cor", "coronal"),
    "latest": Preference(
        key=lambda s, _r: -_number(s),
        explain=lambda s, _r: f"series number {s.header.number}",
    ),
    "earliest": Preference(
        key=lambda s, _r: _number(s) if math.isfinite(_number(s)) else math.inf,
        explain=lambda s, _r: f"series number {s.header.number}",
    ),
    "latest-post-contrast": Preference(
        key=lambda s, role: -_number(s) if role in POST_CONTRAST_ROLES else 0.0,
        explain=lambda s, _r: f"acquired later (series number {s.header.number})",
    ),
    "most-images": Preference(
        key=lambda s, _r: -float(s.header.instances or 0),
        explain=lambda s, _r: f"{s.header.instances or 0} images",
    ),
}


@dataclass
class RoleChoice:
    """The outcome for one role: the chosen series (or None) and why."""

    role: str
    required: bool
    chosen: ClassifiedSeries | None
    reason: str
    candidates: list[ClassifiedSeries] = field(default_factory=list)


@dataclass
class Selection:
    """The outcome for all roles of an app."""

    choices: dict[str, RoleChoice]
    min_probability: float

    @property
    def missing(self) -> list[str]:
        """Required roles no series could fill."""
        return [r for r, c in self.choices.items() if c.required and c.chosen is None]

    @property
    def ok(self) -> bool:
        """Whether every required role is filled."""
        return not self.missing


def role_title(role: str) -> str:
    """How messages name a role: "T1 post-contrast (t1c)"."""
    title = ROLE_TITLES.get(role)
    return f"{title} ({role})" if title else role


def check_preferences(prefer: Sequence[str]) -> None:
    """Refuse unknown tie-break names, listing the known ones."""
    unknown = [p for p in prefer if p not in PREFERENCES]
    if unknown:
        raise SelectionError(
            f"unknown series preference(s) {', '.join(unknown)}; known: {', '.join(PREFERENCES)}"
        )


def rank(
    candidates: Sequence[ClassifiedSeries], role: str, prefer: Sequence[str]
) -> list[ClassifiedSeries]:
    """Candidates best first: by each preference in order, then probability, then number."""
    check_preferences(prefer)

    def sort_key(s: ClassifiedSeries) -> tuple[float, ...]:
        keys = [PREFERENCES[p].key(s, role) for p in prefer]
        return (*keys, -s.probability, _number(s))

    return sorted(candidates, key=sort_key)


def _why(
    winner: ClassifiedSeries,
    runner_up: ClassifiedSeries | None,
    role: str,
    prefer: Sequence[str],
    total: int,
    min_probability: float,
) -> str:
    base = f"{winner.describe()}: {winner.label} p={winner.probability:.2f}"
    if runner_up is None:
        return f"{base}; the only {role} series with p ≥ {min_probability:.2f}"
    for name in prefer:
        pref = PREFERENCES[name]
        if pref.key(winner, role) != pref.key(runner_up, role):
            return (
                f"{base}; best of {total} candidates by '{name}': {pref.explain(winner, role)}"
                f" vs {runner_up.describe()}: {pref.explain(runner_up, role)}"
            )
    if winner.probability != runner_up.probability:
        return (
            f"{base}; best of {total} candidates, equal on {', '.join(prefer) or 'preferences'}"
            f", higher probability than {runner_up.describe()} ({runner_up.probability:.2f})"
        )
    return f"{base}; best of {total} equal candidates, lowest series number"


def _missing_reason(
    role: str, series: Sequence[ClassifiedSeries], min_probability: float
) -> tuple[str, list[ClassifiedSeries]]:
    near = sorted(
        (s for s in series if s.label == role or s.probability_of(role) >= 0.05),
        key=lambda s: -s.probability_of(role),
    )[:5]
    low = [s for s in near if s.label == role]
    if low:
        head = (
            f"no {role_title(role)} series with probability ≥ {min_probability:.2f} "
            f"(low confidence)"
        )
    else:
        head = f"no {role_title(role)} series found"
    return head, near


def describe_candidates(series: Sequence[ClassifiedSeries], role: str) -> str:
    """ "series 9 'AX T1 +C' → t1c 0.62; ..." for messages."""
    parts = []
    for s in series:
        text = f"{s.describe()} → {s.label} {s.probability:.2f}"
        if s.label != role:
            text += f" ({role} {s.probability_of(role):.2f})"
        parts.append(text)
    return "; ".join(parts)


def select_series(
    series: Sequence[ClassifiedSeries], requirements: SeriesRequirements
) -> Selection:
    """Fill every role of ``requirements`` from the classified ``series``."""
    check_preferences(requirements.prefer)
    threshold = requirements.min_probability
    choices: dict[str, RoleChoice] = {}
    roles = [(r, True) for r in requirements.required]
    roles += [(r, False) for r in requirements.optional if r not in requirements.required]
    for role, required in roles:
        candidates = [s for s in series if s.label == role and s.probability >= threshold]
        if not candidates:
            head, near = _missing_reason(role, series, threshold)
            detail = f"; candidates: {describe_candidates(near, role)}" if near else ""
            choices[role] = RoleChoice(role, required, None, head + detail, near)
            continue
        ranked = rank(candidates, role, requirements.prefer)
        runner_up = ranked[1] if len(ranked) > 1 else None
        reason = _why(ranked[0], runner_up, role, requirements.prefer, len(ranked), threshold)
        choices[role] = RoleChoice(role, required, ranked[0], reason, ranked)
    return Selection(choices, threshold)
