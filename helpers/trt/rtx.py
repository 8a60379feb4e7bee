"""TensorRT-RTX's runtime settings: a cache for its JIT-compiled kernels, its CUDA-graph strategy, and when it
specialises kernels for new shapes.

TensorRT for RTX (module ``tensorrt_rtx_bindings``) finishes compiling an engine's kernels on the user's GPU
when the execution context is created ("just in time"), and compiles shape-specialised kernels as new input
shapes arrive. Three settings of its ``IRuntimeConfig`` decide what that costs. They are applied where the
execution context is built, ``engine.create_execution_context(runtime_config)``, as in NVIDIA's own code
(TensorRT-RTX ``samples/apiUsage/python/api_usage.py`` and ``demo/utils/engine.py``):

* ``runtime_cache`` - a file for the JIT-compiled kernels. It is loaded (when present) before the context is
  created and written back atomically when the runner closes, so the next process skips the compilation.
  TensorRT-RTX itself rejects a cache from another TensorRT-RTX version, GPU or driver
  (``IRuntimeCache.deserialize`` returns False); the runner then starts from an empty cache and overwrites
  the file on close. Default ``None``: no cache, nothing written, every process compiles anew.
* ``cuda_graphs`` - ``"disabled"`` (TensorRT-RTX's default) or ``"whole_graph_capture"``: TensorRT-RTX
  captures the whole engine as one CUDA graph per input shape (once that shape's specialised kernels exist)
  and replays it. At small batches a BERT forward is hundreds of short kernels, so replaying saves most of
  the launch overhead; each new shape costs one capture.
* ``kernel_specialization`` - ``"lazy"`` (TensorRT-RTX's default: a new shape runs on a generic fallback
  kernel while its specialised kernel compiles in the background), ``"eager"`` (compile before running: the
  first call at each new shape is slow, later calls are fast; what a benchmark wants after its warm-up) or
  ``"none"`` (fallback kernels only).

Full TensorRT 10/11 has none of these (its ``IRuntimeConfig`` only chooses how context memory is allocated):
there the defaults are accepted and the context is created as before, and any other value stops with the
uniform "not available in TensorRT <version>" error. Whether a module is TensorRT-RTX is found by feature
detection (:func:`has_rtx_runtime`), like every other TensorRT difference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendError, ConfigError
from ..io import atomic_write_bytes
from . import compat

#: ``IRuntimeConfig.cuda_graph_strategy`` values (``trt.CudaGraphStrategy`` members, lower case).
CUDA_GRAPH_STRATEGIES: tuple[str, ...] = ("disabled", "whole_graph_capture")
#: ``IRuntimeConfig.dynamic_shapes_kernel_specialization_strategy`` values, lower case.
KERNEL_SPECIALIZATIONS: tuple[str, ...] = ("lazy", "eager", "none")


@dataclass(frozen=True)
class RtxRuntimeSettings:
    """TensorRT-RTX runtime settings; the defaults are TensorRT-RTX's own (see the module docstring)."""

    runtime_cache: Path | None = None
    cuda_graphs: str = "disabled"
    kernel_specialization: str = "lazy"

    def __post_init__(self) -> None:
        if self.cuda_graphs not in CUDA_GRAPH_STRATEGIES:
            raise ConfigError(f"cuda_graphs must be one of {CUDA_GRAPH_STRATEGIES}, got {self.cuda_graphs!r}.")
        if self.kernel_specialization not in KERNEL_SPECIALIZATIONS:
            raise ConfigError(f"kernel_specialization must be one of {KERNEL_SPECIALIZATIONS}, "
                              f"got {self.kernel_specialization!r}.")
        if self.runtime_cache is not None:
            object.__setattr__(self, "runtime_cache", Path(self.runtime_cache))

    @property
    def is_default(self) -> bool:
        return self == RtxRuntimeSettings()

    def to_dict(self) -> dict[str, str | None]:
        return {"runtime_cache": str(self.runtime_cache) if self.runtime_cache else None,
                "cuda_graphs": self.cuda_graphs, "kernel_specialization": self.kernel_specialization}


def has_rtx_runtime(trt: Any) -> bool:
    """True when the module has TensorRT-RTX's runtime settings (``tensorrt_rtx_bindings`` does; TensorRT 10/11
    does not)."""
    return hasattr(trt, "CudaGraphStrategy") and hasattr(trt, "DynamicShapesKernelSpecializationStrategy")


@dataclass
class RtxRuntime:
    """The ``IRuntimeConfig`` (and runtime cache) one execution context was created with."""

    settings: RtxRuntimeSettings
    runtime_config: Any
    runtime_cache: Any = None
    cache_loaded: bool = False

    def save_cache(self) -> Path | None:
        """Write the runtime cache to its file atomically (nothing without a cache); return the path."""
        path = self.settings.runtime_cache
        if self.runtime_cache is None or path is None:
            return None
        serialized = self.runtime_cache.serialize()
        if serialized is None:
            raise BackendError(f"TensorRT-RTX could not serialize its runtime cache for {path}.")
        return atomic_write_bytes(path, memoryview(serialized).tobytes())

    def describe(self) -> dict[str, Any]:
        return {**self.settings.to_dict(), "cache_loaded": self.cache_loaded}


def execution_context(engine: Any, trt: Any, settings: RtxRuntimeSettings = RtxRuntimeSettings()) -> tuple[Any, RtxRuntime | None]:
    """Create the engine's execution context with ``settings`` where the module is TensorRT-RTX.

    Returns ``(context, rtx runtime or None)``; the context is None when TensorRT could not create one (its
    logger says why). Call it with the engine's device current (see :mod:`helpers.trt.buffers`).
    """
    if not has_rtx_runtime(trt):
        if not settings.is_default:
            raise compat.features_of(trt).unavailable(
                f"The TensorRT-RTX runtime settings {settings.to_dict()}",
                "full TensorRT has no runtime cache, CUDA-graph strategy or kernel specialization setting; leave "
                "RtxRuntimeSettings at its defaults (or run an engine built with TensorRT-RTX).")
        return engine.create_execution_context(), None
    runtime_config = engine.create_runtime_config()
    if runtime_config is None:
        raise BackendError("TensorRT-RTX could not create a runtime config for the engine (see its log above).")
    runtime_config.cuda_graph_strategy = getattr(trt.CudaGraphStrategy, settings.cuda_graphs.upper())
    runtime_config.dynamic_shapes_kernel_specialization_strategy = getattr(
        trt.DynamicShapesKernelSpecializationStrategy, settings.kernel_specialization.upper())
    rtx = RtxRuntime(settings, runtime_config)
    if settings.runtime_cache is not None:
        rtx.runtime_cache = runtime_config.create_runtime_cache()
        if rtx.runtime_cache is None:
            raise BackendError("TensorRT-RTX could not create a runtime cache.")
        if settings.runtime_cache.is_file():
            rtx.cache_loaded = bool(rtx.runtime_cache.deserialize(settings.runtime_cache.read_bytes()))
        if not runtime_config.set_runtime_cache(rtx.runtime_cache):
            raise BackendError(f"TensorRT-RTX refused the runtime cache for {settings.runtime_cache}.")
    return engine.create_execution_context(runtime_config), rtx


def runtime_cache_path(engine_path: str | os.PathLike[str]) -> Path:
    """Where a runtime cache for ``engine_path`` lives by convention: ``model.fp16.engine`` -> ``model.fp16.engine.rtxcache``."""
    p = Path(engine_path)
    return p.with_name(p.name + ".rtxcache")
