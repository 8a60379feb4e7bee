"""Benchmarking: side-by-side timing of inference backends, results as data, tables and plots.

* :mod:`.harness` times backends in one process in interleaved rounds (:func:`time_side_by_side`);
* :mod:`.stats` turns samples into medians and percentiles;
* :mod:`.system` records hardware, versions and CPU threads;
* :mod:`.results` holds a run's data and writes it as JSON, atomically;
* :mod:`.report` and :mod:`.plots` show it.
"""

from .harness import (
    Measurement,
    ReportsDeviceCompute,
    Shape,
    Skip,
    TimingConfig,
    random_feed,
    time_shape,
    time_side_by_side,
)
from .results import AccuracyRecord, BenchResult, load_result
from .stats import LatencyStats
from .system import ThreadSettings, capture_environment, fix_cpu_threads

__all__ = [
    "AccuracyRecord", "BenchResult", "LatencyStats", "Measurement", "ReportsDeviceCompute", "Shape", "Skip",
    "ThreadSettings", "TimingConfig", "capture_environment", "fix_cpu_threads", "load_result", "random_feed",
    "time_shape", "time_side_by_side",
]
