"""Accession to report delivered, per stage and total, on embedded defaults.

The seed system needed about 12 minutes per study (1 min fetch, 10 min preprocessing,
30 s report). Goal here: ≤ 60 s per glioma study end to end on 2 cores, and ≥ 60 studies
per hour with 2 workers.

    .venv/bin/python tests/bench/bench_e2e.py [--jobs 4] [--workers 2]

Uses the demo's set-up: a synthetic glioma study served by the embedded archive
(pynetdicom's qrscp), the local artifact store and ONNX Runtime in-process; results are
delivered back into the archive. Prints one table per run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from radpipe.api.models import AnalysisJob, JobSpec
from radpipe.config import load_settings
from radpipe.demo import (
    CASES,
    NODE,
    free_port,
    generate_case,
    start_archive,
    stop_process,
    write_config,
)
from radpipe.local.runner import LocalRunner
from radpipe.logs import setup_logging

ROOT = Path("var/bench-e2e")


def run_one(config: str, accession: str) -> AnalysisJob:
    """Submit and run one glioma job (in whichever process calls it)."""
    os.environ.setdefault("NIPYPE_NO_ET", "1")
    runner = LocalRunner(load_settings(Path(config)))
    spec = JobSpec.model_validate(
        {
            "accession": accession,
            "app": "glioma",
            "source": {"pacs": NODE},
            "delivery": {"pacs": [NODE]},
        }
    )
    job = runner.submit(spec)
    return runner.run(job.uid)


def stage_seconds(job: AnalysisJob) -> dict[str, float]:
    """Seconds per stage from the job's status."""
    out = {}
    for stage in job.status.stages:
        if stage.started_at and stage.finished_at:
            out[stage.name] = (stage.finished_at - stage.started_at).total_seconds()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4, help="jobs in the concurrent run")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    setup_logging("WARNING")
    console = Console()
    case = next(c for c in CASES if c.app == "glioma")
    archive = ROOT / "archive"
    # Start from the study as generated: the objects earlier runs delivered back (kept in the
    # archive's own state folder) would otherwise be fetched with it and slow every fetch.
    shutil.rmtree(archive / ".qrscp", ignore_errors=True)
    archive.mkdir(parents=True, exist_ok=True)
    generate_case(case, archive, console)
    port = free_port()
    config = write_config(ROOT, port)
    server = start_archive(archive, port, config)
    try:
        started = time.perf_counter()
        single = run_one(str(config), case.accession)
        single_wall = time.perf_counter() - started
        assert single.status.phase.value == "Succeeded", single.status.message
        table = Table(title="glioma: accession → report delivered (1 job, embedded defaults)")
        table.add_column("stage")
        table.add_column("seconds", justify="right")
        for name, seconds in stage_seconds(single).items():
            table.add_row(name, f"{seconds:.1f}")
        table.add_row("[bold]total (wall)[/]", f"[bold]{single_wall:.1f}[/]")
        table.add_row("seed system", "≈720")
        table.add_row("speed-up vs seed", f"{720 / single_wall:.1f}×")
        console.print(table)

        started = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            jobs = list(pool.map(run_one, [str(config)] * args.jobs, [case.accession] * args.jobs))
        wall = time.perf_counter() - started
        ok = sum(j.status.phase.value == "Succeeded" for j in jobs)
        per_hour = ok / wall * 3600
        table = Table(title=f"throughput: {args.jobs} glioma jobs, {args.workers} workers")
        for column in ("jobs", "succeeded", "wall s", "studies/hour", "goal"):
            table.add_column(column, justify="right")
        table.add_row(str(args.jobs), str(ok), f"{wall:.1f}", f"{per_hour:.0f}", "≥ 60")
        console.print(table)
    finally:
        stop_process(server)


if __name__ == "__main__":
    main()
