"""V2 client behaviour that needs no model: retries on 503 and refused connections, clear
errors, timeouts; model directory specs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from radpipe.serving.spec import ModelSpecError, load_spec
from radpipe.serving.v2_client import V2Client, V2Error, V2Unavailable
from radpipe.serving.v2_codec import HEADER_LENGTH, decode_tensors, encode_tensors


class _Stub(BaseHTTPRequestHandler):
    """Answers 503 ``unavailable`` times, then one binary V2 response."""

    unavailable = 0
    calls = 0
    #: Every request received: (headers, body).
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        type(self).calls += 1
        if type(self).calls <= type(self).unavailable:
            self._send(503, json.dumps({"error": "loading"}).encode(), {})
            return
        body, length = encode_tensors(
            "outputs",
            {"y": np.arange(3, dtype=np.float32)},
            {"model_name": "m", "model_version": "7"},
        )
        self._send(200, body, {HEADER_LENGTH: str(length)})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[str]:
    _Stub.calls = 0
    _Stub.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_503_is_retried_with_backoff_then_succeeds(stub: str) -> None:
    _Stub.unavailable = 2
    delays: list[float] = []
    client = V2Client(stub, attempts=4, backoff=0.5, sleep=delays.append)
    result = client.infer("m", {"x": np.zeros(2, np.float32)}, ["y"])
    assert delays == [0.5, 1.0]
    assert result.model_name == "m" and result.model_version == "7"
    np.testing.assert_array_equal(result.outputs["y"], [0, 1, 2])


def test_the_request_body_arrives_whole_on_every_try(stub: str) -> None:
    # The client sends the body as buffers (no copy of the tensors); each retry sends all of
    # it again, framed by Content-Length (not chunked), and the server decodes the tensors.
    _Stub.unavailable = 1
    image = np.random.default_rng(3).standard_normal((2, 17, 19, 5)).astype(np.float32)
    mask = np.arange(30, dtype=np.uint8).reshape(5, 6)
    client = V2Client(stub, attempts=3, backoff=0.0, sleep=lambda _: None)
    client.infer("m", {"image": image, "mask": mask}, ["y"])
    assert len(_Stub.received) == 2
    for headers, body in _Stub.received:
        assert "Transfer-Encoding" not in headers
        assert int(headers["Content-Length"]) == len(body)
        decoded = decode_tensors("inputs", body, int(headers[HEADER_LENGTH]))
        np.testing.assert_array_equal(decoded.tensors["image"], image)
        np.testing.assert_array_equal(decoded.tensors["mask"], mask)
        assert decoded.header["outputs"] == [{"name": "y", "parameters": {"binary_data": True}}]


def test_503_after_every_attempt_is_unavailable(stub: str) -> None:
    _Stub.unavailable = 10
    client = V2Client(stub, attempts=3, backoff=0.1, sleep=lambda _: None)
    with pytest.raises(V2Unavailable, match=r"unavailable \(503\).*after 3 attempts"):
        client.infer("m", {"x": np.zeros(2, np.float32)}, ["y"])


def test_refused_connections_name_the_url() -> None:
    client = V2Client("http://127.0.0.1:9", attempts=2, backoff=0.0, sleep=lambda _: None)
    with pytest.raises(V2Unavailable, match=r"http://127\.0\.0\.1:9/v2/models/m/infer"):
        client.infer("m", {"x": np.zeros(2, np.float32)}, ["y"])
    assert not client.ready()


def test_missing_outputs_are_an_error(stub: str) -> None:
    _Stub.unavailable = 0
    with pytest.raises(V2Error, match="did not return"):
        V2Client(stub).infer("m", {"x": np.zeros(2, np.float32)}, ["z"])


def test_model_directories_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ModelSpecError, match=r"no model\.json"):
        load_spec(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"version": "1", "task": "slices2d"}))
    with pytest.raises(ModelSpecError, match="lacks the field 'inputs'"):
        load_spec(tmp_path)
    spec = {
        "version": "1",
        "task": "slices2d",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 6]}],
    }
    (tmp_path / "model.json").write_text(json.dumps(spec))
    with pytest.raises(ModelSpecError, match=r"has no model\.onnx"):
        load_spec(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"")
    loaded = load_spec(tmp_path)
    assert loaded.name == tmp_path.name and loaded.version == "1"
    assert loaded.inputs[0].check(np.zeros((2, 3), np.float32)) is None
    assert "shape" in (loaded.inputs[0].check(np.zeros((2, 4), np.float32)) or "")
    assert "FP32" in (loaded.inputs[0].check(np.zeros((2, 3), np.float64)) or "")
