"""Latency statistics: the numbers a benchmark reports, computed once from raw samples.

Medians and high percentiles rather than means: a latency distribution has a long right tail (a garbage
collection, a context switch, a clock change), and the mean mixes that tail into the typical case. The
percentiles use numpy's default linear interpolation; with ``n`` samples, p99 is only meaningful when ``n``
is well above 100, which is why every record carries ``n``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class LatencyStats:
    """Summary of latency samples, all in milliseconds."""

    n: int
    median_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    std_ms: float

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> "LatencyStats":
        """Summarise ``samples_ms``; raise :class:`ConfigError` for an empty or non-finite list."""
        arr = np.asarray(samples_ms, dtype=np.float64)
        if arr.size == 0:
            raise ConfigError("no latency samples to summarise; give at least one timed iteration (iters >= 1).")
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ConfigError(f"latency samples must be finite and non-negative; got min {arr.min()} max {arr.max()}.")
        p50, p90, p99 = np.percentile(arr, [50, 90, 99])
        return cls(
            n=int(arr.size),
            median_ms=float(p50),
            p90_ms=float(p90),
            p99_ms=float(p99),
            mean_ms=float(arr.mean()),
            min_ms=float(arr.min()),
            max_ms=float(arr.max()),
            std_ms=float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        )

    def throughput(self, items_per_call: int) -> float:
        """Items per second at the median latency (``items_per_call`` rows per timed call)."""
        return float(items_per_call) * 1000.0 / self.median_ms if self.median_ms > 0 else float("inf")


def relative_spread(values: Sequence[float]) -> float:
    """(max - min) / median of per-round medians: how much the machine drifted during a run."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size < 2:
        return 0.0
    med = float(np.median(arr))
    return float((arr.max() - arr.min()) / med) if med > 0 else 0.0
