"""Test-only stages for the cluster tier (the pods are separate processes, so these
stages steer themselves by the attempt number and the job options, never by memory).

App ``kubetoy``: ``kt-produce`` writes ``data.bin``; ``kt-infer`` (a stand-in for an
infer stage) reads it back, reports the model URL the stage runner found in the app's
InferenceService, and can fail its first
``failTimes`` attempts (retryable), fail for good (``failPermanent``), die without a
result (``crash``: the process exits 3 after printing, like an OOM kill), or sleep
``sleepSeconds`` first (time to kill the operator mid-stage).
"""

from __future__ import annotations

import os
import sys
import time

from radpipe.pipeline.contract import (
    Stage,
    StageContext,
    StageError,
    StageOutcome,
    TransientStageError,
)
from radpipe.pipeline.registry import register_stage

KUBETOY_APP = {
    "apiVersion": "radpipe.io/v1alpha1",
    "kind": "AnalysisApp",
    "metadata": {"name": "kubetoy"},
    "spec": {
        "title": "Cluster-tier toy app",
        "modality": "MR",
        "options": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "size": {"type": "integer", "minimum": 0},
                "failTimes": {"type": "integer", "minimum": 0},
                "failPermanent": {"type": "boolean"},
                "crash": {"type": "boolean"},
                "sleepSeconds": {"type": "number", "minimum": 0},
            },
        },
        "models": [{"role": "scorer", "inferenceService": "kubetoy-model"}],
        "stages": [
            {"name": "kt-produce", "timeoutSeconds": 600},
            {"name": "kt-infer", "maxAttempts": 3, "timeoutSeconds": 600},
        ],
    },
}


class KtProduce(Stage):
    """Writes ``data.bin`` of ``options.size`` bytes."""

    name = "kt-produce"

    def run(self, ctx: StageContext) -> StageOutcome:
        size = int(ctx.job.spec.options.get("size", 512))
        info = ctx.put_bytes("data.bin", b"r" * size)
        return StageOutcome(data={"size": info.size})


class KtInfer(Stage):
    """Reads ``kt-produce``'s output; fails, crashes or sleeps as the options say."""

    name = "kt-infer"
    requires = ("kt-produce",)

    def run(self, ctx: StageContext) -> StageOutcome:
        options = ctx.job.spec.options
        time.sleep(float(options.get("sleepSeconds", 0)))
        data = ctx.read_input("kt-produce", "data.bin")
        if options.get("crash"):
            print("kt-infer: reading the toy volume", flush=True)
            print("kt-infer: fatal: simulated out-of-memory", file=sys.stderr, flush=True)
            os._exit(3)
        if options.get("failPermanent"):
            raise StageError("the toy study has no usable series", hint="pick another study")
        if ctx.attempt <= int(options.get("failTimes", 0)):
            raise TransientStageError(f"toy model server unavailable (attempt {ctx.attempt})")
        endpoint = ctx.settings.models.endpoints.get("kubetoy-model")
        results = {"toyBytes": len(data), "attempt": ctx.attempt}
        if endpoint is not None and endpoint.url:
            results["modelUrl"] = endpoint.url
        ctx.put_json("summary.json", results)
        return StageOutcome(data={"results": results})


def register() -> None:
    """Register the test stages in this process."""
    register_stage(KtProduce)
    register_stage(KtInfer)
