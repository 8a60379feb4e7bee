"""TensorRT backend: a saved engine behind the same :class:`~helpers.backends.base.Backend` interface.

``TensorRTBackend(engine_path)`` checks the engine's metadata sidecar against the running TensorRT, GPU
and (if given) the source ONNX, deserializes the engine, and runs it with
:class:`helpers.trt.runtime.EngineRunner`: one execution context, buffers allocated once at the largest
profile shape, ``set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3`` per call.

``max_batch`` and ``max_len`` come from the engine's own optimization profiles, so the
:class:`~helpers.backends.Classifier` never sends a batch the engine cannot take; a direct call outside
the profiles stops with :class:`~helpers.errors.InputError` naming the allowed range.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..config import INPUT_NAMES, OUTPUT_NAME
from ..errors import BackendError
from ..trt import compat
from ..trt.buffers import DeviceBuffers
from ..trt.metadata import EngineMetadata, check_engine, running_environment
from ..trt.runtime import EngineRunner, load_engine
from .base import Backend


#: Parity of a TensorRT engine against ONNX Runtime fp32 on the same ONNX, per engine precision:
#: (largest |logit difference|, least share of equal predicted labels). FP32 engines use TF32 tensor-core
#: math by default on Ampere and newer (10-bit mantissa), hence 5e-3 rather than fp32's 1e-4; FP16 engines
#: keep LayerNorm and Softmax in FP32 (02's FP16 graph) and stay within 5e-2 on logits of order 1-10.
PARITY_TOLERANCE: dict[str, tuple[float, float]] = {"fp32": (5e-3, 0.999), "fp16": (5e-2, 0.995)}


class TensorRTBackend(Backend):
    """Runs a TensorRT engine built by notebook 04 (TensorRT 10.x or 11.x).

    ``buffers`` picks the memory implementation: ``"cuda-python"`` (default, NVIDIA's current samples),
    ``"pycuda"`` (the original article's), ``"torch"``, or an open :class:`~helpers.trt.buffers.DeviceBuffers`
    to allocate into. ``onnx_path`` (optional) makes loading stop when
    the ONNX changed since the build; ``check=False`` skips the metadata check (not recommended).
    """

    name = "tensorrt"
    device = "cuda"

    def __init__(self, engine_path: str | os.PathLike[str], *, onnx_path: str | os.PathLike[str] | None = None,
                 buffers: str | DeviceBuffers = "cuda-python", gpu: int = 0, check: bool = True,
                 trt: Any = None) -> None:
        trt = trt if trt is not None else compat.import_tensorrt()
        self.engine_path = Path(engine_path)
        self.metadata: EngineMetadata | None = None
        if check:
            self.metadata = check_engine(self.engine_path, running_environment(trt, gpu), onnx_path)
            self.precision = self.metadata.precision
        self.runner = EngineRunner(load_engine(self.engine_path, trt), buffers=buffers, device=gpu)
        missing = [n for n in INPUT_NAMES if n not in {s.name for s in self.runner.inputs}]
        if missing or OUTPUT_NAME not in {s.name for s in self.runner.outputs}:
            self.runner.close()
            raise BackendError(f"engine {self.engine_path.name} lacks the inputs {missing} or the output {OUTPUT_NAME!r}; "
                               "rebuild it from 02's ONNX with 04_build_engine.")
        super().__init__(max_batch=self.runner.plan.max_batch, max_len=self.runner.plan.max_len)
        self.device = f"cuda:{gpu}"
        self.buffers_kind = buffers if isinstance(buffers, str) else buffers.kind

    def _run(self, input_ids: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
        out = self.runner.infer({INPUT_NAMES[0]: input_ids, INPUT_NAMES[1]: segment_ids})[OUTPUT_NAME]
        return np.ascontiguousarray(out, dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({"engine": str(self.engine_path), "buffers": self.buffers_kind,
                     "profiles": self.runner.plan.table(),
                     "tensorrt": self.metadata.tensorrt_version if self.metadata else "unchecked"})
        return info

    def close(self) -> None:
        runner = getattr(self, "runner", None)
        if runner is not None:
            runner.close()
            self.runner = None
