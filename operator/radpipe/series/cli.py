"""``radpipe classify DIR_OR_ACCESSION [--app APP] [--json]``: what the series classifier sees.

Prints one table per study (series, class, probability, the role each series fills) and
the reason for every role; ``--json`` prints one machine-readable document instead (a list
of documents when the directory holds several studies).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from radpipe.api.models import AnalysisApp
    from radpipe.config import Settings
    from radpipe.series.scan import ScannedStudy

_ACCESSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,15}$")
#: The app used when none is named: by the study's modality.
DEFAULT_APPS: dict[str, str] = {"MR": "glioma", "CT": "hemorrhage"}


def _settings() -> Settings:
    from radpipe.cli import CliState

    state = click.get_current_context().find_object(CliState)
    if state is None:  # invoked outside the radpipe group (tests calling classify directly)
        from radpipe.config import ConfigError, load_settings

        try:
            return load_settings()
        except ConfigError as err:
            raise click.ClickException(str(err)) from err
    return state.settings


def _apps(settings: Settings) -> dict[str, AnalysisApp]:
    from radpipe.api.apps import AppError, load_apps

    try:
        return load_apps(settings.apps_dir)
    except AppError as err:
        raise click.ClickException(str(err)) from err


def _study_modality(study: ScannedStudy) -> str:
    modalities = [h.modality for h in study.series]
    return "CT" if modalities.count("CT") > modalities.count("MR") else "MR"


def _fetch_accession(accession: str, node: str | None, workdir: Path) -> Path:
    """Retrieve a study by accession into ``workdir`` the way the fetch stage does."""
    try:
        from radpipe.dicom.client import open_client
        from radpipe.dicom.errors import PacsError
        from radpipe.dicom.instances import StudySink
        from radpipe.dicom.locate import locate_study
        from radpipe.dicom.nodes import resolve_node
        from radpipe.dicom.retrieve import StudyRetriever
    except ImportError as err:  # pragma: no cover - the dicom package ships with radpipe
        raise click.ClickException(f"PACS access is not available: {err}") from err

    def write(name: str, data: bytes) -> None:
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    try:
        client = open_client(resolve_node(_settings(), node))
        cfg = client.node.config
        study = locate_study(client, accession=accession, study_uid=None, modality=None)
        series = client.find_series(study.study_instance_uid)
        sink = StudySink(write, study.study_instance_uid)
        retriever = StudyRetriever(
            client,
            parallel=cfg.max_associations,
            attempts=cfg.retrieve_attempts,
            backoff_seconds=cfg.retry_backoff_seconds,
        )
        retriever.retrieve(study.study_instance_uid, series, sink)
    except PacsError as err:
        raise click.ClickException(str(err)) from err
    return workdir


def classify_documents(
    root: Path, app_name: str | None, settings: Settings
) -> list[dict[str, Any]]:
    """One classification document per study found under ``root``."""
    from radpipe.series.model import ModelNotFound, SeriesClassifier
    from radpipe.series.scan import scan_directory
    from radpipe.series.selection import SelectionError
    from radpipe.series.study import classify_study

    studies = scan_directory(root)
    if not studies:
        raise click.ClickException(f"no DICOM series found under {root}")
    apps = _apps(settings)
    if app_name is not None and app_name not in apps:
        raise click.ClickException(
            f"unknown app {app_name!r}; available apps: {', '.join(sorted(apps))}"
        )
    try:
        classifier = SeriesClassifier.load(settings)
    except ModelNotFound as err:
        raise click.ClickException(str(err)) from err
    documents = []
    for study in studies:
        name = app_name or DEFAULT_APPS[_study_modality(study)]
        try:
            outcome = classify_study(study.series, classifier, apps[name].spec.series, app=name)
        except SelectionError as err:
            raise click.ClickException(f"app {name} has invalid series rules: {err}") from err
        document = outcome.document()
        document.pop("selectedSeries", None)
        documents.append(document)
    return documents


def _print_table(document: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    role_of: dict[str, list[str]] = {}
    for role, uid in document["roles"].items():
        if uid:
            role_of.setdefault(uid, []).append(role)
    console.print(
        f"[bold]app[/] {document['app']}  [bold]study[/] {document['studyInstanceUID'] or '?'}",
        highlight=False,
        soft_wrap=True,
    )
    table = Table("#", "description", "class", "prob", "role")
    for s in document["series"]:
        probability = s["probability"]
        style = "" if probability >= 0.8 else "yellow"
        table.add_row(
            str(s["seriesNumber"] if s["seriesNumber"] is not None else "-"),
            s["description"] or "(none)",
            s["class"],
            f"[{style}]{probability:.2f}[/]" if style else f"{probability:.2f}",
            ", ".join(role_of.get(s["seriesInstanceUID"], [])),
        )
    console.print(table)
    for role, reason in document["reasons"].items():
        mark = "[green]✓[/]" if document["roles"][role] else "[red]✗[/]"
        console.print(f" {mark} [bold]{role}[/]: {reason}", highlight=False, soft_wrap=True)
    if not document["ok"]:
        console.print(
            f"[red]would fail at classify:[/] {document['error']}", highlight=False, soft_wrap=True
        )


@click.command()
@click.argument("target", metavar="DIR_OR_ACCESSION")
@click.option(
    "--app", "app_name", default=None, help="App whose roles to fill (default: by modality)."
)
@click.option("--node", default=None, help="PACS node for an accession (default: default_pacs).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
def classify(target: str, app_name: str | None, node: str | None, as_json: bool) -> None:
    """Classify the series of a study and show which series each role of an app gets.

    DIR_OR_ACCESSION is a directory of DICOM files (several studies allowed) or an
    accession number, fetched from the PACS first. Without --app, MR studies use the
    glioma app's roles and CT studies the hemorrhage app's.
    """
    settings = _settings()
    path = Path(target)
    if path.is_dir():
        documents = classify_documents(path, app_name, settings)
    elif path.exists():
        raise click.ClickException(f"{target} is a file; give a directory or an accession")
    elif _ACCESSION.match(target):
        with tempfile.TemporaryDirectory(prefix="radpipe-classify-") as tmp:
            documents = classify_documents(
                _fetch_accession(target, node, Path(tmp)), app_name, settings
            )
    else:
        raise click.ClickException(
            f"{target!r} is neither a directory nor an accession number (1-16 letters, digits, "
            ". _ -)"
        )
    if as_json:
        output: Any = documents[0] if len(documents) == 1 else documents
        click.echo(json.dumps(output, indent=2, ensure_ascii=False))
        return
    for document in documents:
        _print_table(document)
