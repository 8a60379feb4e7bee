"""Pinned host + device buffers for an engine's inputs and outputs, in three implementations.

Buffers are sized once from the engine's I/O tensors (their dtypes read from the engine:
``trt.nptype(engine.get_tensor_dtype(name))``) and the largest shape its profiles allow
(:meth:`DeviceBuffers.allocate_for`); every buffer is then allocated once and reused by every call, whatever
the batch and length (a call uses the first bytes of each buffer).

:class:`DeviceBuffers` holds one pinned host buffer and one device buffer per tensor plus one CUDA stream, and
does the bookkeeping and the checks. The CUDA work is done by a small memory object per implementation, in
the spirit of ``HostDeviceMem`` in TensorRT's ``samples/python/common_runtime.py``; each has the same few
members (``kind``, ``device``, ``stream``, ``alloc``, ``to_device``, ``to_host``, ``synchronize``, ``free``,
``close``):

* ``"cuda-python"`` (:class:`CudaPythonMemory`): NVIDIA's runtime bindings (``from cuda.bindings import
  runtime as cudart``), as TensorRT's own samples use since 10.x: ``cudaMallocHost``, ``cudaMalloc``,
  ``cudaMemcpyAsync``, ``cudaStreamCreate``. Every call's status is checked.
* ``"pycuda"`` (:class:`PycudaMemory`): PyCUDA, the original article's choice (``pagelocked_empty``,
  ``mem_alloc``, ``memcpy_htod_async``, ``Stream``), on the device's primary context - the one TensorRT and
  the CUDA runtime use - pushed on open and popped on close; use it from the thread that opened it.
* ``"torch"`` (:class:`TorchMemory`): pinned and CUDA ``uint8`` tensors, for readers who have CUDA PyTorch.

**The device comes first.** Opening buffers makes their GPU current for this thread (``cudaSetDevice``, the
primary context pushed, ``torch.cuda.set_device``). TensorRT deserializes an engine and creates its context
on the current device, so buffers are opened *before* the engine is loaded
(:class:`~helpers.backends.tensorrt.TensorRTBackend` and 05_infer keep that order). GPUs are CUDA device
indices, which honour ``CUDA_VISIBLE_DEVICES``: device 0 is the first visible GPU.

Memory is released deterministically by :meth:`DeviceBuffers.close` (also on ``with`` exit), in reverse order of
allocation; closing twice is harmless. An allocation that fails frees what was already allocated and closes
the memory object (pycuda's context is popped) before the error is raised. The arrays :meth:`DeviceBuffers.to_host`
returns alias the pinned buffer: they hold the result after :meth:`DeviceBuffers.synchronize`, and the next call
overwrites them, so copy what you keep.
"""

from __future__ import annotations

import ctypes
import importlib
import math
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from ..errors import BackendError, ConfigError, InputError, TensorRTUnavailableError
from ..export import TensorSpec
from . import compat
from .profiles import profiles_from_engine

BUFFER_KINDS: tuple[str, ...] = ("cuda-python", "pycuda", "torch")


# ------------------------------------------------------------------------------------------------- sizing
def tensor_bytes(spec: TensorSpec) -> int:
    """Bytes of ``spec`` at its (concrete) shape."""
    return int(math.prod(spec.shape)) * np.dtype(spec.dtype).itemsize


def engine_tensors(engine: Any, trt: Any) -> tuple[TensorSpec, ...]:
    """The engine's I/O tensors in engine order, dtypes from ``trt.nptype(engine.get_tensor_dtype(name))`` (since
    TensorRT 9 an int64 input needs an int64 buffer), shapes with -1 on dynamic axes."""
    specs = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        dtype = compat.numpy_dtype(trt, engine.get_tensor_dtype(name))
        specs.append(TensorSpec(name, is_input, dtype, tuple(int(d) for d in engine.get_tensor_shape(name))))
    return tuple(specs)


def size_buffers(specs: Sequence[TensorSpec], max_batch: int, max_len: int) -> tuple[TensorSpec, ...]:
    """``specs`` at the largest call the profiles allow: axis 0 (the batch) becomes ``max_batch`` and axis 1 of a
    rank-2 input (the sequence) ``max_len``; any other dynamic axis is an error."""
    if max_batch < 1 or max_len < 1:
        raise ConfigError(f"buffer sizes need max_batch and max_len >= 1, got {max_batch} and {max_len}.")
    out = []
    for spec in specs:
        shape = list(spec.shape)
        for axis, dim in enumerate(shape):
            if dim >= 0:
                continue
            if axis == 0:
                shape[axis] = max_batch
            elif axis == 1 and spec.is_input and len(shape) == 2:
                shape[axis] = max_len
            else:
                raise ConfigError(f"tensor {spec.name!r} has a dynamic axis {axis} in {spec.shape} that the "
                                  "batch/length contract does not name.")
        if any(d < 1 for d in shape):
            raise ConfigError(f"tensor {spec.name!r}: maximum shape {tuple(shape)} must be positive in every axis.")
        out.append(TensorSpec(spec.name, spec.is_input, np.dtype(spec.dtype), tuple(shape)))
    return tuple(out)


# --------------------------------------------------------------------------------------- the memory objects
class Memory(Protocol):
    """What one buffer implementation does; opening it (its constructor) makes its GPU current."""

    kind: str
    device: int
    stream: int  # the CUDA stream as the integer TensorRT's execute_async_v3 takes

    def alloc(self, nbytes: int) -> tuple[np.ndarray, int]:
        """Pinned host memory as a flat ``uint8`` array and device memory of ``nbytes`` (its address)."""

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        """Queue a copy of ``host`` (the first bytes of a pinned buffer) to ``ptr`` on the stream."""

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        """Queue a copy of ``host.nbytes`` bytes at ``ptr`` into ``host`` on the stream."""

    def synchronize(self) -> None: ...

    def free(self, host: np.ndarray, ptr: int) -> None: ...

    def close(self) -> None:
        """Release the stream (and pycuda's context)."""


class CudaPythonMemory:
    """``cuda-python``'s runtime API, as in TensorRT's ``samples/python/common_runtime.py``."""

    kind = "cuda-python"

    def __init__(self, device: int = 0) -> None:
        self._rt = importlib.import_module("cuda.bindings.runtime")
        self.device = int(device)
        self._call(self._rt.cudaSetDevice(self.device), f"cudaSetDevice({self.device})")
        self._stream = self._call(self._rt.cudaStreamCreate(), "cudaStreamCreate")
        self.stream = int(self._stream)

    def _call(self, result: Any, what: str) -> Any:
        """Check a ``(cudaError_t, *values)`` result; return the value(s)."""
        err, values = result[0], tuple(result[1:])
        if err != self._rt.cudaError_t.cudaSuccess:
            name, text = self._rt.cudaGetErrorName(err)[1], self._rt.cudaGetErrorString(err)[1]
            raise BackendError(f"cuda-python: {what} failed with {name.decode() if isinstance(name, bytes) else name} "
                               f"({text.decode() if isinstance(text, bytes) else text}).")
        return values[0] if len(values) == 1 else values

    def alloc(self, nbytes: int) -> tuple[np.ndarray, int]:
        host = int(self._call(self._rt.cudaMallocHost(nbytes), f"cudaMallocHost({nbytes})"))
        try:
            ptr = int(self._call(self._rt.cudaMalloc(nbytes), f"cudaMalloc({nbytes})"))
        except BackendError:
            self._call(self._rt.cudaFreeHost(host), "cudaFreeHost")
            raise
        return np.ctypeslib.as_array(ctypes.cast(host, ctypes.POINTER(ctypes.c_uint8)), (nbytes,)), ptr

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call(self._rt.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, kind, self._stream), "cudaMemcpyAsync H2D")

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call(self._rt.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, kind, self._stream), "cudaMemcpyAsync D2H")

    def synchronize(self) -> None:
        self._call(self._rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def free(self, host: np.ndarray, ptr: int) -> None:
        self._call(self._rt.cudaFree(ptr), "cudaFree")
        self._call(self._rt.cudaFreeHost(host.ctypes.data), "cudaFreeHost")

    def close(self) -> None:
        """Destroy the stream; the primary context stays for TensorRT and others."""
        self._call(self._rt.cudaStreamDestroy(self._stream), "cudaStreamDestroy")


class PycudaMemory:
    """PyCUDA on the device's primary context (pushed here, popped by :meth:`close`)."""

    kind = "pycuda"

    def __init__(self, device: int = 0) -> None:
        self._cuda = importlib.import_module("pycuda.driver")
        self.device = int(device)
        self._guard(self._cuda.init, "cuda.init")
        self._ctx = self._guard(lambda: self._cuda.Device(self.device).retain_primary_context(), "retain_primary_context")
        self._guard(self._ctx.push, "context push")
        try:
            self._stream = self._guard(self._cuda.Stream, "Stream()")
        except BackendError:
            self._pop()
            raise
        self.stream = int(self._stream.handle)
        self._device_mem: dict[int, Any] = {}  # address -> DeviceAllocation (freed explicitly)

    def _guard(self, fn: Callable[[], Any], what: str) -> Any:
        try:
            return fn()
        except (self._cuda.Error, MemoryError) as exc:
            raise BackendError(f"pycuda: {what} failed ({type(exc).__name__}: {exc}).") from exc

    def alloc(self, nbytes: int) -> tuple[np.ndarray, int]:
        host = self._guard(lambda: self._cuda.pagelocked_empty(nbytes, np.uint8), f"pagelocked_empty({nbytes})")
        try:
            mem = self._guard(lambda: self._cuda.mem_alloc(nbytes), f"mem_alloc({nbytes})")
        except BackendError:
            self._guard(host.base.free, "HostAllocation.free")
            raise
        self._device_mem[int(mem)] = mem
        return host, int(mem)

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        self._guard(lambda: self._cuda.memcpy_htod_async(self._device_mem[ptr], host, self._stream), "memcpy_htod_async")

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        self._guard(lambda: self._cuda.memcpy_dtoh_async(host, self._device_mem[ptr], self._stream), "memcpy_dtoh_async")

    def synchronize(self) -> None:
        self._guard(self._stream.synchronize, "Stream.synchronize")

    def free(self, host: np.ndarray, ptr: int) -> None:
        self._guard(self._device_mem.pop(ptr).free, "DeviceAllocation.free")
        self._guard(host.base.free, "HostAllocation.free")

    def _pop(self) -> None:
        self._guard(self._cuda.Context.pop, "context pop")
        self._guard(self._ctx.detach, "context detach")

    def close(self) -> None:
        self._stream = None  # a pycuda Stream is destroyed with its last reference, while the context is current
        self._pop()


class TorchMemory:
    """Pinned CPU and CUDA ``uint8`` tensors from PyTorch, copied on a PyTorch stream."""

    kind = "torch"

    def __init__(self, device: int = 0) -> None:
        self._torch = importlib.import_module("torch")
        if not self._torch.cuda.is_available():
            raise TensorRTUnavailableError("torch buffers need CUDA PyTorch and a GPU; this PyTorch sees no CUDA device.")
        self.device = int(device)
        self._torch.cuda.set_device(self.device)
        self._stream = self._torch.cuda.Stream(device=self.device)
        self.stream = int(self._stream.cuda_stream)
        self._tensors: dict[int, Any] = {}  # address -> pinned host or device tensor

    def alloc(self, nbytes: int) -> tuple[np.ndarray, int]:
        try:
            host = self._torch.empty(nbytes, dtype=self._torch.uint8, pin_memory=True)
            mem = self._torch.empty(nbytes, dtype=self._torch.uint8, device=self._torch.device("cuda", self.device))
        except RuntimeError as exc:  # torch.OutOfMemoryError and CUDA errors
            raise BackendError(f"torch: allocating {nbytes} bytes of pinned and device memory failed ({exc}).") from exc
        self._tensors[host.data_ptr()], self._tensors[mem.data_ptr()] = host, mem
        return host.numpy(), int(mem.data_ptr())

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        with self._torch.cuda.stream(self._stream):
            self._tensors[ptr][: host.nbytes].copy_(self._tensors[host.ctypes.data][: host.nbytes], non_blocking=True)

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        with self._torch.cuda.stream(self._stream):
            self._tensors[host.ctypes.data][: host.nbytes].copy_(self._tensors[ptr][: host.nbytes], non_blocking=True)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def free(self, host: np.ndarray, ptr: int) -> None:
        del self._tensors[ptr], self._tensors[host.ctypes.data]  # the allocators take them back

    def close(self) -> None:
        self._tensors.clear()
        self._stream = None


# ------------------------------------------------------------------------------------------------ buffers
class DeviceBuffers:
    """One pinned host buffer and one device buffer per tensor, plus one CUDA stream, on one GPU.

    Life cycle: open (:func:`make_buffers`: the GPU becomes current), :meth:`allocate_for` the engine once, then
    per call :meth:`to_device` each input, ``set_tensor_address(name, device_ptr(name))``, run the engine on
    :attr:`stream_handle`, :meth:`to_host` each output and :meth:`synchronize`; finally :meth:`close`.
    """

    def __init__(self, memory: Memory) -> None:
        self.memory = memory
        self.sizes: dict[str, TensorSpec] = {}  # tensor name -> its largest shape and dtype
        self._buffers: dict[str, tuple[np.ndarray, int]] = {}  # name -> (pinned host bytes, device address)
        self._closed = False

    @property
    def kind(self) -> str:
        return self.memory.kind

    @property
    def device(self) -> int:
        return self.memory.device

    @property
    def stream_handle(self) -> int:
        """The CUDA stream as the integer ``set_optimization_profile_async`` and ``execute_async_v3`` take."""
        return int(self.memory.stream)

    def allocate(self, sizes: Sequence[TensorSpec]) -> "DeviceBuffers":
        """Allocate one buffer per tensor of ``sizes`` (each at its shape); on failure free what was made, close,
        and raise."""
        self._check_open()
        if self.sizes:
            raise BackendError(f"{self.kind} buffers: already allocated; buffers are allocated once and reused.")
        try:
            for spec in sizes:
                self._buffers[spec.name] = self.memory.alloc(max(1, tensor_bytes(spec)))
                self.sizes[spec.name] = spec
        except BaseException:
            self.close()
            raise
        return self

    def allocate_for(self, engine: Any, trt: Any) -> "DeviceBuffers":
        """Allocate a buffer for every I/O tensor of the deserialized ``engine``, of the dtype the engine gives it,
        at the largest batch and length its optimization profiles allow."""
        specs = engine_tensors(engine, trt)
        profile_set = profiles_from_engine(engine, [s.name for s in specs if s.is_input])
        return self.allocate(size_buffers(specs, profile_set.max_batch, profile_set.max_len))

    def device_ptr(self, name: str) -> int:
        """Device address of the buffer for tensor ``name`` (what ``set_tensor_address`` takes)."""
        return self._buffers[self._spec(name).name][1]

    def host_view(self, name: str, shape: Sequence[int]) -> np.ndarray:
        """The pinned host buffer of ``name`` viewed as ``shape`` (which must fit in the buffer)."""
        spec = self._spec(name)
        count = int(math.prod(shape))
        if count > math.prod(spec.shape):
            raise InputError(f"{self.kind} buffers: {name} of shape {tuple(shape)} needs {count} elements but its buffer "
                             f"holds {math.prod(spec.shape)} (max shape {spec.shape}); the engine's profiles do not "
                             "allow it.")
        return self._buffers[name][0][: count * spec.dtype.itemsize].view(spec.dtype).reshape(tuple(shape))

    def to_device(self, name: str, array: np.ndarray) -> None:
        """Copy ``array`` into the pinned buffer of ``name`` (casting within its kind, e.g. int32 -> int64) and queue
        the copy of those bytes to the device on the stream."""
        spec = self._spec(name)
        array = np.asarray(array)
        if not np.can_cast(array.dtype, spec.dtype, casting="same_kind"):
            raise InputError(f"{self.kind} buffers: {name} must be {spec.dtype} (the engine's type), got {array.dtype}.")
        view = self.host_view(name, array.shape)
        np.copyto(view, array, casting="same_kind")
        self.memory.to_device(self._buffers[name][1], self._buffers[name][0][: view.nbytes])

    def to_host(self, name: str, shape: Sequence[int]) -> np.ndarray:
        """Queue the copy of ``name``'s first ``shape`` worth of device memory to its pinned buffer; return that
        buffer viewed as ``shape``: it holds the result after :meth:`synchronize`, until the next call."""
        view = self.host_view(name, tuple(int(d) for d in shape))
        self.memory.to_host(self._buffers[name][0][: view.nbytes], self._buffers[name][1])
        return view

    def synchronize(self) -> None:
        """Wait until everything queued on the stream has finished."""
        self._check_open()
        self.memory.synchronize()

    def describe(self) -> dict[str, Any]:
        rows = [{"tensor": s.name, "direction": "input" if s.is_input else "output", "dtype": np.dtype(s.dtype).name,
                 "max shape": "x".join(map(str, s.shape)), "bytes": tensor_bytes(s)} for s in self.sizes.values()]
        return {"kind": self.kind, "device": self.device, "buffers": rows,
                "total_bytes": sum(r["bytes"] for r in rows)}

    def close(self) -> None:
        """Free every buffer (reverse order), then the stream (and pycuda's context). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            for name in reversed(list(self._buffers)):
                self.memory.free(*self._buffers.pop(name))
        finally:
            self.sizes.clear()
            self.memory.close()

    def __enter__(self) -> "DeviceBuffers":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.sizes)} buffers, {self.describe()['total_bytes']} bytes"
        return f"<DeviceBuffers {self.kind} on device {self.device}: {state}>"

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"{self.kind} buffers: used after close(); create new buffers.")

    def _spec(self, name: str) -> TensorSpec:
        self._check_open()
        if name not in self.sizes:
            raise InputError(f"{self.kind} buffers: no buffer for tensor {name!r}; "
                             f"there are buffers for {sorted(self.sizes)}.")
        return self.sizes[name]


# ----------------------------------------------------------------------------------------------- factory
_MEMORY: dict[str, type] = {"cuda-python": CudaPythonMemory, "pycuda": PycudaMemory, "torch": TorchMemory}
_MODULES = {"cuda-python": "cuda.bindings.runtime", "pycuda": "pycuda.driver", "torch": "torch"}
_INSTALL = {"cuda-python": "pip install cuda-python", "pycuda": "pip install pycuda (builds against your CUDA toolkit)",
            "torch": "a CUDA build of PyTorch"}


def buffer_kind_status(kind: str) -> tuple[bool, str]:
    """Whether buffers of ``kind`` can be created here, and a sentence saying why (not)."""
    if kind not in _MEMORY:
        raise ConfigError(f"unknown buffer kind {kind!r}; choose one of {BUFFER_KINDS}.")
    try:
        module = importlib.import_module(_MODULES[kind])
    except ImportError as exc:
        return False, f"{kind}: not installed ({exc}); {_INSTALL[kind]}."
    if kind == "torch" and not module.cuda.is_available():
        return False, "torch: installed, but this PyTorch sees no CUDA device."
    return True, f"{kind}: importable."


def make_buffers(kind: str = "cuda-python", device: int = 0) -> DeviceBuffers:
    """Open buffers of ``kind`` on CUDA device ``device``, which becomes the current device (allocate them
    with :meth:`DeviceBuffers.allocate`)."""
    ok, why = buffer_kind_status(kind)
    if not ok:
        raise TensorRTUnavailableError(f"cannot create {kind} buffers: {why}")
    return DeviceBuffers(_MEMORY[kind](device))
