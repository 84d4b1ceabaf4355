"""Classifying one study and describing the outcome as a JSON document.

Shared by the classify stage and ``radpipe classify``: predict every series in one call,
apply the app's selection rules, and build the document both print/store::

    {"studyInstanceUID": ..., "app": ..., "ok": true,
     "series": [{"seriesInstanceUID", "seriesNumber", "description", "class",
                 "probability", ...}],
     "roles": {"t1": "<SeriesInstanceUID>" | null, ...},
     "reasons": {"t1": "...", ...},
     "selectedSeries": [{"role", "seriesInstanceUID", "description", "probability",
                         "reason"}],
     "missing": [...], "error": "..."}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from radpipe.api.models import SeriesRequirements
from radpipe.series.headers import SeriesHeader
from radpipe.series.model import SeriesClassifier
from radpipe.series.selection import (
    ClassifiedSeries,
    Selection,
    describe_candidates,
    role_title,
    select_series,
)


@dataclass
class StudyClassification:
    """Every series of a study with its prediction, and the role selection."""

    study_uid: str
    series: list[ClassifiedSeries]
    selection: Selection
    app: str | None = None

    @property
    def ok(self) -> bool:
        """Whether every required role was filled."""
        return self.selection.ok

    def failure_message(self) -> str:
        """What is missing and which series came closest (empty when nothing is missing)."""
        parts = []
        for role in self.selection.missing:
            choice = self.selection.choices[role]
            parts.append(choice.reason)
        if not parts:
            return ""
        missing = ", ".join(role_title(r) for r in self.selection.missing)
        return f"missing required series: {missing}. " + " | ".join(parts)

    def failure_hint(self) -> str:
        """What a person can do about a failed selection."""
        seen = describe_candidates(self.series[:12], "")
        return (
            "check that the study holds the missing contrast(s); if it does under an unusual "
            "name, look at `radpipe classify <dir> --app "
            f"{self.app or 'APP'}` and report the series so the classifier can learn it, or "
            f"lower spec.series.minProbability of the app. Series in the study: {seen}"
        )

    def document(self) -> dict[str, Any]:
        """The JSON document (see the module docstring)."""
        series = [
            {
                "seriesInstanceUID": s.header.uid,
                "seriesNumber": s.header.number,
                "description": s.header.description,
                "class": s.label,
                "probability": round(s.probability, 4),
                "modality": s.header.modality,
                "instances": s.header.instances,
                "alternatives": [
                    {"class": c, "probability": round(p, 4)} for c, p in s.prediction.alternatives()
                ],
            }
            for s in self.series
        ]
        roles: dict[str, str | None] = {}
        reasons: dict[str, str] = {}
        selected: list[dict[str, Any]] = []
        for role, choice in self.selection.choices.items():
            roles[role] = choice.chosen.header.uid if choice.chosen else None
            reasons[role] = choice.reason
            if choice.chosen is not None:
                selected.append(
                    {
                        "role": role,
                        "seriesInstanceUID": choice.chosen.header.uid,
                        "seriesNumber": choice.chosen.header.number,
                        "description": choice.chosen.header.description,
                        "probability": round(choice.chosen.probability, 4),
                        "reason": choice.reason,
                    }
                )
        document: dict[str, Any] = {
            "studyInstanceUID": self.study_uid,
            "app": self.app,
            "ok": self.ok,
            "series": series,
            "roles": roles,
            "reasons": reasons,
            "selectedSeries": selected,
            "missing": self.selection.missing,
        }
        if not self.ok:
            document["error"] = self.failure_message()
        return document


def _series_order(header: SeriesHeader) -> tuple[float, str]:
    number = header.number
    return (float(number) if number is not None else float("inf"), header.time)


def classify_study(
    headers: Sequence[SeriesHeader],
    classifier: SeriesClassifier,
    requirements: SeriesRequirements,
    app: str | None = None,
) -> StudyClassification:
    """Predict every series of one study (one model call) and select the app's roles."""
    ordered = sorted(headers, key=_series_order)
    predictions = classifier.predict_study(ordered)
    series = [ClassifiedSeries(h, p) for h, p in zip(ordered, predictions, strict=True)]
    study_uid = next((h.study_uid for h in ordered if h.study_uid), "")
    return StudyClassification(study_uid, series, select_series(series, requirements), app)
