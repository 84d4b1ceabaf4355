"""Serving benchmark: each model on one study through the KServe ModelServer (binary V2 REST)
vs ONNX Runtime in-process, in the same run on the same machine; throughput with several
concurrent studies; and the cost of kserve's stock binary-request decoding vs radpipe's.

    nice -n 10 .venv/bin/python tests/bench/bench_serving.py [--repeats N] [--concurrent N]
        [--models glioma-unet,...]

Prints a table and writes bench-results/serving.json. Inputs are study-sized tensors of
random values (inference time does not depend on the values): MR crops of the brain's
bounding box on the model grid (as the infer stage sends them), a 36-slice head CT.

The two arms alternate (in-process, served, served, in-process, ...) so that a change in the
machine's load hits both alike; figures are medians. On a shared machine the wall times of
single runs swing by tens of percent, so the table also splits the served time into the
server's own compute (kserve's ``request_predict_seconds``) and the rest, "wire": encoding,
HTTP transfer, request parsing and the response, i.e. what serving adds. The CPU columns are
CPU seconds spent per study (in-process: this process; served: server plus client), which
contention does not inflate the way it inflates wall time (the server runs under the same
``nice`` as this process: it is its child).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from radpipe.serving.predictors import Predictor  # noqa: E402
from radpipe.serving.server import import_kserve  # noqa: E402
from radpipe.serving.spec import default_models_dir, load_spec  # noqa: E402
from radpipe.serving.v2_client import V2Client  # noqa: E402
from radpipe.serving.v2_codec import encode_tensors  # noqa: E402
from tests.fixtures.network import free_port, http_ok, wait_until  # noqa: E402

#: The MNI brain mask's bounding box on the model grid plus the infer stage's 4-voxel margin.
BRAIN_BOX = (153, 189, 155)
STUDIES = {
    "glioma-unet": ("image", (4, *BRAIN_BOX)),
    "metastasis-unet": ("image", (2, *BRAIN_BOX)),
    "hemorrhage-cnn": ("slices", (36, 3, 256, 256)),
}
GOALS = {"glioma-unet": {"overheadPct": 10.0, "inProcessSeconds": 20.0}}


def _study(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    input_name, shape = STUDIES[name]
    rng = np.random.default_rng(seed)
    return {input_name: rng.standard_normal(shape, dtype=np.float32)}


def _server_cpu(pid: int) -> float:
    """CPU seconds (user + system) the server process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_predict_seconds(url: str, model: str) -> float:
    """kserve's running total of ``request_predict_seconds`` for ``model``."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    pattern = (
        r'request_predict_seconds_sum\{[^}]*model_name="' + re.escape(model) + r'"[^}]*\} (\S+)'
    )
    match = re.search(pattern, text)
    return float(match.group(1)) if match else float("nan")


def _paired(
    local: Callable[[], object],
    served: Callable[[], object],
    url: str,
    model: str,
    pid: int,
    repeats: int,
) -> dict[str, float]:
    """Alternate the two arms ``repeats`` times each (ABBA...); medians of every figure."""
    rows: dict[str, list[float]] = {
        k: [] for k in ("local", "localCpu", "served", "servedCpu", "compute", "wire", "ratio")
    }

    def run_local() -> None:
        cpu, started = time.process_time(), time.perf_counter()
        local()
        rows["local"].append(time.perf_counter() - started)
        rows["localCpu"].append(time.process_time() - cpu)

    def run_served() -> None:
        predicted, server_cpu = _server_predict_seconds(url, model), _server_cpu(pid)
        cpu, started = time.process_time(), time.perf_counter()
        served()
        wall = time.perf_counter() - started
        client_cpu = time.process_time() - cpu
        compute = _server_predict_seconds(url, model) - predicted
        rows["served"].append(wall)
        rows["servedCpu"].append(_server_cpu(pid) - server_cpu + client_cpu)
        rows["compute"].append(compute)
        rows["wire"].append(wall - compute)

    for i in range(repeats):
        for arm in (run_local, run_served) if i % 2 == 0 else (run_served, run_local):
            arm()
        rows["ratio"].append(rows["served"][-1] / rows["local"][-1])
        print(f"  pair {i + 1}: in-process {rows['local'][-1]:.2f} s, served "
              f"{rows['served'][-1]:.2f} s (server compute {rows['compute'][-1]:.2f} s)",
              flush=True)  # fmt: skip
    return {k: statistics.median(v) for k, v in rows.items()}


def decoding_cost() -> dict[str, float]:
    """kserve 0.21's InferRequest.from_bytes vs radpipe's fast_infer_request, per element."""
    kserve, kserve_model = import_kserve()
    sample = np.random.default_rng(0).standard_normal((1, *BRAIN_BOX), dtype=np.float32)
    body, length = encode_tensors("inputs", {"image": sample}, {})
    started = time.perf_counter()
    kserve.InferRequest.from_bytes(body, length, "m").inputs[0].as_numpy()
    stock = time.perf_counter() - started
    started = time.perf_counter()
    kserve_model.fast_infer_request(body, length, "m").inputs[0].as_numpy()
    fast = time.perf_counter() - started
    elements = sample.size
    glioma = int(np.prod(STUDIES["glioma-unet"][1]))
    return {
        "elementsMeasured": elements,
        "stockSeconds": round(stock, 3),
        "fastSeconds": round(fast, 5),
        "stockMicrosecondsPerElement": round(stock / elements * 1e6, 3),
        "stockSecondsForGliomaStudy": round(stock / elements * glioma, 2),
        "fastSecondsForGliomaStudy": round(fast / elements * glioma, 4),
    }


def main() -> None:
    """Start a server, time every model both ways, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--models", default=",".join(STUDIES), help="comma-separated subset")
    args = parser.parse_args()
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(STUDIES))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {sorted(STUDIES)}")
    models_dir = default_models_dir()
    http_port, grpc_port = free_port(), free_port()
    log = tempfile.NamedTemporaryFile(prefix="bench-kserve-", suffix=".log", delete=False)  # noqa: SIM115
    env = dict(os.environ, RADPIPE_ORT_THREADS=str(args.threads))
    model_args = [arg for name in names for arg in ("--models", name)]
    server = subprocess.Popen(
        [sys.executable, "-m", "radpipe.cli", "serve-models", "--http-port", str(http_port),
         "--grpc-port", str(grpc_port), "--models-dir", str(models_dir), *model_args],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{http_port}"
    results: dict[str, object] = {
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "nice": os.nice(0),
        "loadAverage1m": round(os.getloadavg()[0], 2),
    }
    try:
        wait_until(lambda: http_ok(f"{url}/v2/health/ready"), 180, "model server")
        client = V2Client(url, timeout=1200)
        for name in names:
            spec = load_spec(models_dir / name)
            local = Predictor(spec, threads=args.threads)
            study = _study(name)
            outputs = [t.name for t in spec.outputs]
            local.predict(study)  # warm-up: sessions allocate on first run
            client.infer(name, study, outputs)
            print(name, flush=True)
            m = _paired(
                lambda: local.predict(study),  # noqa: B023
                lambda: client.infer(name, study, outputs),  # noqa: B023
                url, name, server.pid, args.repeats,
            )  # fmt: skip
            started = time.perf_counter()

            def one(seed: int) -> None:
                V2Client(url, timeout=1200).infer(name, _study(name, seed), outputs)  # noqa: B023

            workers = [threading.Thread(target=one, args=(s,)) for s in range(args.concurrent)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            wall = time.perf_counter() - started
            row = {
                "inputShape": list(STUDIES[name][1]),
                "inProcessSeconds": round(m["local"], 3),
                "servedSeconds": round(m["served"], 3),
                "overheadPct": round(100.0 * (m["served"] - m["local"]) / m["local"], 1),
                "pairedOverheadPct": round(100.0 * (m["ratio"] - 1.0), 1),
                "serverComputeSeconds": round(m["compute"], 3),
                "wireSeconds": round(m["wire"], 3),
                "wirePctOfInProcess": round(100.0 * m["wire"] / m["local"], 1),
                "inProcessCpuSeconds": round(m["localCpu"], 2),
                "servedCpuSeconds": round(m["servedCpu"], 2),
                "cpuOverheadPct": round(
                    100.0 * (m["servedCpu"] - m["localCpu"]) / m["localCpu"], 1
                ),
                "concurrentStudies": args.concurrent,
                "concurrentWallSeconds": round(wall, 2),
                "servedStudiesPerMinute": round(60.0 * args.concurrent / wall, 2),
                "inProcessStudiesPerMinute": round(60.0 / m["local"], 2),
                "goals": GOALS.get(name, {}),
            }
            results[name] = row
            print(name, json.dumps(row), flush=True)
        results["decoding"] = decoding_cost()
        print("decoding", json.dumps(results["decoding"]), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    out = ROOT / "bench-results" / "serving.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"\nnice {results['nice']}, load {results['loadAverage1m']}, ORT threads {args.threads}, "
        f"medians of {args.repeats} alternating pairs"
    )
    print(
        f"{'model':16} {'in-process s':>12} {'served s':>9} {'overhead':>9} {'wire s':>7} "
        f"{'wire':>6} {'cpu in-proc':>11} {'cpu served':>10} {'cpu ovh':>8} {'served/min':>10}"
    )
    for name in names:
        r = results[name]
        assert isinstance(r, dict)
        print(
            f"{name:16} {r['inProcessSeconds']:>12} {r['servedSeconds']:>9} "
            f"{r['overheadPct']:>8}% {r['wireSeconds']:>7} {r['wirePctOfInProcess']:>5}% "
            f"{r['inProcessCpuSeconds']:>11} {r['servedCpuSeconds']:>10} "
            f"{r['cpuOverheadPct']:>7}% {r['servedStudiesPerMinute']:>10}"
        )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
