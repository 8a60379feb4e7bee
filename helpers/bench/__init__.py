"""Benchmarking: side-by-side timing of inference backends, results as data, tables and plots.

* :mod:`.lineup` opens the backends of one model that run here (:func:`build_lineup`), with the reasons for
  the others, and times them (:meth:`Lineup.time`, :meth:`Lineup.classify`);
* :mod:`.harness` times backends in one process in interleaved rounds (:func:`time_side_by_side`);
* :mod:`.texts` runs texts through each backend's Classifier beside the same batches alone;
* :mod:`.stats` turns samples into medians and percentiles;
* :mod:`.system` records hardware, versions and CPU threads, and says when the CPUs were busy;
* :mod:`.results` holds a run's data and writes it as JSON, atomically;
* :mod:`.report` (tables), :mod:`.plots` (figures) and :mod:`.goals` show it.
"""

from .harness import (
    Measurement,
    Shape,
    Skip,
    TimingConfig,
    random_feed,
    time_shape,
    time_side_by_side,
)
from .lineup import Lineup, build_lineup
from .results import AccuracyRecord, BenchResult
from .stats import LatencyStats
from .system import ThreadSettings, capture_environment, fix_cpu_threads

__all__ = [
    "AccuracyRecord", "BenchResult", "LatencyStats", "Lineup", "Measurement", "Shape", "Skip",
    "ThreadSettings", "TimingConfig", "build_lineup", "capture_environment", "fix_cpu_threads", "random_feed",
    "time_shape", "time_side_by_side",
]
