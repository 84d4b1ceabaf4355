"""The V2 (Open Inference Protocol) REST binary tensor extension, encoded and decoded with
``numpy.frombuffer`` / ``tobytes`` only.

A binary request or response is a JSON header followed by the raw tensors in order; the header
says each tensor's ``binary_data_size`` and the ``Inference-Header-Content-Length`` HTTP header
says where the JSON ends. No tensor ever becomes a Python list here (kserve 0.21's own
``InferRequest.from_bytes`` builds one element by element: ~1 µs per value).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radpipe.serving.spec import V2_DTYPES, v2_datatype

HEADER_LENGTH = "Inference-Header-Content-Length"


class V2DecodeError(ValueError):
    """The body is not a valid V2 binary (or JSON) message."""


@dataclass
class Decoded:
    """A decoded message: its JSON header and its tensors by name."""

    header: dict[str, Any]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


def encode_parts(
    kind: str, tensors: dict[str, np.ndarray], header: dict[str, Any]
) -> tuple[list[memoryview], int]:
    """Encode ``tensors`` as binary ``inputs``/``outputs`` (``kind``) after ``header``, as
    buffers to send one after another: the JSON header, then each tensor's raw bytes.

    The tensor buffers are views of the (C-contiguous) arrays, not copies: a study of tens of
    megabytes goes from the array to the socket without being copied twice on the way.
    Returns the buffers and the JSON length (for the Inference-Header-Content-Length header).
    """
    entries = []
    blobs = []
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        blob = array.reshape(-1).view(np.uint8).data
        entries.append(
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": v2_datatype(array.dtype),
                "parameters": {"binary_data_size": blob.nbytes},
            }
        )
        blobs.append(blob)
    head = json.dumps({**header, kind: entries}).encode()
    return [memoryview(head), *blobs], len(head)


def encode_tensors(
    kind: str, tensors: dict[str, np.ndarray], header: dict[str, Any]
) -> tuple[bytes, int]:
    """Encode ``tensors`` as binary ``inputs``/``outputs`` (``kind``) after ``header``.

    Returns the body as one bytes object and the JSON length (for the
    Inference-Header-Content-Length header); :func:`encode_parts` avoids the copy.
    """
    parts, json_length = encode_parts(kind, tensors, header)
    return b"".join(parts), json_length


def _tensor(entry: dict[str, Any], raw: bytes | memoryview | None) -> np.ndarray:
    name = entry.get("name")
    datatype = entry.get("datatype")
    shape = entry.get("shape")
    if not isinstance(name, str) or not isinstance(shape, list) or datatype not in V2_DTYPES:
        raise V2DecodeError(f"tensor {name!r}: needs name, shape and a known datatype")
    if any(not isinstance(s, int) or s < 0 for s in shape):
        raise V2DecodeError(f"tensor {name!r}: invalid shape {shape}")
    dtype = V2_DTYPES[datatype]
    count = int(np.prod(shape, dtype=np.int64))
    if raw is None:
        data = entry.get("data")
        if data is None:
            raise V2DecodeError(f"tensor {name!r} has neither data nor binary_data_size")
        try:
            array = np.asarray(data, dtype=dtype).reshape(-1)
        except (TypeError, ValueError) as err:
            raise V2DecodeError(f"tensor {name!r}: data does not fit {datatype}") from err
    else:
        if len(raw) != count * dtype.itemsize:
            raise V2DecodeError(
                f"tensor {name!r}: {len(raw)} bytes do not hold {shape} {datatype} values"
            )
        array = np.frombuffer(raw, dtype=dtype)
    if array.size != count:
        raise V2DecodeError(f"tensor {name!r}: {array.size} values do not fit shape {shape}")
    return array.reshape(shape)


def decode_tensors(kind: str, body: bytes, json_length: int | None) -> Decoded:
    """Decode a V2 message whose tensors are under ``kind`` (``inputs`` or ``outputs``).

    ``json_length`` is the Inference-Header-Content-Length value, or None for pure JSON.
    Binary tensors become read-only views of ``body`` (no copy).
    """
    end = len(body) if json_length is None else json_length
    if end < 0 or end > len(body):
        raise V2DecodeError(f"{HEADER_LENGTH} {json_length} is outside the body")
    try:
        header = json.loads(body[:end])
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise V2DecodeError(f"the JSON part of the message is invalid: {err}") from err
    if not isinstance(header, dict) or not isinstance(header.get(kind), list):
        raise V2DecodeError(f"the message has no {kind!r} list")
    view = memoryview(body)
    offset = end
    decoded = Decoded(header)
    for entry in header[kind]:
        if not isinstance(entry, dict):
            raise V2DecodeError(f"each of {kind!r} must be an object")
        size = (entry.get("parameters") or {}).get("binary_data_size")
        raw = None
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(body):
                raise V2DecodeError(f"tensor {entry.get('name')!r}: bad binary_data_size")
            raw = view[offset : offset + size]
            offset += size
        decoded.tensors[str(entry.get("name"))] = _tensor(entry, raw)
    return decoded
