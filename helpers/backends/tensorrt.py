"""TensorRT backend: a saved engine behind the same :class:`~helpers.backends.base.Backend` interface.

``TensorRTBackend(engine_path)`` checks the engine's metadata sidecar against the running TensorRT, GPU
and (if given) the source ONNX, then opens it with :func:`helpers.trt.runtime.open_engine`: buffers first
(they make the GPU current), then the engine and its execution context on that GPU, and per call
``set_optimization_profile_async`` / ``set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3``.

``max_batch`` and ``max_len`` come from the engine's own optimization profiles, so the
:class:`~helpers.backends.Classifier` never sends a batch the engine cannot take; a direct call outside
them stops with :class:`~helpers.errors.InputError` naming the allowed range. How close an engine must stay
to ONNX Runtime is :data:`helpers.parity.TENSORRT_TOLERANCE`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..config import INPUT_NAMES, OUTPUT_NAME
from ..errors import BackendError, TensorRTUnavailableError
from ..trt import compat
from ..trt.buffers import DeviceBuffers
from ..trt.metadata import EngineMetadata, check_engine, running_environment
from ..trt.rtx import RtxRuntimeSettings
from ..trt.runtime import open_engine
from .base import Backend


class TensorRTBackend(Backend):
    """Runs a TensorRT engine built by notebook 04 (TensorRT 10.x / 11.x, or TensorRT-RTX).

    ``buffers`` picks the memory implementation: ``"cuda-python"`` (default, NVIDIA's current samples),
    ``"pycuda"`` (the original article's), ``"torch"``, or open :class:`~helpers.trt.buffers.DeviceBuffers`
    (the backend then owns them). ``gpu`` is a CUDA device index (``CUDA_VISIBLE_DEVICES`` applies).
    ``onnx_path`` makes loading stop when the ONNX changed since the build; ``check=False`` skips the
    metadata check (not recommended). ``rtx`` holds TensorRT-RTX's runtime settings (runtime cache, CUDA
    graphs, kernel specialization; :mod:`helpers.trt.rtx`), applied only when ``trt`` is TensorRT-RTX.
    """

    name = "tensorrt"
    device = "cuda"

    def __init__(self, engine_path: str | os.PathLike[str], *, onnx_path: str | os.PathLike[str] | None = None,
                 buffers: str | DeviceBuffers = "cuda-python", gpu: int = 0, check: bool = True,
                 trt: Any = None, rtx: RtxRuntimeSettings = RtxRuntimeSettings()) -> None:
        trt = trt if trt is not None else compat.import_tensorrt()
        self.engine_path = Path(engine_path)
        self.metadata: EngineMetadata | None = None
        if check:
            running = running_environment(trt, gpu)
            refusal = compat.runtime_refusal(running.flavour, running.compute_capability)
            if refusal is not None:  # no engine of this flavour can run here: unavailable, not a broken engine
                raise TensorRTUnavailableError(f"{self.name}: {running.gpu_name}: {refusal}")
            self.metadata = check_engine(self.engine_path, running, onnx_path)
            self.precision = self.metadata.precision
        self.runner = open_engine(self.engine_path, trt=trt, buffers=buffers, device=gpu, rtx=rtx)
        missing = [n for n in INPUT_NAMES if n not in {s.name for s in self.runner.inputs}]
        if missing or OUTPUT_NAME not in {s.name for s in self.runner.outputs}:
            self.runner.close()
            raise BackendError(f"engine {self.engine_path.name} lacks the inputs {missing} or the output {OUTPUT_NAME!r}; "
                               "rebuild it from 02's ONNX with 04_build_engine.")
        super().__init__(max_batch=self.runner.profile_set.max_batch, max_len=self.runner.profile_set.max_len)
        self.device = f"cuda:{gpu}"
        self.buffers_kind = self.runner.buffers.kind

    def _run(self, input_ids: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
        out = self.runner.infer({INPUT_NAMES[0]: input_ids, INPUT_NAMES[1]: segment_ids})[OUTPUT_NAME]
        return np.ascontiguousarray(out, dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({"engine": str(self.engine_path), "buffers": self.buffers_kind,
                     "profiles": self.runner.profile_set.table(), "rtx_runtime": self.runner.describe()["rtx_runtime"],
                     "tensorrt": self.metadata.tensorrt_version if self.metadata else "unchecked"})
        return info

    def close(self) -> None:
        runner = getattr(self, "runner", None)
        if runner is not None:
            runner.close()
            self.runner = None
