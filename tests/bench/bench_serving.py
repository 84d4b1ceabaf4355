"""Serving benchmark: each model on one study through the KServe ModelServer (binary V2 REST)
vs ONNX Runtime in-process, in the same run on the same machine; throughput with several
concurrent studies; and the cost of kserve's stock binary-request decoding vs radpipe's.

    .venv/bin/python tests/bench/bench_serving.py [--repeats N] [--concurrent N]

Prints a table and writes bench-results/serving.json. Inputs are study-sized tensors of
random values (inference time does not depend on the values): MR crops of the brain's
bounding box on the model grid (as the infer stage sends them), a 36-slice head CT.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
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


def _timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


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
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--concurrent", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    models_dir = default_models_dir()
    http_port, grpc_port = free_port(), free_port()
    log = tempfile.NamedTemporaryFile(prefix="bench-kserve-", suffix=".log", delete=False)  # noqa: SIM115
    env = dict(os.environ, RADPIPE_ORT_THREADS=str(args.threads))
    server = subprocess.Popen(
        [sys.executable, "-m", "radpipe.cli", "serve-models", "--http-port", str(http_port),
         "--grpc-port", str(grpc_port), "--models-dir", str(models_dir)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{http_port}"
    results: dict[str, object] = {"threads": args.threads, "cpus": os.cpu_count()}
    try:
        wait_until(lambda: http_ok(f"{url}/v2/health/ready"), 180, "model server")
        client = V2Client(url, timeout=600)
        for name in STUDIES:
            spec = load_spec(models_dir / name)
            local = Predictor(spec, threads=args.threads)
            study = _study(name)
            outputs = [t.name for t in spec.outputs]
            local.predict(study)  # warm-up: sessions allocate on first run
            client.infer(name, study, outputs)
            in_process = _timed(lambda: local.predict(study), args.repeats)  # noqa: B023
            served = _timed(lambda: client.infer(name, study, outputs), args.repeats)  # noqa: B023
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
                "inProcessSeconds": round(in_process, 3),
                "servedSeconds": round(served, 3),
                "overheadPct": round(100.0 * (served - in_process) / in_process, 1),
                "concurrentStudies": args.concurrent,
                "concurrentWallSeconds": round(wall, 2),
                "servedStudiesPerMinute": round(60.0 * args.concurrent / wall, 2),
                "inProcessStudiesPerMinute": round(60.0 / in_process, 2),
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
    print(f"\n{'model':18} {'in-process s':>13} {'served s':>9} {'overhead':>9} {'served/min':>11}")
    for name in STUDIES:
        r = results[name]
        assert isinstance(r, dict)
        print(
            f"{name:18} {r['inProcessSeconds']:>13} {r['servedSeconds']:>9} "
            f"{r['overheadPct']:>8}% {r['servedStudiesPerMinute']:>11}"
        )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
