"""A small V2 (Open Inference Protocol) REST client: binary tensors, retries, clear errors.

Requests carry every tensor in the binary extension and name their outputs with
``binary_data: true``, so neither side ever turns a volume into JSON numbers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import urllib3

from radpipe.serving.v2_codec import HEADER_LENGTH, V2DecodeError, decode_tensors, encode_parts

log = logging.getLogger(__name__)


class V2Error(Exception):
    """The server answered, but with an error (4xx, or a 5xx other than 503)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class V2Unavailable(V2Error):
    """The server could not be reached or stayed unavailable (503) through every retry."""


@dataclass(frozen=True)
class V2Result:
    """An inference answer: outputs by name plus the model name and version that made them."""

    outputs: dict[str, np.ndarray]
    model_name: str
    model_version: str


class V2Client:
    """Talks V2 REST to one server (``base_url`` like ``http://host:8080``)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 120.0,
        attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._pool = urllib3.PoolManager(retries=False, maxsize=4)

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | list[memoryview] | None = None,
        headers: dict[str, str] | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """One call with retries on connection errors and 503; V2Unavailable after the last."""
        url = f"{self.base_url}{path}"
        delay = self.backoff
        problem = ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._pool.request(
                    method,
                    url,
                    body=body,
                    headers=headers,
                    timeout=urllib3.Timeout(connect=min(10.0, self.timeout), read=self.timeout),
                    preload_content=True,
                )
            except urllib3.exceptions.ReadTimeoutError as err:
                # The server took the request; resending would queue a second copy.
                raise V2Unavailable(
                    f"model server at {url} did not answer within {self.timeout:.0f} s"
                ) from err
            except urllib3.exceptions.HTTPError as err:
                problem = f"cannot connect to the model server at {url}: {err}"
            else:
                if response.status != 503:
                    return response
                problem = f"model server at {url} is unavailable (503): {_message(response)}"
            if attempt < self.attempts:
                log.warning("%s; retry %d/%d in %.1f s", problem, attempt, self.attempts, delay)
                self._sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        raise V2Unavailable(f"{problem} (after {self.attempts} attempts)")

    def _json(self, path: str) -> Any:
        response = self._request("GET", path)
        if response.status != 200:
            raise V2Error(f"GET {path}: {response.status} {_message(response)}", response.status)
        return json.loads(response.data)

    def ready(self) -> bool:
        """Whether the server says it is ready (one try, no retries)."""
        try:
            response = self._pool.request(
                "GET", f"{self.base_url}/v2/health/ready", timeout=2.0, retries=False
            )
        except urllib3.exceptions.HTTPError:
            return False
        return response.status == 200

    def metadata(self, model: str) -> dict[str, Any]:
        """The model's V2 metadata (name, versions, inputs, outputs)."""
        result: dict[str, Any] = self._json(f"/v2/models/{model}")
        return result

    def infer(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> V2Result:
        """Send ``inputs`` as binary tensors; return the named ``outputs`` as numpy arrays."""
        header = {"outputs": [{"name": n, "parameters": {"binary_data": True}} for n in outputs]}
        # The body goes out as buffers (JSON header, then views of the arrays): no copy of a
        # study-sized tensor on this side. A list, so that a retry can send it again.
        parts, json_length = encode_parts("inputs", inputs, header)
        response = self._request(
            "POST",
            f"/v2/models/{model}/infer",
            body=parts,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(sum(part.nbytes for part in parts)),
                HEADER_LENGTH: str(json_length),
            },
        )
        if response.status != 200:
            raise V2Error(
                f"model {model} at {self.base_url} refused the request: "
                f"{response.status} {_message(response)}",
                response.status,
            )
        length = response.headers.get(HEADER_LENGTH)
        try:
            decoded = decode_tensors(
                "outputs", response.data, int(length) if length is not None else None
            )
        except (V2DecodeError, ValueError) as err:
            raise V2Error(f"model {model} at {self.base_url} sent a bad response: {err}") from err
        missing = [n for n in outputs if n not in decoded.tensors]
        if missing:
            raise V2Error(f"model {model} did not return outputs {missing}")
        return V2Result(
            outputs=decoded.tensors,
            model_name=str(decoded.header.get("model_name") or model),
            model_version=str(decoded.header.get("model_version") or ""),
        )


def _message(response: urllib3.BaseHTTPResponse) -> str:
    try:
        return str(json.loads(response.data).get("error", response.data[:200]))
    except (ValueError, AttributeError):
        return response.data[:200].decode(errors="replace")
