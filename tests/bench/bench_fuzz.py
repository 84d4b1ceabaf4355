"""Fuzz the header-feature extraction and the DICOM readers for a bounded time.

``.venv/bin/python tests/bench/bench_fuzz.py [--seconds 60]`` runs each target of
tests/fuzz_targets.py with random (not derandomized) hypothesis inputs until its time is up
and prints a table: target, examples tried, failures, examples per second. A failure
prints hypothesis' shrunk input and makes the exit status 1. Also reads the corpus' 5000-
instance series (``make_bad_corpus.py --large``) through the fetch-side inspection and
the classify header read, and prints the time per instance.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def run_for(name: str, test: Callable[[], None], seconds: float) -> tuple[int, int, str]:
    """Call a @given test repeatedly until ``seconds`` pass; (examples, failures, first error)."""
    examples = failures = 0
    first = ""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            test()
        except Exception as err:  # a falsifying example: keep going, report it
            failures += 1
            first = first or f"{type(err).__name__}: {err}"[:2000]
        examples += 100
    return examples, failures, first


def fuzzers() -> dict[str, Callable[[], None]]:
    """One hypothesis test per target, 100 random examples per call."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.fuzz_targets import (
        HEADER_MAPPINGS,
        base_instance,
        check_dataset_header,
        check_features,
        check_inspect,
        mutated_instances,
    )

    base = base_instance()
    rnd = settings(
        max_examples=100,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )

    @rnd
    @given(
        st.lists(HEADER_MAPPINGS, min_size=1, max_size=6),
        st.lists(st.none() | st.integers(), max_size=3),
    )
    def features(mappings: list[dict[str, Any]], counts: list[int | None]) -> None:
        check_features(mappings, counts)

    @rnd
    @given(mutated_instances(base))
    def inspect(data: bytes) -> None:
        check_inspect(data)

    @rnd
    @given(mutated_instances(base))
    def header(data: bytes) -> None:
        check_dataset_header(data)

    return {"series features": features, "inspect_instance": inspect, "classify header": header}


def large_series() -> tuple[int, float, float] | None:
    """(instances, ms per instance inspected, ms per header) on the 5000-instance series."""
    from io import BytesIO

    from pydicom import dcmread

    from radpipe.dicom.instances import StudySink
    from radpipe.series.headers import SeriesHeader
    from tests.data.make_bad_corpus import generate

    folder = generate(large=True) / "large_series"
    files = sorted(folder.glob("*.dcm"))
    sink = StudySink(lambda name, data: None)
    clock = time.perf_counter()
    for path in files:
        sink.receive(path.read_bytes())
    inspect_ms = (time.perf_counter() - clock) * 1000 / len(files)
    assert sink.instance_count == len(files), sink.instance_count
    clock = time.perf_counter()
    for path in files[:500]:
        SeriesHeader.from_dataset(dcmread(BytesIO(path.read_bytes()), stop_before_pixels=True))
    header_ms = (time.perf_counter() - clock) * 1000 / 500
    return len(files), inspect_ms, header_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per target")
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory():
        rows = []
        failed = False
        for name, test in fuzzers().items():
            examples, failures, first = run_for(name, test, args.seconds)
            rows.append((name, examples, failures, examples / args.seconds))
            if failures:
                failed = True
                print(f"!! {name}: {first}")
    print(f"\n{'target':<20} {'examples':>9} {'failures':>9} {'examples/s':>11}")
    for name, examples, failures, rate in rows:
        print(f"{name:<20} {examples:>9} {failures:>9} {rate:>11.0f}")
    if not args.skip_large:
        found = large_series()
        if found:
            count, inspect_ms, header_ms = found
            print(
                f"\n5000-instance series: {count} instances, inspect {inspect_ms:.2f} ms/instance,"
                f" header read {header_ms:.2f} ms/instance"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
