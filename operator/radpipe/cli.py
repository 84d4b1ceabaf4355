"""``radpipe``: one command line for everything (run jobs, inspect them, run one stage,
generate synthetic studies, talk to PACS nodes, serve models, start the web app).

Heavy subcommands are imported only when used, so ``radpipe --help`` starts fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from radpipe import __version__
from radpipe.config import ConfigError, Settings, load_settings

#: Subcommand groups that live next to the code they drive: name -> "module:attribute".
LAZY_COMMANDS: dict[str, str] = {
    "synth": "radpipe.synth.cli:synth",
    "pacs": "radpipe.dicom.cli:pacs",
    "classify": "radpipe.series.cli:classify",
    "serve-models": "radpipe.serving.cli:serve_models",
    "web": "radpipe.web.cli:web",
    "receive": "radpipe.intake.cli:receive",
    "rules": "radpipe.intake.cli:rules",
    "conformance": "radpipe.dicom.conformance:conformance",
    "operator": "radpipe.kube.cli:operator",
}

console = Console(stderr=True)


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        available = [
            name
            for name, target in LAZY_COMMANDS.items()
            if importlib.util.find_spec(target.partition(":")[0]) is not None
        ]
        return sorted(set(super().list_commands(ctx)) | set(available))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in LAZY_COMMANDS:
            return command
        module_name, _, attribute = LAZY_COMMANDS[cmd_name].partition(":")
        if importlib.util.find_spec(module_name) is None:
            return None
        loaded: click.Command = getattr(importlib.import_module(module_name), attribute)
        return loaded


class CliState:
    """What the top-level options set up for subcommands; settings load on first use."""

    def __init__(self, config_file: Path | None) -> None:
        self.config_file = config_file
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config_file)
            except ConfigError as err:
                raise click.ClickException(str(err)) from err
        return self._settings


pass_state = click.make_pass_decorator(CliState)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="radpipe")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="RADPIPE_CONFIG",
    help="YAML configuration file (default: ./radpipe.yaml when present).",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default=None,
    help="Override the configured log level.",
)
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None, log_level: str | None) -> None:
    """radpipe: automated image analysis on the hospital PACS.

    Name an accession number and an analysis app; radpipe fetches the study, picks the
    series, preprocesses, runs the models and sends SEG, SR and a PDF report back.
    """
    from radpipe.logs import setup_logging

    state = CliState(config_file)
    ctx.obj = state
    level = log_level.upper() if log_level else None
    if level is None:
        try:
            level = state.settings.log_level
        except click.ClickException:
            level = "INFO"  # the subcommand that needs settings will report the error
    setup_logging(level)


# -- jobs -------------------------------------------------------------------------------


def _runner(state: CliState) -> Any:
    from radpipe.local.runner import LocalRunner
    from radpipe.store import StoreError

    try:
        return LocalRunner(state.settings)
    except StoreError as err:
        raise click.ClickException(str(err)) from err


def _parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--option")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


@cli.command()
@click.option("--accession", required=True, help="Accession number of the study.")
@click.option("--app", "app_name", required=True, help="Analysis app (see `radpipe apps`).")
@click.option("--pacs", "pacs_node", default=None, help="PACS node to fetch from (config name).")
@click.option("--study-uid", default=None, help="StudyInstanceUID; skips the accession lookup.")
@click.option("--priority", type=click.Choice(["stat", "urgent", "routine"]), default="routine")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="App option.")
@click.option("--json", "as_json", is_flag=True, help="Print the finished job as JSON.")
@click.option("--no-progress", is_flag=True, help="No progress bars (for scripts and CI).")
@pass_state
def run(
    state: CliState,
    accession: str,
    app_name: str,
    pacs_node: str | None,
    study_uid: str | None,
    priority: str,
    options: tuple[str, ...],
    as_json: bool,
    no_progress: bool,
) -> None:
    """Run one analysis job locally, stage by stage, with a progress bar per stage."""
    from pydantic import ValidationError

    from radpipe.api.models import JobSpec
    from radpipe.local.progress import RichReporter
    from radpipe.local.runner import SubmitError

    runner = _runner(state)
    try:
        spec = JobSpec.model_validate(
            {
                "accession": accession,
                "app": app_name,
                "priority": priority,
                "options": _parse_options(options),
                "source": {"pacs": pacs_node or state.settings.default_pacs},
                "studyInstanceUID": study_uid,
            }
        )
        job = runner.submit(spec)
    except ValidationError as err:
        raise click.ClickException(_validation_message(err)) from err
    except SubmitError as err:
        raise click.ClickException(str(err)) from err
    console.print(f"job [bold]{job.uid}[/] submitted ({app_name})")
    with RichReporter(console, [s.name for s in job.status.stages], enabled=not no_progress) as rep:
        job = runner.run(job.uid, rep)
    _finish(job, as_json, runner.store)


@cli.command()
@click.argument("job_uid")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@pass_state
def status(state: CliState, job_uid: str, as_json: bool) -> None:
    """Show a job's phase and the state of each stage."""
    from radpipe.local.runner import JobNotFound

    runner = _runner(state)
    try:
        job = runner.get(job_uid)
    except JobNotFound as err:
        raise click.ClickException(str(err)) from err
    if as_json:
        from radpipe.local.summary import job_document

        click.echo(json.dumps(job_document(job, runner.store), indent=2))
        return
    _print_job(job)


@cli.command()
@click.argument("job_uid")
@pass_state
def resume(state: CliState, job_uid: str) -> None:
    """Continue a job that stopped (crash, retry wait) from its first unfinished stage."""
    from radpipe.local.progress import RichReporter
    from radpipe.local.runner import JobNotFound

    runner = _runner(state)
    try:
        job = runner.get(job_uid)
    except JobNotFound as err:
        raise click.ClickException(str(err)) from err
    with RichReporter(console, [s.name for s in job.status.stages]) as rep:
        job = runner.run(job_uid, rep)
    _finish(job, False, runner.store)


@cli.command()
@click.argument("job_uid")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@pass_state
def release(state: CliState, job_uid: str, no_progress: bool) -> None:
    """Release a job waiting in DeliveryPending (retry delivery) or AwaitingReview.

    The waiting stage runs again from its start; nothing before it is recomputed.
    """
    from radpipe.local.progress import RichReporter
    from radpipe.local.runner import JobNotFound
    from radpipe.pipeline.state import InvalidTransition

    runner = _runner(state)
    try:
        job = runner.release(job_uid)
    except (JobNotFound, InvalidTransition) as err:
        raise click.ClickException(str(err)) from err
    stages = [s.name for s in job.status.stages]
    with RichReporter(console, stages, enabled=not no_progress) as rep:
        job = runner.run(job_uid, rep)
    _finish(job, False, runner.store)


@cli.command()
@click.argument("job_uid")
@pass_state
def cancel(state: CliState, job_uid: str) -> None:
    """Cancel a job; it stops before its next stage."""
    from radpipe.local.runner import JobNotFound

    try:
        job = _runner(state).cancel(job_uid)
    except JobNotFound as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"{job.uid}: {job.status.phase.value}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
@pass_state
def jobs(state: CliState, as_json: bool) -> None:
    """List local jobs, newest first."""
    found = _runner(state).list_jobs()
    if as_json:
        click.echo(json.dumps([j.model_dump(mode="json", by_alias=True) for j in found], indent=2))
        return
    table = Table("job", "app", "phase", "stage", "created")
    for job in found:
        table.add_row(
            job.uid,
            job.spec.app,
            job.status.phase.value,
            job.status.current_stage or "-",
            job.metadata.annotations.get("radpipe.io/created", "")[:19],
        )
    Console().print(table)


@cli.group()
def stage() -> None:
    """Run or inspect a single stage (what a Kubernetes Job pod runs)."""


@stage.command("run")
@click.option("--job", "job_uid", required=True, help="Job id (locally) or NAMESPACE/NAME.")
@click.option("--stage", "stage_name", required=True, help="Stage name, e.g. fetch.")
@pass_state
def stage_run(state: CliState, job_uid: str, stage_name: str) -> None:
    """Run one stage of a job; does nothing if that stage already succeeded.

    Exit status: 0 when the stage succeeded, 1 when it failed (message on stderr), so a
    Kubernetes Job sees the outcome.
    """
    from radpipe.local.runner import JobNotFound
    from radpipe.pipeline.state import InvalidTransition

    if "/" in job_uid:  # NAMESPACE/NAME: an AnalysisJob resource, run by a stage Job pod
        from radpipe.kube.stagerun import ClusterStageError, run_cluster_stage

        try:
            outcome = run_cluster_stage(state.settings, job_uid, stage_name)
        except (ClusterStageError, KeyError) as err:
            raise click.ClickException(str(err).strip("'\"")) from err
        shown = job_uid
    else:
        runner = _runner(state)
        try:
            job, outcome = runner.run_stage(job_uid, stage_name)
        except (JobNotFound, InvalidTransition, KeyError) as err:
            raise click.ClickException(str(err).strip("'\"")) from err
        shown = job.uid
    result = outcome.result
    verb = "already complete" if outcome.reused else result.state
    click.echo(f"{shown} {stage_name}: {verb}")
    if not result.complete:
        raise click.ClickException(result.message or "stage failed")


@stage.command("list")
def stage_list() -> None:
    """List the stages radpipe can run."""
    from radpipe.pipeline.registry import stage_names

    for name in stage_names():
        click.echo(name)


# -- apps and configuration ----------------------------------------------------------------


@cli.group()
def apps() -> None:
    """The analysis apps radpipe knows."""


@apps.command("list")
@pass_state
def apps_list(state: CliState) -> None:
    """List apps with their modality and required series."""
    from radpipe.api.apps import AppError, load_apps

    try:
        found = load_apps(state.settings.apps_dir)
    except AppError as err:
        raise click.ClickException(str(err)) from err
    table = Table("app", "title", "modality", "requires", "stages")
    for name, app in sorted(found.items()):
        table.add_row(
            name,
            app.spec.title,
            app.spec.modality,
            ", ".join(app.spec.series.required),
            " → ".join(s.name for s in app.spec.stages),
        )
    Console().print(table)


@apps.command("show")
@click.argument("name")
@pass_state
def apps_show(state: CliState, name: str) -> None:
    """Print one app definition as YAML."""
    import yaml

    from radpipe.api.apps import AppError, get_app

    try:
        app = get_app(name, state.settings.apps_dir)
    except AppError as err:
        raise click.ClickException(str(err)) from err
    click.echo(yaml.safe_dump(app.wire(), sort_keys=False))


@cli.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@pass_state
def config_show(state: CliState) -> None:
    """Print the effective configuration (secrets masked)."""
    import yaml

    from radpipe.config import config_path

    source = config_path(state.config_file)
    click.echo(f"# from {source or 'defaults'} + RADPIPE_* environment", err=True)
    click.echo(yaml.safe_dump(json.loads(state.settings.model_dump_json()), sort_keys=False))


@config.command("schema")
def config_schema() -> None:
    """Print the JSON schema of the configuration file."""
    click.echo(json.dumps(Settings.model_json_schema(), indent=2))


# -- helpers -----------------------------------------------------------------------------


def _validation_message(err: Any) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        parts.append(f"{where}: {e['msg']}")
    return "invalid request: " + "; ".join(parts)


def _print_job(job: Any) -> None:
    out = Console()
    out.print(
        f"job [bold]{job.uid}[/]  app {job.spec.app}  phase [bold]{job.status.phase.value}[/]"
    )
    table = Table("stage", "state", "attempts", "seconds", "message")
    for s in job.status.stages:
        seconds = ""
        if s.started_at and s.finished_at:
            seconds = f"{(s.finished_at - s.started_at).total_seconds():.1f}"
        table.add_row(s.name, s.state.value, str(s.attempts), seconds, s.message or "")
    out.print(table)
    if job.status.message:
        out.print(job.status.message)


def _finish(job: Any, as_json: bool, store: Any = None) -> None:
    if as_json:
        from radpipe.local.summary import job_document

        click.echo(json.dumps(job_document(job, store), indent=2))
    else:
        _print_job(job)
    if job.status.phase.value in ("Failed", "Cancelled"):
        sys.exit(1)
    if job.status.phase.value in ("DeliveryPending", "AwaitingReview"):
        console.print(f"the job is waiting; `radpipe release {job.uid}` continues it")
        sys.exit(3)


def main() -> None:
    """Entry point of the ``radpipe`` command."""
    cli(prog_name="radpipe")


if __name__ == "__main__":
    main()
