"""A quick, honest side-by-side latency measurement (notebook 02); the full harness lives in ``helpers.bench``.

Callables are timed in interleaved rounds (one call of each per round, in turn) so that a slow moment of
the machine hits every candidate alike; the first ``warmup`` rounds are discarded; medians are reported.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from ..errors import ConfigError


@dataclass(frozen=True)
class QuickLatency:
    """Latency samples of one candidate, in milliseconds."""

    name: str
    samples_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def min_ms(self) -> float:
        return min(self.samples_ms)

    @property
    def p90_ms(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]

    def to_dict(self) -> dict[str, float | int | str]:
        return {"name": self.name, "median_ms": self.median_ms, "p90_ms": self.p90_ms, "min_ms": self.min_ms,
                "rounds": len(self.samples_ms)}


def quick_latency(candidates: Mapping[str, Callable[[], object]], *, rounds: int = 20,
                  warmup: int = 3) -> dict[str, QuickLatency]:
    """Time each zero-argument callable ``rounds`` times, interleaved, after ``warmup`` untimed rounds."""
    if rounds < 1 or warmup < 0:
        raise ConfigError(f"quick_latency: rounds must be >= 1 and warmup >= 0, got {rounds} and {warmup}.")
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for i in range(warmup + rounds):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            elapsed = (time.perf_counter() - start) * 1e3
            if i >= warmup:
                samples[name].append(elapsed)
    return {name: QuickLatency(name, tuple(v)) for name, v in samples.items()}
