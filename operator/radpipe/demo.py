"""``make demo``: the whole pipeline on synthetic studies, on embedded defaults.

1. generates a synthetic glioma MR study and a synthetic CT hemorrhage study (cached in
   ``var/demo/archive`` and reused on later runs);
2. serves them with the embedded archive (pynetdicom's own Query/Retrieve SCP);
3. runs the glioma and hemorrhage apps by accession through every stage, with a progress
   bar per stage, delivering SEG/SR/PDF back into the archive;
4. starts the web app and prints where to look; prints a summary table and exits, leaving
   no process behind (``--keep-web`` keeps the web app up until Ctrl-C).

Everything lands under ``var/demo``; ``var/demo/radpipe.yaml`` is the configuration it used,
so ``radpipe --config var/demo/radpipe.yaml status JOB`` works afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table

from radpipe.api.apps import bundled_apps
from radpipe.api.models import AnalysisJob, JobSpec
from radpipe.config import load_settings
from radpipe.logs import setup_logging
from radpipe.pipeline.registry import stage_names

DEMO_DIR = Path("var/demo")
ARCHIVE_AE = "DEMO-ARCHIVE"
NODE = "demo-archive"


@dataclass(frozen=True)
class DemoCase:
    """One synthetic study and the app the demo runs on it."""

    app: str
    kind: str
    seed: int
    accession: str


CASES = (
    DemoCase(app="glioma", kind="mr-glioma", seed=11, accession="DEMO0001"),
    DemoCase(app="hemorrhage", kind="ct-hemorrhage", seed=12, accession="DEMO0002"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def generate_case(case: DemoCase, archive: Path, console: Console) -> dict[str, Any]:
    """The case's study, generated once and then reused (same seed, same study)."""
    from radpipe.synth import generate_study

    out = archive / case.accession
    truth_file = out / "truth" / "truth.json"
    if truth_file.is_file():
        console.print(f"study {case.accession} ({case.kind}) already generated, reusing it")
    else:
        console.print(f"generating a synthetic {case.kind} study, accession {case.accession} …")
        generate_study(case.kind, out, seed=case.seed, accession=case.accession)
    return dict(json.loads(truth_file.read_text()))


def write_config(root: Path, archive_port: int) -> Path:
    storage_port = free_port()
    config = {
        "data_dir": str((root / "data").resolve()),
        "log_level": "WARNING",
        "pacs": {
            NODE: {
                "ae_title": ARCHIVE_AE,
                "host": "127.0.0.1",
                "port": archive_port,
                "calling_ae": "RADPIPE",
                "retrieve": "c-get",
                "move_destination": "RADPIPE",
                "storage_port": storage_port,
            }
        },
        "default_pacs": NODE,
    }
    runnable = set(stage_names())
    missing = {
        stage.name
        for app in bundled_apps().values()
        for stage in app.spec.stages
        if stage.name not in runnable
    }
    if missing:
        # Until every stage exists, run the ones that do: trimmed copies of the apps.
        apps_dir = root / "apps"
        apps_dir.mkdir(parents=True, exist_ok=True)
        for name, app in bundled_apps().items():
            doc = app.wire()
            doc["spec"]["stages"] = [s for s in doc["spec"]["stages"] if s["name"] in runnable]
            if doc["spec"]["stages"]:
                (apps_dir / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        config["apps_dir"] = str(apps_dir.resolve())
    path = root / "radpipe.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_archive(archive: Path, port: int, config: Path) -> subprocess.Popen[bytes]:
    from radpipe.dicom.archive import prepare

    settings = load_settings(config)
    node = settings.pacs[NODE]
    command, _, _ = prepare(
        archive,
        port=port,
        ae_title=ARCHIVE_AE,
        move_destinations={node.move_destination: ("127.0.0.1", node.storage_port)},
    )
    log = open(archive.parent / "archive.log", "ab")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.terminate()
    raise click.ClickException(f"the embedded archive did not start; see {log.name}")


def _start_web(config: Path, port: int) -> subprocess.Popen[bytes] | None:
    import importlib.util

    if importlib.util.find_spec("radpipe.web.cli") is None:
        return None
    log = open(DEMO_DIR / "web.log", "ab")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [sys.executable, "-m", "radpipe.cli", "--config", str(config), "web", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        if process.poll() is not None:
            return None
        time.sleep(0.3)
    return process


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    """Stop ``process`` if it runs: SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _run_case(case: DemoCase, config: Path, console: Console) -> AnalysisJob:
    from radpipe.local.progress import RichReporter
    from radpipe.local.runner import LocalRunner

    settings = load_settings(config)
    runner = LocalRunner(settings)
    spec = JobSpec.model_validate(
        {
            "accession": case.accession,
            "app": case.app,
            "source": {"pacs": NODE},
            "delivery": {"pacs": [NODE]},
        }
    )
    job = runner.submit(spec)
    console.rule(f"{case.app} · accession {case.accession} · job {job.uid}")
    with RichReporter(console, [s.name for s in job.status.stages]) as reporter:
        return runner.run(job.uid, reporter)


def _summary(jobs: list[AnalysisJob], console: Console) -> None:
    stages = list(dict.fromkeys(s.name for job in jobs for s in job.status.stages))
    table = Table(title="radpipe demo: seconds per stage", show_lines=False)
    table.add_column("app")
    table.add_column("phase")
    for name in stages:
        table.add_column(name, justify="right")
    table.add_column("total", justify="right")
    for job in jobs:
        row = [job.spec.app, job.status.phase.value]
        total = 0.0
        for name in stages:
            try:
                stage = job.status.stage(name)
            except KeyError:
                row.append("")
                continue
            if stage.started_at and stage.finished_at:
                seconds = (stage.finished_at - stage.started_at).total_seconds()
                total += seconds
                row.append(f"{seconds:.1f}")
            else:
                row.append(stage.state.value)
        row.append(f"{total:.1f}")
        table.add_row(*row)
    console.print(table)
    for job in jobs:
        if job.status.results:
            console.print(f"[bold]{job.spec.app}[/] findings: {json.dumps(job.status.results)}")
        if job.status.message:
            console.print(f"[bold]{job.spec.app}[/]: {job.status.message}")


@click.command()
@click.option("--keep-web", is_flag=True, help="Keep the web app up until Ctrl-C.")
def main(keep_web: bool) -> None:
    """Run the radpipe demo (what `make demo` runs)."""
    console = Console()
    setup_logging("WARNING")
    archive = DEMO_DIR / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        generate_case(case, archive, console)
    archive_port = free_port()
    config = write_config(DEMO_DIR, archive_port)
    runnable = set(stage_names())
    skipped = [
        s
        for s in ("fetch", "classify", "preprocess", "infer", "postprocess", "report", "deliver")
        if s not in runnable
    ]
    if skipped:
        console.print(f"[yellow]not yet available, skipped:[/] {', '.join(skipped)}")
    server = start_archive(archive, archive_port, config)
    web: subprocess.Popen[bytes] | None = None
    jobs: list[AnalysisJob] = []
    try:
        console.print(f"embedded archive {ARCHIVE_AE} on 127.0.0.1:{archive_port}")
        for case in CASES:
            jobs.append(_run_case(case, config, console))
        _summary(jobs, console)
        web_port = free_port()
        web = _start_web(config, web_port)
        console.print(f"\nconfiguration: {config}  (radpipe --config {config} jobs)")
        for job in jobs:
            pdf = Path(load_settings(config).store.root or "") / f"jobs/{job.uid}/report/report.pdf"
            if pdf.is_file():
                console.print(f"{job.spec.app} report: {pdf}")
            if web is not None:
                console.print(
                    f"{job.spec.app} job page: http://127.0.0.1:{web_port}/jobs/{job.uid}"
                )
        if web is not None and keep_web:
            console.print("web app running; press Ctrl-C to stop")
            web.wait()
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        stop_process(web)
        stop_process(server)
    failed = [j for j in jobs if j.status.phase.value != "Succeeded"]
    sys.exit(1 if failed or len(jobs) < len(CASES) else 0)


if __name__ == "__main__":
    os.environ.setdefault("NIPYPE_NO_ET", "1")
    main()
