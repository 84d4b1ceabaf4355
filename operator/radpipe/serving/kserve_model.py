"""radpipe predictors as KServe models, plus the fast binary-request decoding.

``RadpipeModel`` is a ``kserve.Model`` around one :class:`~radpipe.serving.predictors.Predictor`:
metadata come from the model's spec (``get_input_types``/``get_output_types``), inference runs
in a worker thread (ONNX Runtime releases the GIL, the event loop keeps answering health
probes), and responses carry the model's version.

``FastDataPlane`` replaces kserve's REST binary-request decoding, which turns every tensor
into a Python list one element at a time, with :mod:`radpipe.serving.v2_codec` (numpy views of
the request body). The wire protocol is unchanged; only the server's parsing is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferInput, RequestedOutput

from radpipe.serving.predictors import PredictionError, Predictor
from radpipe.serving.v2_codec import HEADER_LENGTH, V2DecodeError, decode_tensors

log = logging.getLogger(__name__)


class RadpipeModel(Model):
    """One radpipe model served over V2: name and version from its model directory."""

    def __init__(self, predictor: Predictor) -> None:
        super().__init__(predictor.name)
        self.predictor = predictor
        self.version = predictor.version

    def load(self) -> bool:
        """The ONNX session is already open: the model is ready."""
        self.ready = True
        return True

    def get_input_types(self) -> list[dict[str, Any]]:
        """V2 metadata of the inputs (name, datatype, shape with -1 for any size)."""
        return [t.metadata() for t in self.predictor.spec.inputs]

    def get_output_types(self) -> list[dict[str, Any]]:
        """V2 metadata of the outputs."""
        return [t.metadata() for t in self.predictor.spec.outputs]

    async def predict(
        self,
        payload: InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        """Run the predictor on the request's tensors; 400 when they do not fit."""
        inputs = {}
        for tensor in payload.inputs:
            try:
                inputs[tensor.name] = tensor.as_numpy()
            except (ValueError, TypeError) as err:
                raise InvalidInput(f"input {tensor.name!r}: {err}") from err
        try:
            self.predictor.validate(inputs)
        except PredictionError as err:
            raise InvalidInput(str(err)) from err
        shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in inputs.items())
        request = payload.id or "-"
        # One line when inference starts and one when it ends: an operator (or a fault test)
        # can tell a request the server died in the middle of from one it never received.
        log.info("inference started: model %s request %s inputs %s", self.name, request, shapes)
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        outputs = await loop.run_in_executor(None, self.predictor.predict, inputs)
        log.info(
            "inference finished: model %s request %s in %.2f s",
            self.name,
            request,
            time.perf_counter() - started,
        )
        infer_outputs = []
        for spec in self.predictor.spec.outputs:
            array = np.ascontiguousarray(outputs[spec.name])
            out = InferOutput(name=spec.name, shape=list(array.shape), datatype=spec.datatype)
            # Keep raw bytes; kserve turns them into JSON only if the client asked for JSON.
            out.set_data_from_numpy(array, binary_data=True)
            infer_outputs.append(out)
        return InferResponse(
            response_id=payload.id or "",
            model_name=self.name,
            model_version=self.version,
            infer_outputs=infer_outputs,
            from_grpc=payload.from_grpc,
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )


def fast_infer_request(body: bytes, json_length: int, model_name: str) -> InferRequest:
    """Parse a REST binary V2 request without per-element conversions.

    Same result as kserve's ``InferRequest.from_bytes``, except that each binary input keeps
    its bytes (``as_numpy`` is then a zero-copy ``numpy.frombuffer``), and that sizes are
    checked against shapes (400 instead of a reshape error deep inside the model).
    """
    try:
        decoded = decode_tensors("inputs", body, json_length)
    except V2DecodeError as err:
        raise InvalidInput(str(err)) from err
    inputs = []
    for entry in decoded.header["inputs"]:
        array = decoded.tensors[entry["name"]]
        infer_input = InferInput(
            name=entry["name"],
            shape=list(array.shape),
            datatype=entry["datatype"],
            parameters=entry.get("parameters"),
        )
        # as_numpy() reads _raw_data with numpy.frombuffer: no list, no copy.
        infer_input._raw_data = array.data
        inputs.append(infer_input)
    requested = decoded.header.get("outputs")
    request_outputs = (
        [RequestedOutput(name=o["name"], parameters=o.get("parameters")) for o in requested]
        if requested
        else None
    )
    return InferRequest(
        model_name=model_name,
        infer_inputs=inputs,
        request_id=decoded.header.get("id"),
        parameters=decoded.header.get("parameters"),
        request_outputs=request_outputs,
    )


class FastDataPlane(DataPlane):
    """kserve's DataPlane with the fast binary decoding and model versions in metadata."""

    def decode_inference_request(
        self, body: Any, headers: dict[str, str], model_name: str
    ) -> InferRequest:
        """Binary REST bodies go through :func:`fast_infer_request`; the rest as before."""
        if isinstance(body, bytes):
            json_length = headers.get(HEADER_LENGTH.lower())
            if json_length is None:
                raise InvalidInput(f"received a binary body without the {HEADER_LENGTH} header")
            try:
                length = int(json_length)
            except ValueError as err:
                raise InvalidInput(f"{HEADER_LENGTH} must be an integer") from err
            return fast_infer_request(body, length, model_name)
        return super().decode_inference_request(body, headers, model_name)

    async def model_metadata(self, model_name: str) -> dict[str, Any]:
        """V2 model metadata with ``versions`` and ``platform`` filled in."""
        metadata: dict[str, Any] = await super().model_metadata(model_name)
        model = self.get_model_from_registry(model_name)
        version = getattr(model, "version", None)
        if version:
            metadata["versions"] = [version]
        metadata["platform"] = "onnxruntime_onnx"
        return metadata
