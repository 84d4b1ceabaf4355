"""Fetch benchmark: one synthetic MR study (600+ instances) out of a real Orthanc, every way.

    .venv/bin/python tests/bench/bench_fetch.py [--seed 2] [--repeat 1] [--parallel 4]

Measures, in the same run and against the same Orthanc:

* Orthanc's REST archive download of the study (``GET /studies/{id}/archive``, the transport
  the seed system used) — the baseline;
* radpipe C-GET, C-MOVE and WADO-RS into the artifact store, the way the fetch stage does
  (parallel associations per series), and radpipe C-GET on one association;
* dcmtk's getscu and movescu (``TCP_NODELAY=1`` in their environment) writing files.

Prints instances/s, MB/s and the ratio of each rate to the REST archive's. Not part of
``make test``. The study is generated once into ~/.cache/radpipe/bench (seconds to a minute).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "operator")]

from radpipe.dicom.client import open_client  # noqa: E402
from radpipe.dicom.instances import StudySink  # noqa: E402
from radpipe.dicom.nodes import PacsNode  # noqa: E402
from radpipe.dicom.retrieve import StudyRetriever  # noqa: E402
from radpipe.store import LocalStore  # noqa: E402
from tests.fixtures.pacs import ORTHANC_AET, RADPIPE_AET, OrthancServer  # noqa: E402

MIN_INSTANCES = 600


def study_files(seed: int) -> tuple[list[Path], str]:
    """The synthetic MR study's files (generated on first use) and its accession."""
    from pydicom import dcmread

    from radpipe.synth import generate_study

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "radpipe" / "bench"
    for attempt in range(seed, seed + 10):
        out = cache / f"mr-glioma-seed{attempt}"
        if not (out / "dicom").is_dir():
            print(f"generating synthetic MR study (seed {attempt}) into {out} ...", flush=True)
            shutil.rmtree(out, ignore_errors=True)
            try:
                generate_study("mr-glioma", out, seed=attempt, accession=f"BENCH{attempt}")
            except ValueError as err:  # a seed the generator cannot make: try the next
                print(f"  seed {attempt}: {err}", flush=True)
                continue
        files = sorted(p for p in (out / "dicom").rglob("*") if p.is_file())
        if len(files) >= MIN_INSTANCES:
            return files, str(dcmread(files[0], stop_before_pixels=True).AccessionNumber)
        print(f"  seed {attempt}: {len(files)} instances (< {MIN_INSTANCES}), next seed")
    raise SystemExit(f"no seed in {seed}..{seed + 9} gives a study of {MIN_INSTANCES}+ instances")


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    """Run ``fn`` (returns instances received); (seconds, instances)."""
    start = time.perf_counter()
    count = fn()
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=2, help="synthetic study seed")
    parser.add_argument("--repeat", type=int, default=1, help="runs per method (best is kept)")
    parser.add_argument("--parallel", type=int, default=4, help="radpipe associations")
    args = parser.parse_args()
    for tool in ("Orthanc", "getscu", "movescu"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install orthanc orthanc-dicomweb dcmtk")

    files, accession = study_files(args.seed)
    total_bytes = sum(p.stat().st_size for p in files)
    work = Path(tempfile.mkdtemp(prefix="radpipe-bench-"))
    orthanc = OrthancServer(work / "orthanc")
    orthanc.start()
    try:
        print(f"loading {len(files)} instances ({total_bytes / 1e6:.0f} MB) into Orthanc ...")
        orthanc.upload(files)
        [study_id] = orthanc.post_json(
            "/tools/find", {"Level": "Study", "Query": {"AccessionNumber": accession}}
        )
        study_uid = orthanc.get(f"/studies/{study_id}")["MainDicomTags"]["StudyInstanceUID"]
        runs: dict[str, Callable[[int], int]] = {}

        def rest_archive(i: int) -> int:
            target = work / f"archive-{i}.zip"
            url = f"{orthanc.url}/studies/{study_id}/archive"
            with urllib.request.urlopen(url) as answer, open(target, "wb") as out:
                shutil.copyfileobj(answer, out, 1 << 20)
            import zipfile

            with zipfile.ZipFile(target) as archive:
                return sum(1 for n in archive.namelist() if not n.endswith("/"))

        def radpipe(method: str, parallel: int) -> Callable[[int], int]:
            def run(i: int) -> int:
                if method == "wado":
                    cfg = orthanc.dicomweb_node(max_associations=parallel)
                else:
                    cfg = orthanc.dimse_node(retrieve=method, max_associations=parallel)
                client = open_client(PacsNode("orthanc", cfg))
                store = LocalStore(work / f"store-{method}-{parallel}-{i}")
                sink = StudySink(lambda k, d: store.put_bytes(k, d), study_uid)
                series = client.find_series(study_uid)
                StudyRetriever(client, parallel=parallel).retrieve(study_uid, series, sink)
                return sink.instance_count

            return run

        def dcmtk(tool: str) -> Callable[[int], int]:
            def run(i: int) -> int:
                out = work / f"{tool}-{i}"
                out.mkdir()
                command = [
                    tool,
                    "-aet",
                    RADPIPE_AET,
                    "-aec",
                    ORTHANC_AET,
                    "-S",
                    "-k",
                    "QueryRetrieveLevel=STUDY",
                    "-k",
                    f"StudyInstanceUID={study_uid}",
                    "-od",
                    str(out),
                ]
                if tool == "movescu":
                    command += ["-aem", RADPIPE_AET, "--port", str(orthanc.storage_port)]
                command += ["127.0.0.1", str(orthanc.dicom_port)]
                env = dict(os.environ, TCP_NODELAY="1")
                subprocess.run(command, env=env, check=True, capture_output=True)
                return sum(1 for _ in out.iterdir())

            return run

        runs["Orthanc REST archive (zip)"] = rest_archive
        runs[f"radpipe C-GET, {args.parallel} assoc."] = radpipe("c-get", args.parallel)
        runs[f"radpipe C-MOVE, {args.parallel} assoc."] = radpipe("c-move", args.parallel)
        runs[f"radpipe WADO-RS, {args.parallel} conn."] = radpipe("wado", args.parallel)
        runs["radpipe C-GET, 1 assoc."] = radpipe("c-get", 1)
        runs["dcmtk getscu"] = dcmtk("getscu")
        runs["dcmtk movescu"] = dcmtk("movescu")

        results: dict[str, tuple[float, int]] = {}
        for name, run in runs.items():
            best: tuple[float, int] | None = None
            for i in range(args.repeat):
                seconds, count = timed(lambda run=run, i=i: run(i))  # type: ignore[misc]
                if count != len(files):
                    raise SystemExit(f"{name}: {count} of {len(files)} instances arrived")
                if best is None or seconds < best[0]:
                    best = (seconds, count)
            assert best is not None
            results[name] = best
            print(f"  {name}: {best[0]:.2f} s", flush=True)

        base_seconds = results["Orthanc REST archive (zip)"][0]
        print()
        print(
            f"study: {len(files)} instances, {total_bytes / 1e6:.1f} MB; "
            f"{os.cpu_count()} CPUs; best of {args.repeat}"
        )
        print(f"{'method':34} {'seconds':>8} {'inst/s':>8} {'MB/s':>7} {'× REST':>7}")
        for name, (seconds, count) in results.items():
            print(
                f"{name:34} {seconds:8.2f} {count / seconds:8.0f} "
                f"{total_bytes / 1e6 / seconds:7.1f} {base_seconds / seconds:7.2f}"
            )
    finally:
        orthanc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
