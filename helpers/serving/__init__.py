"""Serving the classifier with NVIDIA Triton Inference Server (notebook 07).

One module per concern:

* :mod:`~helpers.serving.runtime` - where the server binary comes from (nvidia-pytriton's files, or NVIDIA's
  container) and the Python its Python-backend models run in (libpython and numpy-1 checks);
* :mod:`~helpers.serving.model` - the served model's logic (``TritonPythonModel`` classes) and the backend choice;
* :mod:`~helpers.serving.repository` - ``config.pbtxt`` rendering and the model-repository writer;
* :mod:`~helpers.serving.server` - the server process: start, health, stop;
* :mod:`~helpers.serving.client` - HTTP/gRPC clients and Triton's statistics;
* :mod:`~helpers.serving.load` - a load generator that counts every request;
* :mod:`~helpers.serving.measure` - the concurrency sweep, goals, results JSON and plot.

``python -m helpers.serving --help`` writes a repository, starts and stops a server, and measures, without a notebook.
Nothing here imports ``tritonclient`` or starts a process at import time.
"""
