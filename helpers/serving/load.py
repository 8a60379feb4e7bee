"""A closed-loop load generator that accounts for every request.

``run_load(spec, texts)`` starts ``spec.concurrency`` worker threads; each has its own client and sends one
request at a time, the next as soon as the previous one is answered (what a pool of synchronous callers
does). Every request is counted exactly once: **sent**, then either **answered** (with its latency) or
**failed** with a reason (``timeout``, ``server unavailable``, ``server error ...``). ``LoadResult.check()``
proves ``sent == answered + failed``; nothing is silently lost, even when the server is stopped in the middle
of a run. A run stops after ``spec.requests`` requests, after ``spec.duration_s`` seconds, or when the
``stop`` event is set, whichever comes first.

The workers run in this Python process, on the same two cores as the server here: at high concurrency the
client's own CPU use is part of what is measured (as with any load tool on the server's machine).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..bench.stats import LatencyStats
from ..errors import ConfigError, ServingError
from .client import failure_reason, infer, make_client, read_answer, text_input


@dataclass(frozen=True)
class LoadSpec:
    """One load run. ``requests``: total requests (0: no limit, then ``duration_s`` must be set)."""

    url: str
    protocol: str = "http"
    model: str = "sentiment"
    concurrency: int = 1
    requests: int = 200
    duration_s: float = 0.0
    sentences_per_request: int = 1
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.sentences_per_request < 1 or self.timeout_s <= 0:
            raise ConfigError(f"load: concurrency and sentences_per_request must be >= 1 and timeout_s > 0, got {self}.")
        if self.requests <= 0 and self.duration_s <= 0:
            raise ConfigError("load: give a number of requests or a duration, else the run never ends.")


@dataclass
class LoadResult:
    """Counts, latencies (ms, answered requests only) and wall time of one run."""

    spec: LoadSpec
    sent: int = 0
    answered: int = 0
    failed: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def failures(self) -> int:
        return sum(self.failed.values())

    def check(self) -> "LoadResult":
        """:class:`ServingError` unless every sent request was answered or failed with a reason."""
        if self.sent != self.answered + self.failures or len(self.latencies_ms) != self.answered:
            raise ServingError(f"load: {self.sent} sent but {self.answered} answered + {self.failures} failed "
                               f"({dict(self.failed)}); requests were lost.")
        return self

    @property
    def requests_per_s(self) -> float:
        return self.answered / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def sentences_per_s(self) -> float:
        return self.requests_per_s * self.spec.sentences_per_request

    def latency(self) -> LatencyStats | None:
        return LatencyStats.from_samples(self.latencies_ms) if self.latencies_ms else None

    def summary(self) -> dict[str, Any]:
        stats = self.latency()
        return {"protocol": self.spec.protocol, "model": self.spec.model, "concurrency": self.spec.concurrency,
                "sentences_per_request": self.spec.sentences_per_request, "sent": self.sent, "answered": self.answered,
                "failed": dict(self.failed), "wall_s": round(self.wall_s, 3),
                "requests_per_s": round(self.requests_per_s, 2), "sentences_per_s": round(self.sentences_per_s, 2),
                "p50_ms": round(stats.median_ms, 3) if stats else None, "p90_ms": round(stats.p90_ms, 3) if stats else None,
                "p99_ms": round(stats.p99_ms, 3) if stats else None, "mean_ms": round(stats.mean_ms, 3) if stats else None}


def run_load(spec: LoadSpec, texts: Sequence[str], *, stop: threading.Event | None = None,
             on_answer: Callable[[int], None] | None = None) -> LoadResult:
    """Send requests of ``spec.sentences_per_request`` sentences taken in turn from ``texts``; see the module docstring.

    ``on_answer`` is called with the number answered so far (e.g. to stop the server half-way in a test)."""
    if not texts:
        raise ConfigError("load: no sentences to send.")
    result = LoadResult(spec)
    lock = threading.Lock()
    counter = itertools.count()
    stop = stop or threading.Event()
    started = time.perf_counter()
    deadline = started + spec.duration_s if spec.duration_s > 0 else None
    k = spec.sentences_per_request

    def take() -> int | None:
        with lock:
            if stop.is_set() or (deadline is not None and time.perf_counter() >= deadline):
                return None
            i = next(counter)
            if spec.requests > 0 and i >= spec.requests:
                return None
            result.sent += 1
            return i

    def worker() -> None:
        client = None
        try:
            client = make_client(spec.protocol, spec.url, spec.timeout_s)
            while (i := take()) is not None:
                batch = [texts[(i * k + j) % len(texts)] for j in range(k)]
                t0 = time.perf_counter()
                try:
                    read_answer(infer(client, spec.protocol, spec.model, [text_input(spec.protocol, batch)],
                                      spec.timeout_s), k)
                except Exception as exc:  # every failure is counted with its reason, never dropped
                    reason = failure_reason(exc)
                    with lock:
                        result.failed[reason] += 1
                    continue
                elapsed = (time.perf_counter() - t0) * 1e3
                with lock:
                    result.answered += 1
                    result.latencies_ms.append(elapsed)
                    done = result.answered
                if on_answer is not None:
                    on_answer(done)
        finally:
            if client is not None:
                try:
                    client.close()
                except Exception:  # closing a client whose server is gone may raise; nothing is lost by it
                    pass

    threads = [threading.Thread(target=worker, name=f"load-{n}", daemon=True) for n in range(spec.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.wall_s = time.perf_counter() - started
    return result.check()
