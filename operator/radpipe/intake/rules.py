"""Routing rules: which app runs on a study that was pushed to radpipe, and how.

Rules are data (the ``intake.rules`` config list, or a YAML file / ConfigMap named by
``intake.rules_file``). Each rule names conditions on study- and series-level attributes
and what to start when they all hold::

    - name: ct-head-bleed
      match:
        modality: CT                    # any series of the study has one of these modalities
        bodyPart: [HEAD, BRAIN]         # BodyPartExamined of any series (case-insensitive)
        studyDescription: "head|brain"  # regular expression, searched, case-insensitive
        seriesClasses: [ct_brain]       # every class present (the series classifier)
        callingAE: [CT-SCANNER-1]       # who sent the study
        institution: "general"          # InstitutionName, regular expression
      app: hemorrhage
      options: {keySlices: 3}
      priority: stat
      review: true                      # hold results until a radiologist accepts
      delivery: {pacs: [hospital-pacs]}
      onLaterSeries: ignore             # or new-job: more series later start another job

Rules are checked in order; every rule whose conditions all hold starts its app, except
that an app already started by an earlier rule is not started twice, and a rule with
``final: true`` stops the search. Rules are validated on load (unknown keys, bad regular
expressions, unknown apps, options that do not fit the app's schema), and every error names
the rule by position and name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from radpipe.api.models import APP_NAME_PATTERN, AnalysisApp, DeliverySpec, Priority


class RulesError(ValueError):
    """The routing rules are invalid; the message names the rule and the key."""


def _as_list(value: str | list[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


class _RuleModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class RuleMatch(_RuleModel):
    """The conditions of a rule; every one given must hold (none given: always)."""

    modality: list[str] | None = Field(None, description="any series has one of these")
    body_part: list[str] | None = Field(None, description="BodyPartExamined of any series")
    study_description: str | None = Field(None, description="regular expression (search)")
    series_description: str | None = Field(None, description="regex, any series matches")
    series_classes: list[str] | None = Field(None, description="all present in the study")
    min_class_probability: float = Field(0.5, ge=0, le=1)
    calling_ae: list[str] | None = Field(
        None, alias="callingAE", description="sender AE titles (any of)"
    )
    institution: str | None = Field(None, description="InstitutionName, regular expression")

    @field_validator("modality", "body_part", "series_classes", "calling_ae", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _as_list(value) if isinstance(value, str | list) else value

    @field_validator("study_description", "series_description", "institution")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as err:
                raise ValueError(f"not a valid regular expression ({err})") from err
        return value


class Rule(_RuleModel):
    """One routing rule: conditions, and the job to start when they hold."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    match: RuleMatch = Field(default_factory=RuleMatch)
    app: str = Field(pattern=APP_NAME_PATTERN)
    options: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = Priority.ROUTINE
    review: bool = Field(False, description="hold delivery until a radiologist accepts")
    delivery: DeliverySpec | None = Field(None, description="default: the default PACS")
    on_later_series: Literal["ignore", "new-job"] = "ignore"
    final: bool = Field(False, description="stop checking rules after this one matches")


# -- what a study looks like to the rules ---------------------------------------------------


@dataclass(frozen=True)
class SeriesFacts:
    """One series of a received study, as the rules see it."""

    series_instance_uid: str
    modality: str = ""
    body_part: str = ""
    description: str = ""
    number: int | None = None
    instances: int = 0
    series_class: str | None = None
    class_probability: float | None = None


@dataclass(frozen=True)
class StudyFacts:
    """A received study: its study-level attributes, senders and series."""

    study_instance_uid: str
    accession: str = ""
    study_description: str = ""
    institution: str = ""
    calling_aes: tuple[str, ...] = ()
    series: tuple[SeriesFacts, ...] = ()
    classifier_note: str | None = None  # why series classes are missing, when they are

    @property
    def modalities(self) -> list[str]:
        """Modalities of the study's series, sorted."""
        return sorted({s.modality for s in self.series if s.modality})


@dataclass
class Evaluation:
    """Whether one rule matched a study, and why (one line per condition)."""

    rule: Rule
    matched: bool
    reasons: list[str] = field(default_factory=list)
    starts: bool = False  # matched and not shadowed by an earlier rule for the same app
    note: str = ""


def _any_of(wanted: Sequence[str], present: Iterable[str]) -> tuple[bool, list[str]]:
    have = sorted({p for p in present if p})
    hits = [p for p in have if p.upper() in {w.upper() for w in wanted}]
    return bool(hits), have


def _check(rule: Rule, facts: StudyFacts) -> tuple[bool, list[str]]:
    m = rule.match
    ok = True
    reasons: list[str] = []

    def note(passed: bool, text: str) -> None:
        nonlocal ok
        ok = ok and passed
        reasons.append(("✓ " if passed else "✗ ") + text)

    if m.modality is not None:
        hit, have = _any_of(m.modality, (s.modality for s in facts.series))
        note(hit, f"Modality {have or '(none)'} {'has' if hit else 'has none of'} {m.modality}")
    if m.body_part is not None:
        hit, have = _any_of(m.body_part, (s.body_part for s in facts.series))
        note(hit, f"BodyPartExamined {have or '(none)'} vs {m.body_part}")
    if m.study_description is not None:
        hit = re.search(m.study_description, facts.study_description, re.IGNORECASE) is not None
        note(hit, f"StudyDescription {facts.study_description!r} ~ /{m.study_description}/")
    if m.series_description is not None:
        found = [
            s.description
            for s in facts.series
            if re.search(m.series_description, s.description, re.IGNORECASE)
        ]
        note(bool(found), f"SeriesDescription /{m.series_description}/ matches {found[:3]}")
    if m.series_classes is not None:
        classes = {
            s.series_class
            for s in facts.series
            if s.series_class and (s.class_probability or 0.0) >= m.min_class_probability
        }
        missing = [c for c in m.series_classes if c not in classes]
        detail = f"series classes {sorted(classes) or '(none)'} need {m.series_classes}"
        if facts.classifier_note and not classes:
            detail += f" ({facts.classifier_note})"
        note(not missing, detail + (f"; missing {missing}" if missing else ""))
    if m.calling_ae is not None:
        hit, have = _any_of(m.calling_ae, facts.calling_aes)
        note(hit, f"calling AE {have or '(none)'} vs {m.calling_ae}")
    if m.institution is not None:
        hit = re.search(m.institution, facts.institution, re.IGNORECASE) is not None
        note(hit, f"InstitutionName {facts.institution!r} ~ /{m.institution}/")
    if not reasons:
        reasons.append("✓ no conditions: matches every study")
    return ok, reasons


class RuleSet:
    """Validated rules, in order."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = list(rules)

    def evaluate(self, facts: StudyFacts) -> list[Evaluation]:
        """Every rule's verdict on ``facts``; ``starts`` marks the jobs to start."""
        results: list[Evaluation] = []
        started: set[str] = set()
        stopped_by: str | None = None
        for rule in self.rules:
            if stopped_by is not None:
                results.append(
                    Evaluation(rule, False, [], note=f"not checked: rule {stopped_by} is final")
                )
                continue
            matched, reasons = _check(rule, facts)
            evaluation = Evaluation(rule, matched, reasons)
            if matched:
                if rule.app in started:
                    evaluation.note = f"app {rule.app} already started by an earlier rule"
                else:
                    evaluation.starts = True
                    started.add(rule.app)
                if rule.final:
                    stopped_by = rule.name
            results.append(evaluation)
        return results

    def starting(self, facts: StudyFacts) -> list[Rule]:
        """The rules whose jobs start for ``facts``."""
        return [e.rule for e in self.evaluate(facts) if e.starts]


# -- loading and validation ------------------------------------------------------------------


def _describe(index: int, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, Mapping) else None
    return f"rules[{index}]" + (f" ({name!r})" if name else "")


def parse_rules(
    raw_rules: Sequence[Any], apps: Mapping[str, AnalysisApp] | None = None, origin: str = ""
) -> RuleSet:
    """Validate raw rule documents; with ``apps``, also the app names and their options.

    Every problem of every rule is collected, so one run shows them all.
    """
    where = f" in {origin}" if origin else ""
    problems: list[str] = []
    rules: list[Rule] = []
    names: set[str] = set()
    for index, raw in enumerate(raw_rules):
        label = _describe(index, raw)
        if not isinstance(raw, Mapping):
            problems.append(f"{label}: a rule must be a mapping, not {type(raw).__name__}")
            continue
        try:
            rule = Rule.model_validate(raw)
        except ValidationError as err:
            for e in err.errors():
                key = ".".join(str(p) for p in e["loc"]) or "(rule)"
                problems.append(f"{label}: {key}: {e['msg']}")
            continue
        if rule.name in names:
            problems.append(f"{label}: name {rule.name!r} is used by an earlier rule")
        names.add(rule.name)
        if apps is not None:
            app = apps.get(rule.app)
            if app is None:
                problems.append(
                    f"{label}: app: unknown app {rule.app!r}; apps: {', '.join(sorted(apps))}"
                )
            else:
                try:
                    jsonschema.validate(rule.options, app.spec.options)
                except jsonschema.ValidationError as err:
                    path = ".".join(str(p) for p in err.absolute_path)
                    problems.append(f"{label}: options{'.' + path if path else ''}: {err.message}")
        rules.append(rule)
    if problems:
        raise RulesError(f"invalid routing rules{where}:\n  " + "\n  ".join(problems))
    return RuleSet(rules)


def read_rules_file(path: Path) -> list[Any]:
    """Raw rules from a YAML file (a list, or a mapping with ``rules:``) or a directory of
    them (a mounted ConfigMap: every ``*.yaml`` / ``*.yml`` in name order)."""
    if path.is_dir():
        found: list[Any] = []
        for item in sorted(path.iterdir()):
            if item.suffix in (".yaml", ".yml") and item.is_file():
                found += read_rules_file(item)
        return found
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as err:
        raise RulesError(f"cannot read rules file {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise RulesError(f"rules file {path} is not valid YAML: {err}") from err
    if isinstance(loaded, Mapping):
        loaded = loaded.get("rules", [])
    if loaded is None:
        return []
    if not isinstance(loaded, list):
        raise RulesError(f"rules file {path} must hold a list of rules (or rules: [...])")
    return loaded


def load_rules(
    config_rules: Sequence[Any],
    rules_file: Path | None,
    apps: Mapping[str, AnalysisApp] | None = None,
) -> RuleSet:
    """The configured rules: ``intake.rules`` followed by those in ``intake.rules_file``."""
    raw = list(config_rules)
    origin = "intake.rules"
    if rules_file is not None:
        raw += read_rules_file(rules_file)
        origin += f" + {rules_file}"
    return parse_rules(raw, apps, origin)
