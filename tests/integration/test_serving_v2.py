"""V2 / Open Inference Protocol conformance of ``radpipe serve-models`` (a real KServe
ModelServer): health, metadata, infer with binary and JSON payloads, gRPC, error codes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import pytest

from radpipe.serving.v2_client import V2Client, V2Error
from radpipe.serving.v2_codec import HEADER_LENGTH, encode_tensors
from tests.fixtures.model_server import ModelServerProcess, bundled_version

pytestmark = pytest.mark.integration

EXPECTED = {
    "glioma-unet": (
        [{"name": "image", "datatype": "FP32", "shape": [4, -1, -1, -1]}],
        [{"name": "labels", "datatype": "UINT8", "shape": [-1, -1, -1]}],
    ),
    "metastasis-unet": (
        [{"name": "image", "datatype": "FP32", "shape": [2, -1, -1, -1]}],
        [{"name": "probability", "datatype": "FP32", "shape": [-1, -1, -1]}],
    ),
    "hemorrhage-cnn": (
        [{"name": "slices", "datatype": "FP32", "shape": [-1, 3, 256, 256]}],
        [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 6]}],
    ),
}


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, Any]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers


def test_health_and_server_metadata(model_server: ModelServerProcess) -> None:
    assert _get(f"{model_server.url}/v2/health/live") == (200, {"live": True})
    assert _get(f"{model_server.url}/v2/health/ready") == (200, {"ready": True})
    status, meta = _get(f"{model_server.url}/v2")
    assert status == 200 and meta["name"]
    for name in EXPECTED:
        assert _get(f"{model_server.url}/v2/models/{name}/ready")[0] == 200


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_metadata_has_shapes_datatypes_and_version(
    model_server: ModelServerProcess, name: str
) -> None:
    status, meta = _get(f"{model_server.url}/v2/models/{name}")
    assert status == 200
    inputs, outputs = EXPECTED[name]
    assert meta["name"] == name
    assert meta["versions"] == [bundled_version(name)]
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == inputs and meta["outputs"] == outputs


def test_binary_infer_returns_binary_outputs_with_name_and_version(
    model_server: ModelServerProcess,
) -> None:
    slices = np.random.default_rng(0).random((3, 3, 256, 256), dtype=np.float32)
    header = {"outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]}
    body, length = encode_tensors("inputs", {"slices": slices}, header)
    status, raw, headers = _post(
        f"{model_server.url}/v2/models/hemorrhage-cnn/infer",
        body,
        {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(length)},
    )
    assert status == 200
    json_length = int(headers[HEADER_LENGTH])
    head = json.loads(raw[:json_length])
    assert head["model_name"] == "hemorrhage-cnn"
    assert head["model_version"] == bundled_version("hemorrhage-cnn")
    (out,) = head["outputs"]
    assert out["shape"] == [3, 6] and out["datatype"] == "FP32"
    values = np.frombuffer(raw[json_length:], np.float32).reshape(3, 6)
    assert ((values >= 0) & (values <= 1)).all()


def test_json_infer_gives_the_same_answer_as_binary(model_server: ModelServerProcess) -> None:
    image = np.random.default_rng(1).standard_normal((4, 6, 7, 8)).astype(np.float32)
    request = {
        "inputs": [
            {"name": "image", "shape": list(image.shape), "datatype": "FP32",
             "data": image.ravel().tolist()}
        ]
    }  # fmt: skip
    status, raw, _ = _post(
        f"{model_server.url}/v2/models/glioma-unet/infer",
        json.dumps(request).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 200
    answer = json.loads(raw)
    (out,) = answer["outputs"]
    assert out["datatype"] == "UINT8" and out["shape"] == [6, 7, 8]
    labels = np.array(out["data"], np.uint8).reshape(6, 7, 8)
    binary = V2Client(model_server.url).infer("glioma-unet", {"image": image}, ["labels"])
    np.testing.assert_array_equal(binary.outputs["labels"], labels)
    assert set(np.unique(labels)) <= {0, 1, 2, 4}


@pytest.mark.parametrize(
    ("model", "inputs", "status", "message"),
    [
        ("hemorrhage-cnn", {"slices": np.zeros((1, 2, 256, 256), np.float32)}, 400, "shape"),
        ("hemorrhage-cnn", {"slices": np.zeros((1, 3, 256, 256), np.float64)}, 400, "FP32"),
        ("hemorrhage-cnn", {"wrong": np.zeros((1, 3, 256, 256), np.float32)}, 400, "inputs"),
        ("glioma-unet", {"image": np.zeros((3, 8, 8, 8), np.float32)}, 400, "shape"),
        ("no-such-model", {"image": np.zeros((4, 8, 8, 8), np.float32)}, 404, "no-such-model"),
    ],
)
def test_bad_requests_get_clear_error_codes(
    model_server: ModelServerProcess,
    model: str,
    inputs: dict[str, np.ndarray],
    status: int,
    message: str,
) -> None:
    client = V2Client(model_server.url, attempts=1)
    with pytest.raises(V2Error, match=message) as caught:
        client.infer(model, inputs, ["x"])
    assert caught.value.status == status


def test_binary_size_that_does_not_match_the_shape_is_a_400(
    model_server: ModelServerProcess,
) -> None:
    head = json.dumps(
        {"inputs": [{"name": "slices", "shape": [1, 3, 256, 256], "datatype": "FP32",
                     "parameters": {"binary_data_size": 16}}]}
    ).encode()  # fmt: skip
    status, raw, _ = _post(
        f"{model_server.url}/v2/models/hemorrhage-cnn/infer",
        head + b"\0" * 16,
        {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(head))},
    )
    assert status == 400 and b"do not hold" in raw


def test_grpc_infer_with_raw_input_contents(model_server: ModelServerProcess) -> None:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    slices = np.random.default_rng(2).random((2, 3, 256, 256), dtype=np.float32)
    with grpc.insecure_channel(f"127.0.0.1:{model_server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=30).ready
        meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="hemorrhage-cnn"), timeout=30)
        assert [i.name for i in meta.inputs] == ["slices"]
        request = pb.ModelInferRequest(
            model_name="hemorrhage-cnn",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="slices", datatype="FP32", shape=list(slices.shape)
                )
            ],
            raw_input_contents=[slices.tobytes()],
        )
        response = stub.ModelInfer(request, timeout=60)
    assert response.model_version == bundled_version("hemorrhage-cnn")
    grpc_out = np.frombuffer(response.raw_output_contents[0], np.float32).reshape(2, 6)
    rest = V2Client(model_server.url).infer("hemorrhage-cnn", {"slices": slices}, ["probabilities"])
    np.testing.assert_allclose(grpc_out, rest.outputs["probabilities"], atol=1e-6)
