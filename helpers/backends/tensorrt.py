"""TensorRT backend: a saved engine behind the same :class:`~helpers.backends.base.Backend` interface.

``TensorRTBackend(engine_path)`` runs the calls 05_infer writes out, with every status checked:

1. the engine's metadata sidecar is checked against the running TensorRT, GPU and (if given) the source ONNX
   (:func:`~helpers.trt.metadata.check_engine`), before anything is opened;
2. the buffers are opened, which makes their GPU current, *then* ``trt.Runtime`` deserializes the engine and
   ``create_execution_context`` makes its context, both on that GPU (with TensorRT-RTX, through its runtime
   settings: a runtime cache beside the engine, :mod:`helpers.trt.rtx`); one pinned host and one device buffer
   per tensor are allocated once, at the profiles' maximum (:meth:`~helpers.trt.buffers.DeviceBuffers.allocate_for`);
3. per call: the tightest profile for the batch (``set_optimization_profile_async`` only when it changes: a
   switch clears the input shapes, and ``set_input_shape`` refuses a shape outside the *active* profile),
   ``set_input_shape`` and the copy to the device for each input, ``set_tensor_address`` for every tensor,
   ``execute_async_v3`` on the buffers' stream, the logits copied back at the shape the context reports, and
   the stream synchronised.

A ``False`` from TensorRT becomes a :class:`~helpers.errors.BackendError` naming the call and TensorRT's own
log. ``max_batch`` and ``max_len`` come from the engine's profiles, so the :class:`~helpers.backends.Classifier`
never sends a batch the engine cannot take. The precision is the sidecar's. How close an engine must stay to
ONNX Runtime is :data:`helpers.parity.TENSORRT_TOLERANCE`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..config import INPUT_NAMES, OUTPUT_NAME
from ..errors import BackendError, EngineMismatchError, TensorRTUnavailableError
from ..trt import compat
from ..trt.buffers import DeviceBuffers, make_buffers
from ..trt.metadata import EngineMetadata, check_engine, running_target
from ..trt.profiles import profiles_from_engine
from ..trt.rtx import RtxRuntime, execution_context, runtime_cache_path
from .base import Backend


class TensorRTBackend(Backend):
    """Runs a TensorRT engine built by notebook 04 (TensorRT 10.x / 11.x, or TensorRT-RTX).

    ``onnx_path`` makes loading stop when the ONNX changed since the build. ``buffers`` picks the memory
    implementation: ``"cuda-python"`` (default, NVIDIA's current samples), ``"pycuda"`` (the original
    article's), ``"torch"``, or open :class:`~helpers.trt.buffers.DeviceBuffers` (the backend then owns them).
    ``gpu`` is a CUDA device index (``CUDA_VISIBLE_DEVICES`` applies). ``trt`` is the TensorRT module (default:
    :func:`~helpers.trt.compat.import_tensorrt`). ``kernel_specialization`` is TensorRT-RTX's (``"lazy"``,
    ``"eager"`` or ``"none"``; :mod:`helpers.trt.rtx`). Not thread-safe: one backend per thread.
    """

    name = "tensorrt"
    device = "cuda"

    def __init__(self, engine_path: str | os.PathLike[str], *, onnx_path: str | os.PathLike[str] | None = None,
                 buffers: str | DeviceBuffers = "cuda-python", gpu: int = 0, trt: Any = None,
                 kernel_specialization: str = "lazy") -> None:
        self.engine_path = Path(engine_path)
        try:
            self.trt = trt if trt is not None else compat.import_tensorrt()
            running = running_target(self.trt, gpu)
            refusal = compat.runtime_refusal(running.flavour, running.compute_capability)
            if refusal is not None:  # no engine of this flavour can run here: unavailable, not a broken engine
                raise TensorRTUnavailableError(f"{self.name}: {running.gpu_name}: {refusal}")
            self.metadata: EngineMetadata = check_engine(self.engine_path, onnx_path, target=running)
        except BaseException:
            if isinstance(buffers, DeviceBuffers):  # handed over: the backend owns them from the start
                buffers.close()
            raise
        self.precision = self.metadata.precision
        self.logger = compat.capturing_logger(self.trt)
        self.buffers = buffers if isinstance(buffers, DeviceBuffers) else make_buffers(buffers, gpu)
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self.rtx: RtxRuntime | None = None
        try:
            self._open(kernel_specialization)
        except BaseException:
            self.close()
            raise
        super().__init__(max_batch=self.profile_set.max_batch, max_len=self.profile_set.max_len)
        self.device = f"cuda:{gpu}"

    def _open(self, kernel_specialization: str) -> None:
        """Deserialize the engine on the buffers' (current) GPU, create its context, allocate the buffers."""
        trt = self.trt
        self._runtime = trt.Runtime(self.logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self._engine is None:
            raise EngineMismatchError(
                f"{compat.features_of(trt).label} could not deserialize {self.engine_path.name}: "
                + (" | ".join(self.logger.errors()) or "no message") + ". Rebuild it with 04_build_engine here.")
        self._context, self.rtx = execution_context(self._engine, trt, cache_path=runtime_cache_path(self.engine_path),
                                                    kernel_specialization=kernel_specialization)
        if self._context is None:
            raise BackendError("TensorRT could not create an execution context (out of GPU memory?): "
                               + (" | ".join(self.logger.errors()) or "no message"))
        self.buffers.allocate_for(self._engine, trt)
        names = set(self.buffers.sizes)
        missing = [n for n in (*INPUT_NAMES, OUTPUT_NAME) if n not in names]
        if missing or len(names) != len(INPUT_NAMES) + 1:
            raise BackendError(f"engine {self.engine_path.name} has the tensors {sorted(names)}, not the inputs "
                               f"{list(INPUT_NAMES)} and the output {OUTPUT_NAME!r} (missing {missing}); rebuild it "
                               "from 02's ONNX with 04_build_engine.")
        self.profile_set = profiles_from_engine(self._engine)

    def _check(self, ok: Any, what: str) -> None:
        if not ok:
            raise BackendError(f"TensorRT {what} returned False: "
                               + (" | ".join(self.logger.errors()[-3:]) or "no message") + ".")

    def _run(self, input_ids: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
        context, buffers, stream = self._context, self.buffers, self.buffers.stream_handle
        profile = self.profile_set.select(*input_ids.shape)
        if context.active_optimization_profile != profile:
            self._check(context.set_optimization_profile_async(profile, stream),
                        f"set_optimization_profile_async({profile})")
        for name, array in zip(INPUT_NAMES, (input_ids, segment_ids)):
            self._check(context.set_input_shape(name, array.shape), f"set_input_shape({name!r}, {array.shape})")
            buffers.to_device(name, array)
        for name in buffers.sizes:
            self._check(context.set_tensor_address(name, buffers.device_ptr(name)), f"set_tensor_address({name!r})")
        self._check(context.execute_async_v3(stream), "execute_async_v3")
        logits = buffers.to_host(OUTPUT_NAME, context.get_tensor_shape(OUTPUT_NAME))
        buffers.synchronize()
        return logits.astype(np.float32)  # a copy: the pinned buffer is reused by the next call

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({"engine": str(self.engine_path), "buffers": self.buffers.kind, "profiles": self.profile_set.table(),
                     "tensorrt": f"{self.metadata.flavour} {self.metadata.tensorrt_version}",
                     "rtx_runtime": self.rtx.describe() if self.rtx else None})
        return info

    def close(self) -> None:
        """Save TensorRT-RTX's runtime cache, drop the context, engine and runtime while their GPU is still current,
        then free the buffers (which pops pycuda's context). Safe to call twice."""
        buffers = getattr(self, "buffers", None)
        if buffers is None:
            return
        try:
            if self.rtx is not None:
                self.rtx.save_cache()
        finally:
            self._context = self.rtx = self._engine = self._runtime = None
            self.buffers = None
            buffers.close()

