"""Routing rules: validation with clear errors, matching with reasons, `radpipe rules test`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from radpipe.api.apps import load_apps
from radpipe.cli import cli
from radpipe.intake.rules import RulesError, SeriesFacts, StudyFacts, load_rules, parse_rules

CT_HEAD = StudyFacts(
    study_instance_uid="1.2.3",
    accession="A1",
    study_description="CT HEAD WITHOUT CONTRAST",
    institution="General Hospital",
    calling_aes=("CT1",),
    series=(
        SeriesFacts("1.2.3.1", "CT", "HEAD", "Topo", 1, 1, "ct_scout", 0.99),
        SeriesFacts("1.2.3.2", "CT", "HEAD", "Head 5mm", 2, 30, "ct_brain", 0.97),
    ),
)

RULES = [
    {
        "name": "ct-head",
        "match": {
            "modality": "CT",
            "bodyPart": ["head", "BRAIN"],
            "studyDescription": "head|brain",
            "seriesClasses": ["ct_brain"],
            "callingAE": ["CT1", "CT2"],
            "institution": "general",
        },
        "app": "hemorrhage",
        "priority": "stat",
        "review": True,
    },
    {"name": "mr-brain", "match": {"modality": "MR"}, "app": "glioma"},
    {"name": "ct-again", "match": {"modality": "CT"}, "app": "hemorrhage", "final": True},
    {"name": "after-final", "app": "metastasis"},
]


def test_match_reasons_and_first_rule_per_app() -> None:
    evaluations = parse_rules(RULES, load_apps(None)).evaluate(CT_HEAD)
    first, mr, again, after = evaluations
    assert first.matched and first.starts and all(r.startswith("✓") for r in first.reasons)
    assert len(first.reasons) == 6
    assert not mr.matched and mr.reasons == ["✗ Modality ['CT'] has none of ['MR']"]
    assert again.matched and not again.starts and "already started" in again.note
    assert not after.matched and "final" in after.note


def test_series_class_condition_explains_a_missing_classifier() -> None:
    facts = StudyFacts(
        "1.2",
        series=(SeriesFacts("1.2.1", "CT"),),
        classifier_note="series classifier unavailable: no model",
    )
    (evaluation,) = parse_rules([RULES[0] | {"match": {"seriesClasses": ["ct_brain"]}}]).evaluate(
        facts
    )
    assert not evaluation.matched
    assert (
        "unavailable" in evaluation.reasons[0] and "missing ['ct_brain']" in evaluation.reasons[0]
    )


def test_invalid_rules_name_rule_and_key() -> None:
    bad = [
        {"name": "a", "match": {"modalty": "CT"}, "app": "hemorrhage"},
        {"name": "b", "match": {"studyDescription": "(unclosed"}, "app": "hemorrhage"},
        {"name": "c", "app": "no-such-app"},
        {"name": "d", "app": "hemorrhage", "options": {"keySlices": 99}},
        {"name": "d", "app": "glioma", "priority": "whenever"},
        "not a rule",
    ]
    with pytest.raises(RulesError) as err:
        parse_rules(bad, load_apps(None), "rules.yaml")
    text = str(err.value)
    assert "in rules.yaml" in text
    assert "rules[0] ('a'): match.modalty: Extra inputs are not permitted" in text
    assert "rules[1] ('b'): match.studyDescription" in text and "regular expression" in text
    assert "rules[2] ('c'): app: unknown app 'no-such-app'" in text
    assert "rules[3] ('d'): options.keySlices: 99 is greater than the maximum of 10" in text
    assert "rules[4] ('d'): priority" in text
    assert "rules[5]: a rule must be a mapping" in text


def test_rules_file_and_configmap_directory(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("rules:\n  - {name: one, app: glioma}\n")
    (tmp_path / "b.yml").write_text("- {name: two, app: hemorrhage}\n")
    rules = load_rules([{"name": "zero", "app": "metastasis"}], tmp_path, load_apps(None))
    assert [r.name for r in rules.rules] == ["zero", "one", "two"]
    (tmp_path / "c.yaml").write_text("rules: [{name: x, app: glioma, what: 1}]")
    with pytest.raises(RulesError, match="what: Extra inputs"):
        load_rules([], tmp_path, load_apps(None))


def test_rules_test_command_shows_matches_and_why(tmp_path: Path) -> None:
    from radpipe.synth import generate_study

    generate_study("ct-hemorrhage", tmp_path / "study", seed=5, small=True)
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(
        "- {name: ct-head, match: {modality: CT, callingAE: CT1}, app: hemorrhage}\n"
        "- {name: mr, match: {modality: MR}, app: glioma}\n"
    )
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "rules",
            "test",
            str(tmp_path / "study"),
            "--rules",
            str(rules_file),
            "--calling-ae",
            "CT1",
            "--no-classifier",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "START ct-head -> hemorrhage" in result.output
    assert "✓ calling AE ['CT1'] vs ['CT1']" in result.output
    assert "no    mr -> glioma" in result.output and "jobs: hemorrhage" in result.output
    check = runner.invoke(cli, ["rules", "check", "--rules", str(rules_file)])
    assert check.exit_code == 0 and "2 rules valid" in check.output
    rules_file.write_text("- {name: bad, app: nope}\n")
    check = runner.invoke(cli, ["rules", "check", "--rules", str(rules_file)])
    assert check.exit_code == 1 and "unknown app 'nope'" in check.output
