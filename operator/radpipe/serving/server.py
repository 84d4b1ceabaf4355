"""Start a KServe ModelServer (kserve's own) with radpipe's models on it."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from radpipe.serving.spec import ModelSpec


@contextlib.contextmanager
def _plain_argv() -> Iterator[None]:
    # kserve parses sys.argv when it is first imported; our own options are not its business.
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def import_kserve() -> Any:
    """Import kserve (and radpipe's model wrapper) with an argv kserve will not misread."""
    with _plain_argv():
        import kserve

        from radpipe.serving import kserve_model
    return kserve, kserve_model


def serve(
    specs: list[ModelSpec],
    http_port: int = 8080,
    grpc_port: int = 8081,
    *,
    enable_grpc: bool = True,
    threads: int | None = None,
) -> None:
    """Load every model and serve them over V2 REST (and gRPC) until interrupted."""
    kserve, kserve_model = import_kserve()
    from radpipe.serving.predictors import Predictor

    models = []
    for spec in specs:
        model = kserve_model.RadpipeModel(Predictor(spec, threads))
        model.load()
        models.append(model)
    server = kserve.ModelServer(
        http_port=http_port, grpc_port=grpc_port, enable_grpc=enable_grpc, workers=1
    )
    # Same protocol on the wire; a faster parser for binary REST requests.
    server.dataplane = kserve_model.FastDataPlane(model_registry=server.registered_models)
    server.start(models)
