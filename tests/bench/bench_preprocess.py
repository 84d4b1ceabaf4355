"""Benchmark of the MR brain preprocessing workflow on a full-size synthetic 4-series study.

    .venv/bin/python tests/bench/bench_preprocess.py [--study DIR] [--seed N] [--repeat N]

Generates (once, cached under ``~/.cache/radpipe/bench``) a full-size synthetic glioma
study, runs the nipype workflow on its T1, T1c, T2 and FLAIR, and prints wall and CPU time,
peak resident memory and the per-node breakdown. Goal (issue 6): ≤ 15 s and ≤ 2 GB on a
2-core machine. The machine's load average is printed too: on a shared machine wall time
tracks the load, CPU time does not.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROLES = ("t1", "t1c", "t2", "flair")


def study_dir(seed: int) -> Path:
    """The cached benchmark study (generated on first use)."""
    root = Path(os.environ.get("RADPIPE_CACHE", Path.home() / ".cache" / "radpipe"))
    path = root / "bench" / f"mr-glioma-seed{seed}"
    if not (path / "truth" / "truth.json").exists():
        from radpipe.synth.study import generate_study

        print(f"generating the benchmark study in {path} (once)...", flush=True)
        generate_study("mr-glioma", path, seed=seed)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, help="a synthetic study directory to use")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="runs (fresh working dirs)")
    args = parser.parse_args()

    from radpipe.preprocessing.mr_workflow import run_mr_workflow
    from radpipe.preprocessing.provenance import PeakMemory
    from radpipe.preprocessing.templates import mni_template
    from radpipe.synth.truth import StudyTruth

    study = args.study or study_dir(args.seed)
    truth = StudyTruth.load(study)
    dirs = {r: study / truth.series_by_class(r)[0].path for r in ROLES}
    mni_template()  # warm the template cache: a one-off per machine, not per study
    for role, folder in dirs.items():
        print(f"{role:6s} {len(list(folder.iterdir())):4d} instances  {folder.name}")
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    kids_cpu0 = kids.ru_utime + kids.ru_stime
    for run in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp, PeakMemory() as memory:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            result = run_mr_workflow(dirs, Path(tmp))
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        kids_cpu = kids.ru_utime + kids.ru_stime - kids_cpu0
        kids_cpu0 += kids_cpu
        print(
            f"\nrun {run + 1}: wall {wall:.1f} s, CPU {cpu + kids_cpu:.1f} s (this process "
            f"{cpu:.1f} s, workers and dcm2niix {kids_cpu:.1f} s), peak RSS of the process "
            f"tree {memory.peak_mb:.0f} MiB, load average {os.getloadavg()[0]:.1f}, "
            f"QC {result.qc.status}"
        )
        width = max(len(n) for n in result.node_seconds)
        total = sum(result.node_seconds.values())
        for name, seconds in sorted(result.node_seconds.items(), key=lambda kv: -kv[1]):
            print(f"  {name:{width}s} {seconds:6.2f} s  {100 * seconds / total:5.1f} %")
        print(f"  {'(sum of nodes)':{width}s} {total:6.2f} s; (nodes overlap under MultiProc)")
    ok = wall <= 15.0 and memory.peak_mb <= 2048
    print(f"\ngoal ≤ 15 s and ≤ 2 GB: {'met' if ok else 'NOT met'} (last run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
