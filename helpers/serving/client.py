"""Clients for the served classifier (``tritonclient`` over HTTP or gRPC) and the server's own statistics.

:class:`TritonClassifier` is the served counterpart of :class:`~helpers.backends.Classifier`: sentences in,
labels and probabilities out. :func:`model_statistics` and :func:`stats_delta` read Triton's statistics
endpoint (``/v2/models/<name>/stats``) before and after a load run: how long requests waited in the queue
versus how long the model computed, and which batch sizes the dynamic batcher really formed.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import InputError, ServingError
from .model import LABEL, PROBABILITIES, TEXT

PROTOCOLS: tuple[str, ...] = ("http", "grpc")


def _module(protocol: str) -> Any:
    if protocol == "http":
        import tritonclient.http as module
    elif protocol == "grpc":
        import tritonclient.grpc as module
    else:
        raise InputError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
    return module


def make_client(protocol: str, url: str, timeout_s: float | None = None) -> Any:
    """A ``tritonclient`` client for ``url`` (``host:port`` of that protocol). One client per thread: tritonclient's
    clients are not thread-safe. ``timeout_s`` bounds each HTTP call (gRPC takes it per call, see :func:`infer`)."""
    module = _module(protocol)
    if protocol == "http":
        kwargs = {} if timeout_s is None else {"connection_timeout": timeout_s, "network_timeout": timeout_s}
        return module.InferenceServerClient(url, **kwargs)
    return module.InferenceServerClient(url)


def text_input(protocol: str, texts: Sequence[str | bytes] | np.ndarray, name: str = TEXT, datatype: str = "BYTES") -> Any:
    """An ``InferInput`` of shape ``[n, 1]`` holding ``texts`` (str is UTF-8 encoded; bytes are sent as given)."""
    data = np.asarray(texts, dtype=object) if not isinstance(texts, np.ndarray) else texts
    if data.dtype == object:
        data = np.array([t.encode("utf-8") if isinstance(t, str) else t for t in data.reshape(-1)],
                        dtype=object).reshape(data.shape if data.ndim == 2 else (-1, 1))
    tensor = _module(protocol).InferInput(name, list(data.shape), datatype)
    tensor.set_data_from_numpy(data)
    return tensor


def infer(client: Any, protocol: str, model: str, inputs: list[Any], timeout_s: float | None = None) -> Any:
    """One inference call; gRPC gets ``timeout_s`` as its deadline (HTTP's is set on the client)."""
    if protocol == "grpc" and timeout_s is not None:
        return client.infer(model, inputs, client_timeout=timeout_s)
    return client.infer(model, inputs)


@dataclass(frozen=True)
class ServedPrediction:
    """What the served model answered for a list of sentences."""

    labels: list[str]
    probabilities: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def read_answer(result: Any, expected: int) -> ServedPrediction:
    """Labels and probabilities from an inference result; :class:`ServingError` if the answer's shape is wrong."""
    labels = result.as_numpy(LABEL)
    probabilities = result.as_numpy(PROBABILITIES)
    if labels is None or probabilities is None or labels.shape[0] != expected or probabilities.shape[0] != expected:
        raise ServingError(f"served model answered {None if labels is None else labels.shape} labels for {expected} "
                           "sentences; expected one label and one probability row per sentence.")
    names = [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in labels.reshape(-1)]
    return ServedPrediction(names, np.asarray(probabilities, dtype=np.float32))


class TritonClassifier:
    """Sentences in, labels and probabilities out, from a served model over HTTP or gRPC."""

    def __init__(self, url: str, protocol: str = "http", model: str = "sentiment", timeout_s: float | None = None) -> None:
        self.protocol, self.url, self.model, self.timeout_s = protocol, url, model, timeout_s
        self.client = make_client(protocol, url, timeout_s)

    def predict(self, texts: Sequence[str | bytes]) -> ServedPrediction:
        result = infer(self.client, self.protocol, self.model, [text_input(self.protocol, texts)], self.timeout_s)
        return read_answer(result, len(texts))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "TritonClassifier":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def failure_reason(exc: BaseException) -> str:
    """A short, stable category for a failed request (the load tool counts requests per reason)."""
    from tritonclient.utils import InferenceServerException

    text = str(exc)
    if isinstance(exc, InferenceServerException):
        status = str(exc.status() or "")
        if "DEADLINE_EXCEEDED" in status or "Deadline Exceeded" in text:
            return "timeout"
        if "UNAVAILABLE" in status or "failed to connect" in text.lower() or "connection refused" in text.lower():
            return "server unavailable"
        if "CANCELLED" in status:
            return "cancelled"
        message = exc.message() if hasattr(exc, "message") else text
        return f"server error {status}: {str(message).splitlines()[0][:120]}"
    if isinstance(exc, (TimeoutError, socket.timeout)) or type(exc).__name__ == "Timeout":
        return "timeout"
    if type(exc).__name__ == "HTTPConnectionClosed":  # geventhttpclient: the server closed the connection
        return "connection closed by the server"
    if isinstance(exc, (ConnectionError, OSError)):
        return "server unavailable"
    return f"client error {type(exc).__name__}: {text.splitlines()[0][:120] if text else ''}"


# ------------------------------------------------------------------------------------------- statistics
_STAGES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


def model_statistics(client: Any, protocol: str, model: str) -> dict[str, Any]:
    """Triton's cumulative statistics of ``model`` as plain numbers (counts and nanoseconds)."""
    raw = client.get_inference_statistics(model, as_json=True) if protocol == "grpc" else client.get_inference_statistics(model)
    stats = [s for s in raw.get("model_stats", []) if s.get("name") == model]
    if not stats:
        raise ServingError(f"triton: no statistics for model {model!r} (is it loaded?).")
    s = stats[0]
    inference = s.get("inference_stats", {})
    out: dict[str, Any] = {"inference_count": int(s.get("inference_count", 0)),
                           "execution_count": int(s.get("execution_count", 0))}
    for stage in _STAGES:
        out[stage] = (int(inference.get(stage, {}).get("count", 0)), int(inference.get(stage, {}).get("ns", 0)))
    out["batches"] = {int(b["batch_size"]): int(b.get("compute_infer", {}).get("count", 0)) for b in s.get("batch_stats", [])}
    return out


@dataclass(frozen=True)
class ServerStats:
    """What the server did during one run (the difference of two :func:`model_statistics` snapshots)."""

    requests: int
    failed: int
    executions: int
    inferences: int
    queue_ms: float
    compute_ms: float
    batches: dict[int, int] = field(default_factory=dict)

    @property
    def mean_batch(self) -> float:
        """Sentences per model execution: 1.0 means no batching happened."""
        return self.inferences / self.executions if self.executions else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "failed": self.failed, "executions": self.executions,
                "inferences": self.inferences, "mean_batch": round(self.mean_batch, 3),
                "queue_ms_per_request": round(self.queue_ms, 4), "compute_ms_per_request": round(self.compute_ms, 4),
                "batch_sizes": {str(k): v for k, v in sorted(self.batches.items())}}


def stats_delta(before: dict[str, Any], after: dict[str, Any]) -> ServerStats:
    """Per-request queue and compute time (ms, averaged over successful requests) and the batch sizes formed."""
    def diff(stage: str) -> tuple[int, int]:
        return after[stage][0] - before[stage][0], after[stage][1] - before[stage][1]

    ok, _ = diff("success")
    fail, _ = diff("fail")
    queue_n, queue_ns = diff("queue")
    compute_ns = sum(diff(s)[1] for s in ("compute_input", "compute_infer", "compute_output"))
    compute_n = diff("compute_infer")[0]
    batches = {k: v - before["batches"].get(k, 0) for k, v in after["batches"].items()}
    return ServerStats(ok, fail, after["execution_count"] - before["execution_count"],
                       after["inference_count"] - before["inference_count"],
                       queue_ns / queue_n / 1e6 if queue_n else 0.0, compute_ns / compute_n / 1e6 if compute_n else 0.0,
                       {k: v for k, v in batches.items() if v > 0})


def statistics_after(client: Any, protocol: str, model: str, before: dict[str, Any], requests: int,
                     timeout_s: float = 10.0) -> dict[str, Any]:
    """A statistics snapshot that counts the ``requests`` answered since ``before``.

    Triton records a request in its statistics after the response has gone out, so a snapshot taken the moment
    the last answer arrives can miss it. Poll until the success and failure counts have grown by ``requests``;
    after ``timeout_s`` return what the server reports (a shortfall then shows in the run's record)."""
    import time

    def done(now: dict[str, Any]) -> int:
        return now["success"][0] + now["fail"][0] - before["success"][0] - before["fail"][0]

    deadline = time.monotonic() + timeout_s
    now = model_statistics(client, protocol, model)
    while done(now) < requests and time.monotonic() < deadline:
        time.sleep(0.02)
        now = model_statistics(client, protocol, model)
    return now


def wait_idle(client: Any, protocol: str, model: str, settle_s: float = 0.5, timeout_s: float = 120.0) -> dict[str, Any]:
    """Wait until ``model`` has finished what it was given, and return a statistics snapshot taken then.

    Requests abandoned by a client (after a timeout) still run to the end on the server. A one-sentence probe
    queues behind them (the dynamic batcher serves in arrival order), and its answer means the work before it is
    done on a single instance; the request counts must then stay unchanged for ``settle_s``."""
    import time

    deadline = time.monotonic() + timeout_s
    infer(client, protocol, model, [text_input(protocol, ["ok"])], timeout_s)
    last = model_statistics(client, protocol, model)
    while time.monotonic() < deadline:
        time.sleep(settle_s)
        now = model_statistics(client, protocol, model)
        if now["success"][0] + now["fail"][0] == last["success"][0] + last["fail"][0]:
            return now
        last = now
    raise ServingError(f"triton: model {model!r} kept working for {timeout_s:.0f} s; the server is still busy.")
