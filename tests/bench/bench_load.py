"""Load: N jobs submitted through the web API at once, local mode, 2 workers.

``.venv/bin/python tests/bench/bench_load.py [--jobs 200] [--workers 2]`` serves the web app
(uvicorn, loopback) with the fast ``webtoy`` app of tests/fixtures/web.py, submits every job
from 16 client threads, then polls pages while the jobs run. Prints: all jobs' final
phases, time to drain, p50/p95/max page latency of /jobs and /api/v1/jobs while loaded,
and the peak RSS of the process. Exit status 1 when a job does not succeed.
"""

from __future__ import annotations

import argparse
import base64
import resource
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main() -> int:
    from radpipe.config import Settings
    from tests.fixtures.web import (
        PASSWORDS,
        install_webtoy,
        serve,
        sign_in,
        uninstall_webtoy,
        write_users,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="radpipe-load-"))
    settings = install_webtoy(Settings(data_dir=folder / "data"), folder)
    settings.runner.workers = args.workers
    write_users(folder / "users.yaml")
    live = serve(settings)
    token = base64.b64encode(f"ada:{PASSWORDS['ada']}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    latencies: list[float] = []
    stop = threading.Event()

    def poll_pages() -> None:
        with httpx.Client(base_url=live.url, timeout=60) as client:
            sign_in(client, "rita")  # a browser session: the pages need one
            while not stop.is_set():
                for path in ("/jobs", "/api/v1/jobs"):
                    clock = time.perf_counter()
                    assert client.get(path).status_code == 200
                    latencies.append(time.perf_counter() - clock)
                time.sleep(0.2)

    def submit(index: int) -> str:
        with httpx.Client(base_url=live.url, headers=headers, timeout=120) as client:
            spec = {"accession": f"LOAD{index:05d}", "app": "webtoy", "options": {"delay": 0}}
            answer = client.post("/api/v1/jobs", json=spec)
            assert answer.status_code == 201, answer.text
            return str(answer.json()["metadata"]["name"])

    poller = threading.Thread(target=poll_pages, daemon=True)
    poller.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        uids = list(pool.map(submit, range(args.jobs)))
    submitted = time.perf_counter() - started
    phases: dict[str, str] = {}
    with httpx.Client(base_url=live.url, headers=headers, timeout=60) as client:
        while time.perf_counter() - started < 1800:
            jobs = client.get("/api/v1/jobs").json()
            phases = {j["metadata"]["name"]: j["status"]["phase"] for j in jobs}
            if all(phases.get(u) in ("Succeeded", "Failed") for u in uids):
                break
            time.sleep(1)
    drained = time.perf_counter() - started
    stop.set()
    poller.join(10)
    live.stop()
    uninstall_webtoy()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    done = sum(phases.get(u) == "Succeeded" for u in uids)
    ordered = sorted(latencies)
    p95 = ordered[int(0.95 * (len(ordered) - 1))] if ordered else float("nan")
    print(f"\n{'jobs':<34} {args.jobs}")
    print(f"{'workers':<34} {args.workers}")
    print(f"{'submitted in (s)':<34} {submitted:.1f}")
    print(f"{'all finished in (s)':<34} {drained:.1f}")
    print(f"{'succeeded':<34} {done}/{args.jobs}")
    print(f"{'page requests while loaded':<34} {len(ordered)}")
    if ordered:
        print(f"{'page latency p50 (ms)':<34} {1000 * statistics.median(ordered):.0f}")
        print(f"{'page latency p95 (ms)':<34} {1000 * p95:.0f}")
        print(f"{'page latency max (ms)':<34} {1000 * ordered[-1]:.0f}")
    print(f"{'peak RSS of the process (MB)':<34} {peak_mb:.0f}")
    return 0 if done == args.jobs else 1


if __name__ == "__main__":
    sys.exit(main())
