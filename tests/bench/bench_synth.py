"""Benchmark of the synthetic-study generator: one study per kind and vendor, as the CLI runs it.

    .venv/bin/python tests/bench/bench_synth.py [--kinds mr-glioma ct-hemorrhage] [--repeat 2]

Each run is a fresh ``radpipe synth KIND --out DIR --seed N --vendor V`` process (imports
included, as a user pays them), timed for wall and CPU time and peak memory. The anatomy
cache (~/.cache/radpipe/synth) is warmed first: it is built once per machine. Goal (issue 3):
one MR study in ≤ 10 s on this 2-core machine. The load average is printed: on a shared
machine wall time follows the load, CPU time does not.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_SECONDS = 10.0
VENDORS = ("siemens", "ge", "philips", "canon")
RADPIPE = Path(sys.executable).with_name("radpipe")


def run_once(kind: str, vendor: str, seed: int) -> tuple[float, float, float]:
    """Wall and CPU seconds of one ``radpipe synth`` process, and the largest child RSS so far."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        done = subprocess.run(
            [str(RADPIPE), "synth", kind, "--out", tmp, "--seed", str(seed), "--vendor", vendor],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"radpipe synth {kind} failed:\n{done.stderr}")
        wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=["mr-glioma", "mr-metastasis"])
    parser.add_argument("--repeat", type=int, default=1, help="seeds per vendor")
    args = parser.parse_args()

    from radpipe.synth.study import generate_study

    with tempfile.TemporaryDirectory() as tmp:  # warm the per-machine anatomy cache
        generate_study("mr-normal", Path(tmp), seed=0, small=True)
    print(f"{'kind':14s} {'vendor':8s} {'seed':>4s} {'wall s':>7s} {'CPU s':>6s} {'RSS MiB':>8s}")
    walls: dict[str, list[float]] = {}
    for kind in args.kinds:
        for vendor in VENDORS:
            for seed in range(1, args.repeat + 1):
                wall, cpu, rss = run_once(kind, vendor, seed)
                walls.setdefault(kind, []).append(wall)
                print(f"{kind:14s} {vendor:8s} {seed:4d} {wall:7.2f} {cpu:6.2f} {rss:8.0f}")
    print(f"\nload average {os.getloadavg()[0]:.1f}")
    met = True
    for kind, values in walls.items():
        median, worst = statistics.median(values), max(values)
        ok = not kind.startswith("mr-") or median <= GOAL_SECONDS
        met = met and ok
        print(f"{kind}: median {median:.2f} s, worst {worst:.2f} s")
    print(f"goal: one MR study ≤ {GOAL_SECONDS:.0f} s (median): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
