"""Inference backends behind one interface, and the :class:`Classifier` that turns texts into labels.

Backends are named and opened in one place, :mod:`.registry`: :func:`model_files` lists the model files
present, :func:`best_backend` picks the best backend for a device, :func:`open_backend` opens one by name.

``TensorRTBackend`` is imported lazily (on first attribute access) so that ``import helpers.backends``
never imports TensorRT or CUDA bindings on a machine that lacks them.
"""

from __future__ import annotations

from ..lazy import lazy_attributes
from .base import Backend
from .classifier import Classifier, Prediction, softmax
from .onnxruntime import OrtBackend, OrtConfig
from .registry import BACKENDS, BackendChoice, best_backend, model_files, open_backend
from .torch_backend import TorchBackend

# TensorRTBackend is left out of __all__ so that a star import never touches TensorRT.
__all__ = ["BACKENDS", "Backend", "BackendChoice", "Classifier", "OrtBackend", "OrtConfig", "Prediction", "TorchBackend",
           "best_backend", "model_files", "open_backend", "softmax"]

_LAZY = {"TensorRTBackend": ".tensorrt"}
__getattr__ = lazy_attributes(__name__, _LAZY)
