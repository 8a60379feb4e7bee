"""Test doubles for the TensorRT tests (no GPU, no TensorRT builder here). Read this before trusting them.

* :class:`NumpyMemory` is the memory object of :mod:`helpers.trt.buffers` with numpy arrays as "device"
  memory (:func:`numpy_buffers` wraps it in the real :class:`~helpers.trt.buffers.DeviceBuffers`). It
  exercises the bookkeeping (sizes, reuse, views, close) on a CPU. The real CUDA implementations are proven
  on a GPU by environment/gpu/check_buffers.py.
* :class:`RuntimeDouble` stands in for ``trt.Runtime`` (a real one needs CUDA); :func:`module_with_runtime`
  is a real TensorRT module (lean or RTX) with only ``Runtime`` replaced.
* :class:`EngineDouble` / :class:`ContextDouble` stand in for TensorRT's ``ICudaEngine`` /
  ``IExecutionContext``, and :class:`RuntimeConfigDouble` / :class:`RuntimeCacheDouble` for TensorRT-RTX's
  ``IRuntimeConfig`` / ``IRuntimeCache``. They are as strict as TensorRT where this project relies on it:

  - their methods and properties are ones the real classes have, with the real parameter names
    (tests/test_trt_doubles.py compares each one with NVIDIA's ``tensorrt_lean_bindings`` and
    ``tensorrt_rtx_bindings`` classes; only plain data attributes such as ``calls`` are the doubles' own,
    for the tests to read), and they check argument types as the bindings do (``TypeError`` for a non-str
    name or a non-integer index);
  - a new context has profile 0 active (``active_optimization_profile``, read-only as in TensorRT 10+);
    ``set_optimization_profile_async`` returns False for an index out of range, and every switch clears the
    input shapes ("setOptimizationProfileAsync() must be called before
    calling setInputShape()", NvInferRuntime.h);
  - ``set_input_shape`` returns False, logging an error as TensorRT does, for an unknown input, a wrong rank,
    or a shape outside the ACTIVE profile;
  - ``infer_shapes`` lists the inputs whose shapes are not set;
  - ``set_tensor_address`` returns False for an unknown tensor or a pointer that is not 256-byte aligned
    (TensorRT's documented requirement); ``execute_async_v3`` returns False unless every input shape and every
    tensor address is set, and fails the test outright if a buffer is too small for the shapes it was given;
  - the "kernel" writes ``[sum(ids), sum(segments)]`` per row into the logits buffer.

  They test how :class:`~helpers.backends.tensorrt.TensorRTBackend` and 05_infer's runtime cells drive
  TensorRT (call order, profile switching, buffer use, every False checked), not TensorRT itself.
"""

from __future__ import annotations

import itertools
import operator
from pathlib import Path
from typing import Any

import numpy as np

from helpers.errors import BackendError
from helpers.io import sha256_file
from helpers.trt.buffers import DeviceBuffers
from helpers.trt.compat import RTX_PORTABLE_TARGETS, flavour_of
from helpers.trt.metadata import EngineMetadata, EngineTarget, write_engine
from helpers.trt.profiles import ShapeProfile


class NumpyMemory:
    """A :class:`helpers.trt.buffers.Memory` whose "device" memory is numpy arrays at fake, 4 KiB-aligned addresses."""

    kind = "numpy-double"
    capacity = 1 << 32  # a larger allocation fails the way the real ones do: a BackendError
    _addresses = itertools.count(0x1000, 0x1000)

    def __init__(self, device: int = 0) -> None:
        self.device = device
        self.stream = 77
        self.blocks: dict[int, np.ndarray] = {}  # "device" memory by address
        self.log: list[tuple[str, Any]] = []
        self.open = True

    def alloc(self, nbytes: int) -> tuple[np.ndarray, int]:
        if nbytes > self.capacity:
            raise BackendError(f"numpy-double: cannot allocate {nbytes} bytes (capacity {self.capacity}).")
        ptr = next(self._addresses)
        self.blocks[ptr] = np.full(nbytes, 0xAB, np.uint8)
        self.log.append(("alloc", nbytes))
        return np.zeros(nbytes, np.uint8), ptr

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        self.blocks[ptr][: host.nbytes] = host
        self.log.append(("htod", host.nbytes))

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        host[...] = self.blocks[ptr][: host.nbytes]
        self.log.append(("dtoh", host.nbytes))

    def synchronize(self) -> None:
        self.log.append(("sync", None))

    def free(self, host: np.ndarray, ptr: int) -> None:
        del self.blocks[ptr]  # a second free of the same address fails, as cudaFree's status would
        self.log.append(("free", host.nbytes))

    def close(self) -> None:
        if not self.open:
            raise AssertionError("the memory object was closed twice (pycuda would pop a context that is not there)")
        self.open = False
        self.log.append(("close", None))


def numpy_buffers(device: int = 0) -> DeviceBuffers:
    """Real DeviceBuffers over :class:`NumpyMemory`; ``buffers.memory`` is the double."""
    return DeviceBuffers(NumpyMemory(device))


# -------------------------------------------------------------------------------------- runtime doubles
def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"incompatible function arguments: expected a str tensor name, got {type(value).__name__}")
    return value


def _index(value: Any) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"incompatible function arguments: expected an int, got {type(value).__name__}") from None


class EngineDouble:
    """ICudaEngine: inputs input_ids/segment_ids ``[-1, -1]`` of ``input_type``, output logits float32 ``[-1, labels]``."""

    def __init__(self, trt: Any, profiles: list[tuple[tuple[int, int], tuple[int, int], tuple[int, int]]],
                 memory: NumpyMemory | None = None, logger: Any = None, labels: int = 2,
                 input_type: str = "INT32") -> None:
        self._trt, self._profiles, self._memory, self._logger = trt, profiles, memory, logger
        self._names = ["input_ids", "segment_ids", "logits"]
        self._input_type = getattr(trt.DataType, input_type)
        self.labels = labels
        self.contexts: list[ContextDouble] = []
        self.runtime_configs: list[RuntimeConfigDouble] = []

    @property
    def num_io_tensors(self) -> int:
        return len(self._names)

    @property
    def num_optimization_profiles(self) -> int:
        return len(self._profiles)

    def get_tensor_name(self, index: Any) -> str:
        return self._names[_index(index)]

    def get_tensor_mode(self, name: Any) -> Any:
        return self._trt.TensorIOMode.OUTPUT if _name(name) == "logits" else self._trt.TensorIOMode.INPUT

    def get_tensor_dtype(self, name: Any) -> Any:
        return self._trt.DataType.FLOAT if _name(name) == "logits" else self._input_type

    def get_tensor_shape(self, name: Any) -> tuple[int, ...]:
        return (-1, self.labels) if _name(name) == "logits" else (-1, -1)

    def get_tensor_profile_shape(self, name: Any, profile_index: Any) -> list[list[int]]:
        if _name(name) not in self._names[:2]:
            raise AssertionError(f"get_tensor_profile_shape asked for {name!r}, which is not an input")
        return [list(s) for s in self._profiles[_index(profile_index)]]

    def create_runtime_config(self) -> "RuntimeConfigDouble":
        self.runtime_configs.append(RuntimeConfigDouble(self._trt))
        return self.runtime_configs[-1]

    def create_execution_context(self, runtime_config: "RuntimeConfigDouble | None" = None) -> "ContextDouble":
        if runtime_config is not None and not isinstance(runtime_config, RuntimeConfigDouble):
            raise TypeError("incompatible function arguments: runtime_config must be an IRuntimeConfig")
        self.contexts.append(ContextDouble(self, runtime_config))
        return self.contexts[-1]

    # --- what the double's context needs
    def _log_error(self, text: str) -> None:
        if self._logger is not None:
            self._logger.log(self._trt.ILogger.Severity.ERROR, text)


class ContextDouble:
    """IExecutionContext with TensorRT's rules for profiles, shapes and addresses (see the module docstring)."""

    def __init__(self, engine: EngineDouble, runtime_config: "RuntimeConfigDouble | None") -> None:
        self._engine = engine
        self.runtime_config = runtime_config
        self.profile = 0  # "The newly created execution context will be assigned optimization profile 0."
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self.calls: list[tuple[str, tuple]] = []
        self.refusals: dict[str, str] = {}  # method -> TensorRT error text: that method logs it and returns False

    @property
    def active_optimization_profile(self) -> int:
        return self.profile

    def _refused(self, method: str) -> bool:
        if method in self.refusals:
            self._engine._log_error(self.refusals[method])
            return True
        return False

    def set_optimization_profile_async(self, profile_index: Any, stream_handle: Any) -> bool:
        index, stream = _index(profile_index), _index(stream_handle)
        self.calls.append(("set_optimization_profile_async", (index, stream)))
        if self._refused("set_optimization_profile_async"):
            return False
        if not 0 <= index < self._engine.num_optimization_profiles:
            self._engine._log_error(f"IExecutionContext::setOptimizationProfileAsync: Error Code 3: API Usage Error "
                                    f"(profile index {index} is out of range)")
            return False
        self.profile = index
        self.shapes.clear()  # input shapes must be set again after a switch
        return True

    def set_input_shape(self, name: Any, shape: Any) -> bool:
        name = _name(name)
        if not isinstance(shape, (tuple, list)):
            raise TypeError(f"incompatible function arguments: shape must be a tuple, list or Dims, got {type(shape).__name__}")
        dims = tuple(_index(d) for d in shape)
        self.calls.append(("set_input_shape", (name, dims)))
        if self._refused("set_input_shape"):
            return False
        if name not in self._engine._names[:2]:
            self._engine._log_error(f"IExecutionContext::setInputShape: Error Code 3: API Usage Error "
                                    f"(no input tensor named {name})")
            return False
        low, _, high = self._engine._profiles[self.profile]
        if len(dims) != len(low) or any(not lo <= d <= hi for d, lo, hi in zip(dims, low, high)):
            self._engine._log_error(f"IExecutionContext::setInputShape: Error Code 3: API Usage Error (shape {dims} of "
                                    f"{name} is outside optimization profile {self.profile}: min {low}, max {high})")
            return False
        self.shapes[name] = dims
        return True

    def get_tensor_shape(self, name: Any) -> tuple[int, ...]:
        name = _name(name)
        if name == "logits":
            batch = self.shapes.get("input_ids", (-1,))[0]
            return (batch, self._engine.labels)
        return self.shapes.get(name, (-1, -1))

    def infer_shapes(self) -> list[str]:
        self.calls.append(("infer_shapes", ()))
        return [n for n in self._engine._names[:2] if n not in self.shapes]

    def set_tensor_address(self, name: Any, memory: Any) -> bool:
        name, ptr = _name(name), _index(memory)
        self.calls.append(("set_tensor_address", (name, ptr)))
        if self._refused("set_tensor_address"):
            return False
        if name not in self._engine._names or ptr % 256:
            self._engine._log_error(f"IExecutionContext::setTensorAddress: Error Code 3: API Usage Error (tensor {name}: "
                                    f"address {ptr:#x} is unknown or not 256-byte aligned)")
            return False
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, stream_handle: Any) -> bool:
        self.calls.append(("execute_async_v3", (_index(stream_handle),)))
        if self._refused("execute_async_v3"):
            return False
        unset = [n for n in self._engine._names[:2] if n not in self.shapes]
        no_address = [n for n in self._engine._names if not self.addresses.get(n)]
        if unset or no_address:
            self._engine._log_error(f"IExecutionContext::enqueueV3: Error Code 3: API Usage Error (shapes not set: {unset}, "
                                    f"addresses not set: {no_address})")
            return False
        batch, seq = self.shapes["input_ids"]
        dtype = np.dtype(self._engine._trt.nptype(self._engine._input_type))
        ids, seg = (self._read(n, batch * seq * dtype.itemsize).view(dtype).reshape(batch, seq) for n in self._engine._names[:2])
        out = np.zeros((batch, self._engine.labels), np.float32)
        out[:, 0], out[:, 1] = ids.sum(axis=1), seg.sum(axis=1)
        self._read("logits", out.nbytes)[...] = out.view(np.uint8).reshape(-1)
        return True

    def _read(self, name: str, nbytes: int) -> np.ndarray:
        memory = self._engine._memory.blocks
        ptr = self.addresses[name]
        if ptr not in memory or memory[ptr].size < nbytes:
            raise AssertionError(f"execute_async_v3 would touch {nbytes} bytes of {name} at {ptr:#x}, outside any "
                                 "allocated buffer (real TensorRT would corrupt memory here)")
        return memory[ptr][:nbytes]


def refuse(context: ContextDouble, method: str, message: str) -> None:
    """Make ``context.<method>`` fail the way TensorRT reports a failure: ``message`` in the log, then False."""
    context.refusals[method] = message


class RuntimeCacheDouble:
    """TensorRT-RTX IRuntimeCache: accepts only blobs it serialized itself (as a version/GPU check would)."""

    MAGIC = b"rtx-runtime-cache-double:"

    def __init__(self) -> None:
        self.kernels: list[str] = []
        self.loaded: bytes | None = None

    def serialize(self) -> bytes:
        return self.MAGIC + ",".join(self.kernels).encode()

    def deserialize(self, blob: Any) -> bool:
        data = bytes(memoryview(blob))
        if not data.startswith(self.MAGIC):
            return False
        self.loaded = data
        self.kernels = [k for k in data[len(self.MAGIC):].decode().split(",") if k]
        return True

    def reset(self) -> bool:
        self.kernels.clear()
        return True


class RuntimeConfigDouble:
    """TensorRT-RTX IRuntimeConfig: its kernel specialization strategy takes only the real enum."""

    def __init__(self, trt: Any) -> None:
        self._trt = trt
        self._specialization = trt.DynamicShapesKernelSpecializationStrategy.LAZY
        self._cache: RuntimeCacheDouble | None = None

    @property
    def dynamic_shapes_kernel_specialization_strategy(self) -> Any:
        return self._specialization

    @dynamic_shapes_kernel_specialization_strategy.setter
    def dynamic_shapes_kernel_specialization_strategy(self, value: Any) -> None:
        if not isinstance(value, self._trt.DynamicShapesKernelSpecializationStrategy):
            raise TypeError(f"dynamic_shapes_kernel_specialization_strategy takes a "
                            f"DynamicShapesKernelSpecializationStrategy, got {type(value).__name__}")
        self._specialization = value

    def create_runtime_cache(self) -> RuntimeCacheDouble:
        return RuntimeCacheDouble()

    def set_runtime_cache(self, cache: Any = None) -> bool:
        if cache is not None and not isinstance(cache, RuntimeCacheDouble):
            raise TypeError("incompatible function arguments: cache must be an IRuntimeCache")
        self._cache = cache
        return True

    def get_runtime_cache(self) -> RuntimeCacheDouble | None:
        return self._cache


class RuntimeDouble:
    """``trt.Runtime`` (a real one needs CUDA): deserializes to a prepared engine, or fails as TensorRT logs it."""

    trt: Any = None
    engine: Any = None
    error: str = "Serialization assertion magicTag failed"

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def deserialize_cuda_engine(self, serialized_engine: Any) -> Any:
        memoryview(serialized_engine)  # the real binding takes a buffer
        if self.engine is None:
            self.logger.log(self.trt.ILogger.Severity.ERROR, self.error)
            return None
        self.engine._logger = self.logger
        return self.engine


def module_with_runtime(trt: Any, engine: Any = None) -> Any:
    """The real module ``trt`` (lean or RTX) with only ``Runtime`` replaced by :class:`RuntimeDouble`."""
    runtime = type("Runtime", (RuntimeDouble,), {"trt": trt, "engine": engine})

    class Module:
        def __getattr__(self, name: str) -> Any:
            return runtime if name == "Runtime" else getattr(trt, name)

    return Module()


# ------------------------------------------------------------------------------------- an engine on disk
#: The GPU the tests pretend to run on, per flavour: an H100 for TensorRT, an RTX 4090 for TensorRT-RTX.
GPUS = {"tensorrt": ("NVIDIA H100 80GB HBM3", "9.0"), "tensorrt-rtx": ("NVIDIA GeForce RTX 4090", "8.9")}


def running_here(trt: Any) -> EngineTarget:
    """What :func:`helpers.trt.metadata.running_target` would say for module ``trt`` on the test's GPU."""
    flavour = flavour_of(trt)
    return EngineTarget(trt.__version__, *GPUS[flavour], flavour)


def engine_on_disk(folder: Path, trt: Any, precision: str = "fp16", onnx_path: Path | None = None) -> Path:
    """``model.<precision>.engine`` (a few bytes the runtime double deserializes) with a sidecar that fits
    :func:`running_here` (and ``onnx_path``, when given)."""
    flavour = flavour_of(trt)
    built_for = running_here(trt) if flavour == "tensorrt" else EngineTarget(
        trt.__version__, "none (built ahead of time without a GPU)", RTX_PORTABLE_TARGETS, flavour)
    meta = EngineMetadata(trt.__version__, built_for.gpu_name, built_for.compute_capability,
                          onnx_path.name if onnx_path else f"model.{precision}.onnx",
                          sha256_file(onnx_path) if onnx_path else "0" * 64, precision,
                          (ShapeProfile(1, 1, 1, 1, 48, 64).to_dict(),), {"input_ids": "int32", "segment_ids": "int32"},
                          flavour, {"logits": "float32"})
    return write_engine(folder / f"model.{precision}.engine", b"serialized engine", meta)
