"""``radpipe pacs …``: talk to the configured PACS nodes, and run the embedded archive.

radpipe pacs nodes                               list configured nodes
radpipe pacs echo NODE                           C-ECHO / QIDO-RS round trip
radpipe pacs find --accession A [--node N]       studies (and --series) on a node
radpipe pacs get --accession A --out DIR         retrieve a study into a folder
radpipe pacs store FILES... --node N             C-STORE / STOW-RS files to a node
radpipe pacs serve DIR [--port --ae-title]       the embedded archive over a folder
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from radpipe.config import Settings


def _settings() -> Settings:
    from radpipe.cli import CliState

    state = click.get_current_context().find_object(CliState)
    if state is None:  # invoked outside the radpipe group (tests calling pacs directly)
        from radpipe.config import ConfigError, load_settings

        try:
            return load_settings()
        except ConfigError as err:
            raise click.ClickException(str(err)) from err
    return state.settings


def _client(node_name: str | None) -> Any:
    from radpipe.dicom.client import open_client
    from radpipe.dicom.errors import PacsError
    from radpipe.dicom.nodes import resolve_node

    try:
        return open_client(resolve_node(_settings(), node_name))
    except PacsError as err:
        raise click.ClickException(str(err)) from err


def _fail(err: Exception) -> click.ClickException:
    return click.ClickException(str(err))


@click.group()
def pacs() -> None:
    """Talk to PACS nodes (DIMSE or DICOMweb) and run the embedded archive."""


@pacs.command("nodes")
@click.option("--json", "as_json", is_flag=True, help="Print the nodes as JSON.")
def nodes_cmd(as_json: bool) -> None:
    """List the configured PACS nodes."""
    settings = _settings()
    if as_json:
        click.echo(
            json.dumps(
                {name: json.loads(cfg.model_dump_json()) for name, cfg in settings.pacs.items()},
                indent=2,
            )
        )
        return
    if not settings.pacs:
        click.echo("no PACS nodes configured (add them under `pacs:` in radpipe.yaml)")
        return
    table = Table("node", "transport", "address", "retrieve", "calling AE", "default")
    for name, cfg in sorted(settings.pacs.items()):
        address = (
            str(cfg.dicomweb_url)
            if cfg.transport == "dicomweb"
            else f"{cfg.ae_title}@{cfg.host}:{cfg.port}"
        )
        retrieve = "wado" if cfg.transport == "dicomweb" else cfg.retrieve
        default = "yes" if name == settings.default_pacs else ""
        table.add_row(name, cfg.transport, address, retrieve, cfg.calling_ae, default)
    Console().print(table)


@pacs.command("echo")
@click.argument("node", required=False)
def echo_cmd(node: str | None) -> None:
    """Check that NODE answers (C-ECHO for DIMSE, a QIDO-RS query for DICOMweb)."""
    from radpipe.dicom.errors import PacsError

    client = _client(node)
    try:
        seconds = client.echo()
    except PacsError as err:
        raise _fail(err) from err
    click.echo(f"{client.node.describe()}: ok ({seconds * 1000:.0f} ms)")


@pacs.command("find")
@click.option("--accession", default=None, help="Accession number.")
@click.option("--study-uid", default=None, help="StudyInstanceUID.")
@click.option("--node", default=None, help="PACS node (default: default_pacs / the only one).")
@click.option("--series", "with_series", is_flag=True, help="List each study's series too.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (includes patient ID/name).")
def find_cmd(
    accession: str | None,
    study_uid: str | None,
    node: str | None,
    with_series: bool,
    as_json: bool,
) -> None:
    """Find studies by accession number (or StudyInstanceUID) on a node."""
    from radpipe.dicom.errors import PacsError

    if not accession and not study_uid:
        raise click.UsageError("give --accession or --study-uid")
    client = _client(node)
    try:
        studies = client.find_studies(accession=accession, study_uid=study_uid)
        series = (
            {s.study_instance_uid: client.find_series(s.study_instance_uid) for s in studies}
            if with_series
            else {}
        )
    except PacsError as err:
        raise _fail(err) from err
    if as_json:
        out = []
        for s in studies:
            item = s.as_dict(with_patient=True)
            if with_series:
                item["series"] = [x.as_dict() for x in series[s.study_instance_uid]]
            out.append(item)
        click.echo(json.dumps(out, indent=2))
        return
    if not studies:
        raise click.ClickException(f"no matching study on {client.node.describe()}")
    console = Console()
    table = Table()
    table.add_column("StudyInstanceUID", overflow="fold")
    for title in ("accession", "date", "description", "modalities", "series", "instances"):
        table.add_column(title)
    table.add_column("patient ID", overflow="fold")
    for s in studies:
        table.add_row(
            s.study_instance_uid,
            s.accession_number,
            s.study_date,
            s.study_description,
            "/".join(s.modalities),
            "" if s.num_series is None else str(s.num_series),
            "" if s.num_instances is None else str(s.num_instances),
            s.patient_id,
        )
    console.print(table)
    count = f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'}"
    console.print(f"{count} found on {client.node.describe()}")
    for s in studies if with_series else []:
        sub = Table(title=f"series of {s.study_instance_uid}")
        sub.add_column("#")
        sub.add_column("SeriesInstanceUID", overflow="fold")
        for title in ("modality", "description", "instances"):
            sub.add_column(title)
        for x in series[s.study_instance_uid]:
            sub.add_row(
                "" if x.series_number is None else str(x.series_number),
                x.series_instance_uid,
                x.modality,
                x.series_description,
                "" if x.num_instances is None else str(x.num_instances),
            )
        console.print(sub)


@pacs.command("get")
@click.option("--accession", default=None, help="Accession number.")
@click.option("--study-uid", default=None, help="StudyInstanceUID (skips the accession lookup).")
@click.option("--modality", default=None, help="Pick among studies sharing the accession.")
@click.option("--node", default=None, help="PACS node.")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write SeriesInstanceUID/SOPInstanceUID.dcm files and manifest.json into.",
)
def get_cmd(
    accession: str | None,
    study_uid: str | None,
    modality: str | None,
    node: str | None,
    out_dir: Path,
) -> None:
    """Retrieve a study into a folder, the way the fetch stage does."""
    from rich.progress import Progress

    from radpipe.dicom.errors import PacsError
    from radpipe.dicom.instances import StudySink
    from radpipe.dicom.locate import locate_study
    from radpipe.dicom.manifest import build_manifest
    from radpipe.dicom.retrieve import StudyRetriever

    if not accession and not study_uid:
        raise click.UsageError("give --accession or --study-uid")
    client = _client(node)
    cfg = client.node.config
    out_dir.mkdir(parents=True, exist_ok=True)

    def write(name: str, data: bytes) -> None:
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(path)

    start = time.perf_counter()
    try:
        study = locate_study(client, accession=accession, study_uid=study_uid, modality=modality)
        series = client.find_series(study.study_instance_uid)
        total = sum(s.num_instances or 0 for s in series) or None
        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("retrieving", total=total)
            sink = StudySink(
                write,
                study.study_instance_uid,
                on_instance=lambda n: bar.update(task, completed=n),
            )
            retriever = StudyRetriever(
                client,
                parallel=cfg.max_associations,
                attempts=cfg.retrieve_attempts,
                backoff_seconds=cfg.retry_backoff_seconds,
            )
            outcomes = retriever.retrieve(study.study_instance_uid, series, sink)
    except PacsError as err:
        raise _fail(err) from err
    seconds = time.perf_counter() - start
    manifest = build_manifest(
        study,
        series,
        outcomes,
        sink,
        node=client.node.name,
        transport=client.node.transport,
        method=client.node.retrieve_method,
    )
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    mb = sink.bytes_received / 1e6
    click.echo(
        f"{manifest['instance_count']} instances, {len(series)} series, {mb:.1f} MB in "
        f"{seconds:.1f} s ({manifest['instance_count'] / max(seconds, 1e-6):.0f} instances/s, "
        f"{mb / max(seconds, 1e-6):.1f} MB/s) → {out_dir}"
    )
    for problem in manifest["problems"]:
        click.echo(f"warning: {problem}", err=True)


@pacs.command("store")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--node", default=None, help="PACS node to send to.")
def store_cmd(files: tuple[Path, ...], node: str | None) -> None:
    """Send DICOM files (or every file under given folders) to a node."""
    from radpipe.dicom.errors import PacsError

    paths: list[Path] = []
    for item in files:
        if item.is_dir():
            paths.extend(sorted(p for p in item.rglob("*") if p.is_file()))
        else:
            paths.append(item)
    client = _client(node)
    start = time.perf_counter()
    try:
        report = client.store(paths)
    except PacsError as err:
        raise _fail(err) from err
    seconds = time.perf_counter() - start
    click.echo(
        f"sent {report.sent} of {len(paths)} instances to {client.node.describe()} "
        f"in {seconds:.1f} s"
    )
    for path, reason in report.failed:
        click.echo(f"not stored: {path}: {reason}", err=True)
    if report.failed:
        raise click.ClickException(f"{len(report.failed)} instances were not stored")


@pacs.command("serve")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--port", default=11112, show_default=True, help="DICOM port to listen on.")
@click.option("--ae-title", default="RADPIPE-QR", show_default=True, help="Our AE title.")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--move-dest",
    "move_dests",
    multiple=True,
    metavar="AE=HOST:PORT",
    help="A C-MOVE destination (repeatable); default: the configured nodes' storage SCPs.",
)
def serve_cmd(
    folder: Path, port: int, ae_title: str, bind: str, move_dests: tuple[str, ...]
) -> None:
    """Serve the DICOM files in FOLDER as a Query/Retrieve archive (pynetdicom's qrscp).

    Files already in FOLDER are indexed first; instances stored to the archive (C-STORE)
    are kept in FOLDER/.qrscp/instances. Stop with Ctrl-C.
    """
    from radpipe.dicom.archive import ArchiveError, parse_move_destination, serve

    try:
        destinations = dict(parse_move_destination(d) for d in move_dests)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--move-dest") from err
    if not destinations:
        for cfg in _settings().pacs.values():
            if cfg.transport == "dimse":
                destinations[cfg.move_destination] = ("127.0.0.1", cfg.storage_port)
    try:
        serve(folder, port=port, ae_title=ae_title, bind=bind, move_destinations=destinations)
    except ArchiveError as err:
        raise _fail(err) from err
