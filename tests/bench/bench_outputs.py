"""Benchmark: postprocess + report (PDF and DICOM objects) for one glioma study.

Goal: at most 10 s for the two stages on a full-size synthetic glioma study (the seed's
report alone took 30 s). Run with ``.venv/bin/python -m tests.bench.bench_outputs``
(or under pytest: ``pytest tests/bench/bench_outputs.py -s``). The study is generated once
and cached; the timed part starts from the stored upstream results, in a fresh process
state for the stages (imports included, as a stage pod would pay them).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

GOAL_SECONDS = 10.0


def run(small: bool = False) -> dict[str, float]:
    """Time the stages; returns seconds per stage and in total."""
    from radpipe.api.apps import load_apps
    from radpipe.api.models import AnalysisJob, JobSpec, ObjectMeta
    from radpipe.config import Settings
    from radpipe.pipeline.executor import execute_stage
    from radpipe.results.synthetic import cached_study, load_case, seed_upstream
    from radpipe.store.local import LocalStore

    case = load_case(cached_study("mr-glioma", 1, small=small))
    with tempfile.TemporaryDirectory(prefix="radpipe-bench-") as tmp:
        root = Path(tmp)
        store = LocalStore(root / "store")
        settings = Settings(data_dir=root / "data")
        job = AnalysisJob(
            metadata=ObjectMeta(name="rp-bench", uid="rp-bench"),
            spec=JobSpec(accession=case.truth.accession, app="glioma"),
        )
        seed_upstream(store, job.uid, case)
        app = load_apps(None)["glioma"].spec
        timings: dict[str, float] = {}
        for stage in ("postprocess", "report"):
            clock, cpu = time.perf_counter(), time.process_time()
            result = execute_stage(job, app, stage, store, settings).result
            timings[stage] = round(time.perf_counter() - clock, 2)
            # CPU seconds of this process: a steadier figure on a shared, loaded machine
            timings[f"{stage}_cpu"] = round(time.process_time() - cpu, 2)
            assert result.complete, result.message
        timings["total"] = round(timings["postprocess"] + timings["report"], 2)
        timings["total_cpu"] = round(timings["postprocess_cpu"] + timings["report_cpu"], 2)
        timings["instances"] = float(len(case.datasets))
    return timings


def test_outputs_within_goal() -> None:
    timings = run()
    print(json.dumps(timings))
    assert timings["total"] <= GOAL_SECONDS, timings


if __name__ == "__main__":
    figures = run(small="--small" in sys.argv)
    figures["goal"] = GOAL_SECONDS
    print(json.dumps(figures, indent=2))
