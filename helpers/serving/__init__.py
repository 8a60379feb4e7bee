"""Serving the classifier with NVIDIA Triton Inference Server (notebook 07).

One module per concern:

* :mod:`~helpers.serving.runtime` - where the server binary comes from (nvidia-pytriton's files, or NVIDIA's
  container) and the Python its Python-backend models run in (libpython and numpy-1 checks);
* :mod:`~helpers.serving.model` - the served model's logic (``TritonPythonModel`` classes);
* :mod:`~helpers.serving.repository` - ``config.pbtxt`` rendering and the model-repository writer;
* :mod:`~helpers.serving.server` - the server process: start, health, a clean stop;
* :mod:`~helpers.serving.client` - HTTP/gRPC clients and Triton's statistics;
* :mod:`~helpers.serving.load` - the project's load generator, which counts every request;
* :mod:`~helpers.serving.perf_analyzer` - NVIDIA's perf_analyzer, where it runs;
* :mod:`~helpers.serving.measure` - the concurrency sweep, goals, results JSON and plot.

The names notebook 07 uses are importable from here (loaded on first use). ``python -m helpers.serving --help``
writes a repository, starts and stops a server, and measures, without a notebook. Nothing here imports
``tritonclient`` or starts a process at import time.
"""

from __future__ import annotations

from ..lazy import lazy_attributes


#: name -> module (relative to this package) that defines it
_NAMES = {
    "RepositoryConfig": ".repository",
    "write_repository": ".repository",
    "ServerConfig": ".server",
    "TritonServer": ".server",
    "SentimentCore": ".model",
    "compare_served": ".measure",
    "test_sentences": ".measure",
    "SweepConfig": ".measure",
    "measure_serving": ".measure",
    "serving_tables": ".measure",
}

__all__ = sorted(_NAMES)


__getattr__ = lazy_attributes(__name__, _NAMES)
