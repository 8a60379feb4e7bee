"""TensorRT-RTX's runtime settings: a cache for its JIT-compiled kernels, and when it specialises kernels for
new shapes.

TensorRT for RTX (module ``tensorrt_rtx_bindings``) finishes compiling an engine's kernels on the user's GPU
when the execution context is created ("just in time"), and compiles shape-specialised kernels as new input
shapes arrive. Two settings of its ``IRuntimeConfig`` decide what that costs. They are applied where the
execution context is built, ``engine.create_execution_context(runtime_config)``, as in NVIDIA's own code
(TensorRT-RTX ``samples/apiUsage/python/api_usage.py`` and ``demo/utils/engine.py``):

* the runtime cache - a file for the JIT-compiled kernels, beside the engine (:func:`runtime_cache_path`). It is
  loaded (when present) before the context is created and written back atomically when the backend closes, so
  the next process skips the compilation. TensorRT-RTX itself rejects a cache from another TensorRT-RTX
  version, GPU or driver (``IRuntimeCache.deserialize`` returns False); the backend then starts from an empty
  cache and overwrites the file on close.
* ``kernel_specialization`` - ``"lazy"`` (TensorRT-RTX's default: a new shape runs on a generic fallback
  kernel while its specialised kernel compiles in the background), ``"eager"`` (compile before running: the
  first call at each new shape is slow, later calls are fast; what a benchmark wants after its warm-up) or
  ``"none"`` (fallback kernels only). Its CUDA-graph strategy stays at TensorRT-RTX's default (no graphs).

Full TensorRT 10/11 has none of these (its ``IRuntimeConfig`` only chooses how context memory is allocated):
there the context is created as before, without a runtime cache, and a kernel specialization other than
"lazy" stops with the uniform "not available in TensorRT <version>" error. Whether a module is TensorRT-RTX is
found by feature detection (:func:`has_rtx_runtime`), like every other TensorRT difference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendError, ConfigError
from ..io import atomic_write_bytes
from . import compat

#: ``IRuntimeConfig.dynamic_shapes_kernel_specialization_strategy`` values, lower case.
KERNEL_SPECIALIZATIONS: tuple[str, ...] = ("lazy", "eager", "none")


def has_rtx_runtime(trt: Any) -> bool:
    """True when the module has TensorRT-RTX's runtime settings (``tensorrt_rtx_bindings`` does; TensorRT 10/11
    does not)."""
    return hasattr(trt, "CudaGraphStrategy") and hasattr(trt, "DynamicShapesKernelSpecializationStrategy")


def runtime_cache_path(engine_path: str | os.PathLike[str]) -> Path:
    """Where the runtime cache of ``engine_path`` lives: ``model.fp16.engine`` -> ``model.fp16.engine.rtxcache``."""
    p = Path(engine_path)
    return p.with_name(p.name + ".rtxcache")


@dataclass
class RtxRuntime:
    """The ``IRuntimeConfig`` (and runtime cache) one execution context was created with."""

    runtime_config: Any
    kernel_specialization: str
    cache_path: Path | None = None
    runtime_cache: Any = None
    cache_loaded: bool = False

    def save_cache(self) -> Path | None:
        """Write the runtime cache to its file atomically (nothing without a cache); return the path."""
        if self.runtime_cache is None or self.cache_path is None:
            return None
        serialized = self.runtime_cache.serialize()
        if serialized is None:
            raise BackendError(f"TensorRT-RTX could not serialize its runtime cache for {self.cache_path}.")
        return atomic_write_bytes(self.cache_path, memoryview(serialized).tobytes())

    def describe(self) -> dict[str, Any]:
        return {"runtime_cache": str(self.cache_path) if self.cache_path else None, "cache_loaded": self.cache_loaded,
                "kernel_specialization": self.kernel_specialization}


def execution_context(engine: Any, trt: Any, *, cache_path: Path | None = None,
                      kernel_specialization: str = "lazy") -> tuple[Any, RtxRuntime | None]:
    """Create the engine's execution context, with TensorRT-RTX's runtime settings where the module has them.

    ``cache_path`` is the runtime cache's file (None: no cache). Returns ``(context, rtx runtime or None)``; the
    context is None when TensorRT could not create one (its
    logger says why). Call it with the engine's device current (see :mod:`helpers.trt.buffers`).
    """
    if kernel_specialization not in KERNEL_SPECIALIZATIONS:
        raise ConfigError(f"kernel_specialization must be one of {KERNEL_SPECIALIZATIONS}, "
                          f"got {kernel_specialization!r}.")
    if not has_rtx_runtime(trt):
        if kernel_specialization != "lazy":
            raise compat.features_of(trt).unavailable(
                f"kernel_specialization={kernel_specialization!r}",
                "full TensorRT has no kernel specialization setting; leave it at 'lazy' (or run an engine built "
                "with TensorRT-RTX).")
        return engine.create_execution_context(), None
    runtime_config = engine.create_runtime_config()
    if runtime_config is None:
        raise BackendError("TensorRT-RTX could not create a runtime config for the engine (see its log above).")
    runtime_config.dynamic_shapes_kernel_specialization_strategy = getattr(
        trt.DynamicShapesKernelSpecializationStrategy, kernel_specialization.upper())
    rtx = RtxRuntime(runtime_config, kernel_specialization, cache_path)
    if cache_path is not None:
        rtx.runtime_cache = runtime_config.create_runtime_cache()
        if rtx.runtime_cache is None:
            raise BackendError("TensorRT-RTX could not create a runtime cache.")
        if cache_path.is_file():
            rtx.cache_loaded = bool(rtx.runtime_cache.deserialize(cache_path.read_bytes()))
        if not runtime_config.set_runtime_cache(rtx.runtime_cache):
            raise BackendError(f"TensorRT-RTX refused the runtime cache for {cache_path}.")
    return engine.create_execution_context(runtime_config), rtx
