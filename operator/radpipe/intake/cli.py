"""``radpipe receive``: the DICOM receiver; ``radpipe rules``: check and try routing rules."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import click

from radpipe.config import Settings


def _settings() -> Settings:
    from radpipe.cli import CliState

    state = click.get_current_context().find_object(CliState)
    if state is None:  # called outside the radpipe group (tests, python -m)
        from radpipe.config import load_settings

        return load_settings()
    return state.settings


def _rules(settings: Settings, rules_file: Path | None) -> Any:
    from radpipe.api.apps import AppError, load_apps
    from radpipe.intake.rules import RulesError, load_rules

    try:
        apps = load_apps(settings.apps_dir)
        if rules_file is not None:
            return load_rules([], rules_file, apps)
        return load_rules(settings.intake.rules, settings.intake.rules_file, apps)
    except (RulesError, AppError) as err:
        raise click.ClickException(str(err)) from err


@click.command()
@click.option("--ae-title", default=None, help="Our AE title (default: intake.ae_title).")
@click.option("--bind", default=None, help="Interface (default: intake.bind).")
@click.option("--port", type=int, default=None, help="DICOM port (default: intake.port).")
@click.option(
    "--allow",
    "allowed",
    multiple=True,
    help="A calling AE title that may send (repeatable; default: intake.allowed_calling_aes).",
)
@click.option(
    "--quiet-period",
    type=float,
    default=None,
    help="Seconds without new instances (default: intake.quiet_period_seconds).",
)
@click.option(
    "--cluster/--local",
    "cluster",
    default=None,
    help="Create AnalysisJob resources, or run jobs here (default: intake.submit_to).",
)
def receive(
    ae_title: str | None,
    bind: str | None,
    port: int | None,
    allowed: tuple[str, ...],
    quiet_period: float | None,
    cluster: bool | None,
) -> None:
    """Run the DICOM Storage SCP: pushed studies start jobs by the routing rules."""
    from radpipe.intake.facts import load_classifier
    from radpipe.intake.receiver import Intake, IntakeError, Receiver
    from radpipe.intake.submitter import open_submitter
    from radpipe.store import open_store

    settings = _settings()
    cfg = settings.intake
    if ae_title:
        cfg.ae_title = ae_title
    if bind:
        cfg.bind = bind
    if port is not None:
        cfg.port = port
    if allowed:
        cfg.allowed_calling_aes = list(allowed)
    if quiet_period is not None:
        cfg.quiet_period_seconds = quiet_period
    if cluster is not None:
        cfg.submit_to = "cluster" if cluster else "local"
    rules = _rules(settings, None)
    if not rules.rules:
        click.echo("warning: no routing rules: studies are spooled but start no job", err=True)
    classifier, note = load_classifier(settings)
    if note:
        click.echo(f"warning: {note}; rules on series classes will not match", err=True)
    submitter = open_submitter(settings)
    intake = Intake(settings, open_store(settings.store), rules, submitter, classifier, note)
    try:
        receiver = Receiver(intake)
        bound = receiver.start()
    except IntakeError as err:
        submitter.close()
        raise click.ClickException(str(err)) from err
    click.echo(
        f"receiving as {cfg.ae_title} on {cfg.bind}:{bound} from "
        f"{', '.join(cfg.allowed_calling_aes)}; {len(rules.rules)} rules; jobs go to "
        f"{cfg.submit_to}",
        err=True,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
        submitter.close()


@click.group()
def rules() -> None:
    """Routing rules: which app a pushed study starts."""


@rules.command("check")
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="A rules file or directory (default: the configured rules).",
)
def check(rules_file: Path | None) -> None:
    """Validate the rules (unknown keys, regular expressions, apps, options)."""
    loaded = _rules(_settings(), rules_file)
    click.echo(f"{len(loaded.rules)} rules valid: {', '.join(r.name for r in loaded.rules)}")


@rules.command("test")
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="A rules file or directory (default: the configured rules).",
)
@click.option("--calling-ae", multiple=True, help="Pretend the study came from this AE title.")
@click.option("--no-classifier", is_flag=True, help="Do not run the series classifier.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def test(
    folder: Path,
    rules_file: Path | None,
    calling_ae: tuple[str, ...],
    no_classifier: bool,
    as_json: bool,
) -> None:
    """Show which rules the study (or studies) in FOLDER match, and why."""
    from radpipe.intake.facts import (
        Classifier,
        describe_facts,
        load_classifier,
        samples_from_folder,
        study_facts,
    )

    settings = _settings()
    loaded = _rules(settings, rules_file)
    studies = samples_from_folder(folder)
    if not studies:
        raise click.ClickException(f"no DICOM files under {folder}")
    classifier: Classifier | None = None
    note: str | None = "not run (--no-classifier)"
    if not no_classifier:
        classifier, note = load_classifier(settings)
    report: list[dict[str, Any]] = []
    for samples in studies.values():
        facts = study_facts(
            samples, calling_aes=calling_ae, classifier=classifier, classifier_note=note
        )
        verdicts = [
            {
                "rule": e.rule.name,
                "app": e.rule.app,
                "matched": e.matched,
                "starts": e.starts,
                "note": e.note,
                "reasons": e.reasons,
            }
            for e in loaded.evaluate(facts)
        ]
        report.append({"study": describe_facts(facts), "rules": verdicts})
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for item in report:
        study = item["study"]
        click.echo(
            f"study {study['studyInstanceUID']}: {'/'.join(study['modalities'])}, "
            f"{study['studyDescription']!r}, {len(study['series'])} series "
            f"(classifier: {study['classifier']})"
        )
        for series in study["series"]:
            cls = series["class"] or "?"
            prob = f" {series['probability']:.2f}" if series["probability"] is not None else ""
            click.echo(
                f"    #{series['number']} {series['modality']} {series['bodyPart'] or '-'} "
                f"{series['description']!r}: {cls}{prob}"
            )
        for verdict in item["rules"]:
            head = "START" if verdict["starts"] else ("match" if verdict["matched"] else "no   ")
            extra = f" ({verdict['note']})" if verdict["note"] else ""
            click.echo(f"  {head} {verdict['rule']} -> {verdict['app']}{extra}")
            for reason in verdict["reasons"]:
                click.echo(f"        {reason}")
        starting = [v["app"] for v in item["rules"] if v["starts"]]
        click.echo(f"  jobs: {', '.join(starting) or 'none'}")
