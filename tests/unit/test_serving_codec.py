"""The V2 binary tensor codec and the fast replacement of kserve's binary-request parsing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radpipe.serving.server import import_kserve
from radpipe.serving.v2_codec import V2DecodeError, decode_tensors, encode_parts, encode_tensors


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.uint8, np.int64, np.bool_])
def test_binary_round_trip_keeps_values_shape_and_dtype(dtype: type) -> None:
    array = (np.arange(2 * 3 * 4) % 7).reshape(2, 3, 4).astype(dtype)
    body, length = encode_tensors("inputs", {"x": array}, {"id": "r1"})
    decoded = decode_tensors("inputs", body, length)
    assert decoded.header["id"] == "r1"
    out = decoded.tensors["x"]
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)


def test_encoded_parts_are_views_of_the_arrays_not_copies() -> None:
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    b = np.array([[True, False], [False, True]])
    parts, length = encode_parts("inputs", {"a": a, "b": b}, {"id": "r2"})
    assert len(parts) == 3 and parts[0].nbytes == length
    assert [p.nbytes for p in parts[1:]] == [a.nbytes, b.nbytes]
    body, same_length = encode_tensors("inputs", {"a": a, "b": b}, {"id": "r2"})
    assert b"".join(parts) == body and same_length == length
    a[0, 0, 0] = 42.0  # the part sees the change: it is the array's memory
    assert np.frombuffer(parts[1], np.float32)[0] == 42.0
    decoded = decode_tensors("inputs", b"".join(parts), length)
    np.testing.assert_array_equal(decoded.tensors["a"], a)
    np.testing.assert_array_equal(decoded.tensors["b"], b)


def test_non_contiguous_arrays_are_encoded_in_c_order() -> None:
    array = np.arange(60, dtype=np.float32).reshape(3, 4, 5)[:, ::2, 1:]
    parts, length = encode_parts("inputs", {"x": array}, {})
    out = decode_tensors("inputs", b"".join(parts), length).tensors["x"]
    assert out.shape == array.shape
    np.testing.assert_array_equal(out, array)


def test_json_tensors_decode_too() -> None:
    body = json.dumps(
        {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    ).encode()
    out = decode_tensors("inputs", body, None).tensors["x"]
    np.testing.assert_array_equal(out, np.array([[1, 2], [3, 4]], np.float32))


@pytest.mark.parametrize(
    ("entry", "blob", "problem"),
    [
        ({"name": "x", "shape": [4], "datatype": "FP32"}, b"\0" * 12, "do not hold"),
        ({"name": "x", "shape": [4], "datatype": "FP99"}, b"\0" * 16, "known datatype"),
        ({"name": "x", "shape": [-1], "datatype": "FP32"}, b"\0" * 16, "invalid shape"),
    ],
)
def test_malformed_binary_tensors_are_refused(entry: dict, blob: bytes, problem: str) -> None:
    entry = {**entry, "parameters": {"binary_data_size": len(blob)}}
    head = json.dumps({"inputs": [entry]}).encode()
    with pytest.raises(V2DecodeError, match=problem):
        decode_tensors("inputs", head + blob, len(head))


def test_header_length_outside_the_body_is_refused() -> None:
    with pytest.raises(V2DecodeError, match="outside the body"):
        decode_tensors("inputs", b"{}", 10)


def test_fast_decoding_matches_kserves_own() -> None:
    """The override must be a drop-in: same tensors, names, outputs and parameters."""
    kserve, kserve_model = import_kserve()
    array = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(np.float32)
    header = {
        "id": "abc",
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
    }
    body, length = encode_tensors("inputs", {"x": array}, header)
    ours = kserve_model.fast_infer_request(body, length, "m")
    theirs = kserve.InferRequest.from_bytes(body, length, "m")
    assert ours.id == theirs.id == "abc"
    assert [i.name for i in ours.inputs] == [i.name for i in theirs.inputs] == ["x"]
    assert ours.inputs[0].datatype == theirs.inputs[0].datatype == "FP32"
    assert ours.inputs[0].shape == theirs.inputs[0].shape
    np.testing.assert_array_equal(ours.inputs[0].as_numpy(), theirs.inputs[0].as_numpy())
    assert [o.name for o in ours.request_outputs] == ["y"]
    assert ours.request_outputs[0].binary_data is True
    assert ours.use_binary_outputs == theirs.use_binary_outputs


def test_fast_decoding_turns_bad_sizes_into_invalid_input() -> None:
    _, kserve_model = import_kserve()
    from kserve.errors import InvalidInput

    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [8],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 4},
                }
            ]
        }
    ).encode()
    with pytest.raises(InvalidInput):
        kserve_model.fast_infer_request(head + b"\0" * 4, len(head), "m")
