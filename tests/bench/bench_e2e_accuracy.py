"""Findings against the synthetic ground truth, accession to report, for every app.

Runs the same studies as tests/e2e (held-out seeds) through every stage on embedded
defaults and prints each finding next to the truth and the goal: glioma volumes within
10%, every true hemorrhage subtype detected, the metastasis count exact.

    .venv/bin/python tests/bench/bench_e2e_accuracy.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console
from rich.table import Table

from radpipe.api.models import JobSpec
from radpipe.config import load_settings
from radpipe.demo import NODE, free_port, start_archive, stop_process, write_config
from radpipe.local.runner import LocalRunner
from radpipe.logs import setup_logging
from radpipe.pipeline.contract import read_result
from radpipe.results.synthetic import cached_study
from radpipe.synth import StudyTruth
from tests.e2e.test_accession_to_report import CASES

ROOT = Path("var/bench-accuracy")


def main() -> None:
    """Run every case and print findings against truth."""
    setup_logging("WARNING")
    console = Console()
    archive = ROOT / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    studies = {}
    for app, kind, seed in CASES:
        folder = cached_study(kind, seed, small=False)
        target = archive / folder.name
        if not target.exists():
            shutil.copytree(folder / "dicom", target)
        studies[app] = StudyTruth.load(folder)
    port = free_port()
    config = write_config(ROOT, port)
    server = start_archive(archive, port, config)
    table = Table(title="findings vs synthetic ground truth (held-out seeds)")
    for column in ("app", "finding", "radpipe", "truth", "goal", "met"):
        table.add_column(column)
    try:
        runner = LocalRunner(load_settings(config))
        for app, truth in studies.items():
            spec = JobSpec.model_validate(
                {"accession": truth.accession, "app": app, "delivery": {"pacs": [NODE]}}
            )
            job = runner.run(runner.submit(spec).uid)
            if job.status.phase.value != "Succeeded":
                table.add_row(app, "job", job.status.phase.value, "", "", "no")
                continue
            result = read_result(runner.store, job.uid, "postprocess")
            assert result is not None
            doc = result.data["findings"]
            if app == "glioma":
                volumes = job.status.results["volumesCm3"]
                for name in ("WT", "TC", "ET"):
                    ours, true = volumes[name], truth.volumes_cm3[name]
                    met = abs(ours - true) <= 0.10 * true
                    table.add_row(
                        app,
                        f"{name} cm³",
                        f"{ours:.1f}",
                        f"{true:.1f}",
                        "±10%",
                        "yes" if met else "no",
                    )
            elif app == "hemorrhage":
                found = {f["code"]: f for f in doc["findings"]}
                for subtype in ["any", *truth.hemorrhage_subtypes]:
                    finding = found.get(subtype, {})
                    table.add_row(
                        app,
                        subtype,
                        f"p={finding.get('probability', 0):.2f}",
                        "present",
                        "detected",
                        "yes" if finding.get("present") else "no",
                    )
            else:
                count = job.status.results.get("lesionCount")
                table.add_row(
                    app,
                    "lesion count",
                    str(count),
                    str(len(truth.lesions)),
                    "exact",
                    "yes" if count == len(truth.lesions) else "no",
                )
    finally:
        stop_process(server)
    console.print(table)


if __name__ == "__main__":
    main()
