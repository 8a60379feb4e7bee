"""Pinned host + device buffers for an engine's inputs and outputs, behind one small interface.

Sizing is planned once from the engine's I/O tensors and the largest shape its profiles allow
(:func:`plan_buffers`); every buffer is then allocated once and reused by every call, whatever the batch
and length (a call uses the first ``nbytes`` of each buffer). Three implementations:

* ``"cuda-python"``: NVIDIA's ``cuda-python`` runtime bindings (``from cuda.bindings import runtime as
  cudart``), which TensorRT's own samples use since 10.x (``cudaMallocHost``, ``cudaMalloc``,
  ``cudaMemcpyAsync``, ``cudaStreamCreate``). Every call's status is checked.
* ``"pycuda"``: PyCUDA, the original article's choice (``pagelocked_empty``, ``mem_alloc``,
  ``memcpy_htod_async``, ``Stream``). It works on the device's primary context, the one TensorRT and
  the CUDA runtime use, and must be used from the thread that created it.
* ``"torch"``: pinned and CUDA tensors from PyTorch, for readers who already have CUDA PyTorch.

Memory is released deterministically by :meth:`DeviceBuffers.close` (also on ``with`` exit), in reverse
order of allocation; closing twice is harmless. Host views returned by :meth:`DeviceBuffers.host_view`
alias the pinned buffer: they are overwritten by the next call, so copy what you keep.
"""

from __future__ import annotations

import ctypes
import importlib
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import BackendError, ConfigError, InputError, TensorRTUnavailableError

BUFFER_KINDS: tuple[str, ...] = ("cuda-python", "pycuda", "torch")


# ------------------------------------------------------------------------------------------------- sizing
@dataclass(frozen=True)
class TensorSpec:
    """One I/O tensor of an engine: ``shape`` uses -1 for dynamic axes."""

    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]


@dataclass(frozen=True)
class BufferSpec:
    """One buffer: the tensor it holds and the largest shape it must hold."""

    name: str
    is_input: bool
    dtype: np.dtype
    max_shape: tuple[int, ...]

    @property
    def elements(self) -> int:
        return int(math.prod(self.max_shape))

    @property
    def nbytes(self) -> int:
        return self.elements * np.dtype(self.dtype).itemsize

    def row(self) -> dict[str, Any]:
        return {"tensor": self.name, "direction": "input" if self.is_input else "output",
                "dtype": np.dtype(self.dtype).name, "max shape": "x".join(map(str, self.max_shape)),
                "bytes": self.nbytes}


def plan_buffers(specs: Sequence[TensorSpec], max_batch: int, max_len: int,
                 max_shapes: Mapping[str, Sequence[int]] | None = None) -> tuple[BufferSpec, ...]:
    """Size one buffer per I/O tensor for the largest call the profiles allow.

    Shapes given in ``max_shapes`` win (the runtime reads output maxima from the execution context).
    Otherwise this project's contract fills dynamic axes: axis 0 is the batch (``max_batch``) and axis 1
    of a rank-2 input is the sequence (``max_len``); any other dynamic axis is an error.
    """
    if max_batch < 1 or max_len < 1:
        raise ConfigError(f"buffer plan needs max_batch and max_len >= 1, got {max_batch} and {max_len}.")
    given = {k: tuple(int(d) for d in v) for k, v in (max_shapes or {}).items()}
    out = []
    for spec in specs:
        if spec.name in given:
            shape = given[spec.name]
        else:
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
                                      "batch/length contract does not name; pass its maximum in max_shapes.")
            shape = tuple(shape)
        if any(d < 1 for d in shape):
            raise ConfigError(f"tensor {spec.name!r}: maximum shape {shape} must be positive in every axis.")
        out.append(BufferSpec(spec.name, spec.is_input, np.dtype(spec.dtype), tuple(shape)))
    return tuple(out)


def total_bytes(plan: Iterable[BufferSpec]) -> int:
    return sum(b.nbytes for b in plan)


# ---------------------------------------------------------------------------------------------- interface
class DeviceBuffers(ABC):
    """Pinned host and device memory for a buffer plan, plus one CUDA stream.

    Life cycle: create (opens the device and a stream), :meth:`allocate` once, then per call
    :meth:`host_view` / :meth:`to_device` / :meth:`to_host` / :meth:`synchronize`, finally :meth:`close`.
    Subclasses implement the ``_`` hooks; this class does the bookkeeping and the checks.
    """

    kind: str = "abstract"

    def __init__(self, device: int = 0) -> None:
        self.device = int(device)
        self.plan: dict[str, BufferSpec] = {}
        self._host: dict[str, np.ndarray] = {}
        self._device_mem: dict[str, Any] = {}
        self._order: list[str] = []
        self._closed = False
        self._open(self.device)
        try:
            self._stream = self._create_stream()
        except BaseException:
            self._close()
            raise

    # -------------------------------------------------------------------------------- public
    @property
    def stream_handle(self) -> int:
        """The CUDA stream as the integer TensorRT's ``execute_async_v3`` takes."""
        return int(self._stream_handle())

    def allocate(self, plan: Sequence[BufferSpec]) -> "DeviceBuffers":
        """Allocate every buffer of ``plan`` once (pinned host + device); a second call is an error."""
        self._check_open()
        if self.plan:
            raise BackendError(f"{self.kind} buffers: already allocated; buffers are allocated once and reused.")
        for spec in plan:
            nbytes = max(1, spec.nbytes)
            self._host[spec.name] = self._alloc_host(nbytes)
            self._order.append(spec.name)
            self._device_mem[spec.name] = self._alloc_device(nbytes)
            self.plan[spec.name] = spec
        return self

    def device_ptr(self, name: str) -> int:
        """Device address of the buffer for tensor ``name`` (what ``set_tensor_address`` takes)."""
        return int(self._device_ptr(self._device_mem[self._spec(name).name]))

    def host_view(self, name: str, shape: Sequence[int]) -> np.ndarray:
        """The pinned host buffer of ``name`` viewed as ``shape`` (must fit within the planned maximum)."""
        spec = self._spec(name)
        count = int(math.prod(shape))
        if count > spec.elements:
            raise InputError(f"{self.kind} buffers: {name} of shape {tuple(shape)} needs {count} elements but its buffer "
                             f"holds {spec.elements} (max shape {spec.max_shape}); the engine's profile does not allow it.")
        raw = self._host[name][: count * spec.dtype.itemsize]
        return raw.view(spec.dtype).reshape(tuple(shape))

    def to_device(self, name: str, nbytes: int) -> None:
        """Queue a copy of the first ``nbytes`` of the host buffer to the device (asynchronous, on the stream)."""
        self._copy_checks(name, nbytes)
        self._htod(self._device_mem[name], self._host[name], nbytes)

    def to_host(self, name: str, nbytes: int) -> None:
        """Queue a copy of the first ``nbytes`` of the device buffer to the host (asynchronous, on the stream)."""
        self._copy_checks(name, nbytes)
        self._dtoh(self._host[name], self._device_mem[name], nbytes)

    def synchronize(self) -> None:
        """Wait until everything queued on the stream has finished."""
        self._check_open()
        self._sync()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "device": self.device, "buffers": [s.row() for s in self.plan.values()],
                "total_bytes": total_bytes(self.plan.values())}

    def close(self) -> None:
        """Free every buffer (reverse order), the stream and the device context. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for name in reversed(self._order):
            self._free_device(self._device_mem.pop(name))
            self._free_host(self._host.pop(name))
        self._order.clear()
        self.plan.clear()
        self._destroy_stream()
        self._close()

    def __enter__(self) -> "DeviceBuffers":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.plan)} buffers, {total_bytes(self.plan.values())} bytes"
        return f"<{type(self).__name__} {self.kind} on device {self.device}: {state}>"

    # -------------------------------------------------------------------------------- helpers
    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"{self.kind} buffers: used after close(); create new buffers.")

    def _spec(self, name: str) -> BufferSpec:
        self._check_open()
        if name not in self.plan:
            raise InputError(f"{self.kind} buffers: no buffer for tensor {name!r}; planned: {sorted(self.plan)}.")
        return self.plan[name]

    def _copy_checks(self, name: str, nbytes: int) -> None:
        spec = self._spec(name)
        if not 0 < nbytes <= spec.nbytes:
            raise InputError(f"{self.kind} buffers: copy of {nbytes} bytes for {name} outside its buffer of "
                             f"{spec.nbytes} bytes.")

    # -------------------------------------------------------------------------------- hooks
    @abstractmethod
    def _open(self, device: int) -> None: ...

    @abstractmethod
    def _create_stream(self) -> Any: ...

    @abstractmethod
    def _stream_handle(self) -> int: ...

    @abstractmethod
    def _alloc_host(self, nbytes: int) -> np.ndarray:
        """Pinned host memory as a flat uint8 array of ``nbytes``."""

    @abstractmethod
    def _alloc_device(self, nbytes: int) -> Any: ...

    @abstractmethod
    def _device_ptr(self, mem: Any) -> int: ...

    @abstractmethod
    def _htod(self, mem: Any, host: np.ndarray, nbytes: int) -> None: ...

    @abstractmethod
    def _dtoh(self, host: np.ndarray, mem: Any, nbytes: int) -> None: ...

    @abstractmethod
    def _sync(self) -> None: ...

    @abstractmethod
    def _free_device(self, mem: Any) -> None: ...

    @abstractmethod
    def _free_host(self, host: np.ndarray) -> None: ...

    @abstractmethod
    def _destroy_stream(self) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...


# ------------------------------------------------------------------------------------------- cuda-python
class CudaPythonBuffers(DeviceBuffers):
    """Buffers through ``cuda-python``'s runtime API, as in TensorRT's ``samples/python/common_runtime.py``."""

    kind = "cuda-python"

    def _open(self, device: int) -> None:
        self._rt = importlib.import_module("cuda.bindings.runtime")
        self._call(self._rt.cudaSetDevice(device), "cudaSetDevice")

    def _call(self, result: Any, what: str) -> Any:
        """Check a ``(cudaError_t, *values)`` result; return the value(s)."""
        err, values = result[0], tuple(result[1:])
        if err != self._rt.cudaError_t.cudaSuccess:
            name = self._rt.cudaGetErrorName(err)[1]
            text = self._rt.cudaGetErrorString(err)[1]
            raise BackendError(f"cuda-python: {what} failed with {name.decode() if isinstance(name, bytes) else name} "
                               f"({text.decode() if isinstance(text, bytes) else text}).")
        return values[0] if len(values) == 1 else values

    def _create_stream(self) -> Any:
        return self._call(self._rt.cudaStreamCreate(), "cudaStreamCreate")

    def _stream_handle(self) -> int:
        return int(self._stream)

    def _alloc_host(self, nbytes: int) -> np.ndarray:
        ptr = self._call(self._rt.cudaMallocHost(nbytes), f"cudaMallocHost({nbytes})")
        return np.ctypeslib.as_array(ctypes.cast(int(ptr), ctypes.POINTER(ctypes.c_uint8)), (nbytes,))

    def _alloc_device(self, nbytes: int) -> Any:
        return self._call(self._rt.cudaMalloc(nbytes), f"cudaMalloc({nbytes})")

    def _device_ptr(self, mem: Any) -> int:
        return int(mem)

    def _htod(self, mem: Any, host: np.ndarray, nbytes: int) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call(self._rt.cudaMemcpyAsync(int(mem), host.ctypes.data, nbytes, kind, self._stream), "cudaMemcpyAsync H2D")

    def _dtoh(self, host: np.ndarray, mem: Any, nbytes: int) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call(self._rt.cudaMemcpyAsync(host.ctypes.data, int(mem), nbytes, kind, self._stream), "cudaMemcpyAsync D2H")

    def _sync(self) -> None:
        self._call(self._rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def _free_device(self, mem: Any) -> None:
        self._call(self._rt.cudaFree(mem), "cudaFree")

    def _free_host(self, host: np.ndarray) -> None:
        self._call(self._rt.cudaFreeHost(host.ctypes.data), "cudaFreeHost")

    def _destroy_stream(self) -> None:
        self._call(self._rt.cudaStreamDestroy(self._stream), "cudaStreamDestroy")

    def _close(self) -> None:
        """Nothing to release: the runtime API's primary context stays for TensorRT and others."""


# ------------------------------------------------------------------------------------------------ pycuda
class PycudaBuffers(DeviceBuffers):
    """Buffers through PyCUDA on the device's primary context (pushed here, popped on close)."""

    kind = "pycuda"

    def _open(self, device: int) -> None:
        self._cuda = importlib.import_module("pycuda.driver")
        self._guard(self._cuda.init, "cuda.init")
        self._ctx = self._guard(lambda: self._cuda.Device(device).retain_primary_context(), "retain_primary_context")
        self._guard(self._ctx.push, "context push")

    def _guard(self, fn: Callable[[], Any], what: str) -> Any:
        try:
            return fn()
        except self._cuda.Error as exc:
            raise BackendError(f"pycuda: {what} failed ({type(exc).__name__}: {exc}).") from exc

    def _create_stream(self) -> Any:
        return self._guard(self._cuda.Stream, "Stream()")

    def _stream_handle(self) -> int:
        return int(self._stream.handle)

    def _alloc_host(self, nbytes: int) -> np.ndarray:
        return self._guard(lambda: self._cuda.pagelocked_empty(nbytes, np.uint8), f"pagelocked_empty({nbytes})")

    def _alloc_device(self, nbytes: int) -> Any:
        return self._guard(lambda: self._cuda.mem_alloc(nbytes), f"mem_alloc({nbytes})")

    def _device_ptr(self, mem: Any) -> int:
        return int(mem)

    def _htod(self, mem: Any, host: np.ndarray, nbytes: int) -> None:
        self._guard(lambda: self._cuda.memcpy_htod_async(mem, host[:nbytes], self._stream), "memcpy_htod_async")

    def _dtoh(self, host: np.ndarray, mem: Any, nbytes: int) -> None:
        self._guard(lambda: self._cuda.memcpy_dtoh_async(host[:nbytes], mem, self._stream), "memcpy_dtoh_async")

    def _sync(self) -> None:
        self._guard(self._stream.synchronize, "Stream.synchronize")

    def _free_device(self, mem: Any) -> None:
        self._guard(mem.free, "DeviceAllocation.free")

    def _free_host(self, host: np.ndarray) -> None:
        self._guard(host.base.free, "HostAllocation.free")

    def _destroy_stream(self) -> None:
        self._stream = None  # a pycuda Stream is destroyed with its last reference

    def _close(self) -> None:
        self._guard(self._cuda.Context.pop, "context pop")
        self._guard(self._ctx.detach, "context detach")


# ------------------------------------------------------------------------------------------------- torch
class TorchBuffers(DeviceBuffers):
    """Buffers as pinned CPU and CUDA ``uint8`` tensors from PyTorch (optional third implementation)."""

    kind = "torch"

    def _open(self, device: int) -> None:
        self._torch = importlib.import_module("torch")
        if not self._torch.cuda.is_available():
            raise TensorRTUnavailableError("torch buffers need CUDA PyTorch and a GPU; this PyTorch sees no CUDA device.")
        self._dev = self._torch.device("cuda", device)
        self._pinned: dict[int, Any] = {}

    def _create_stream(self) -> Any:
        return self._torch.cuda.Stream(device=self._dev)

    def _stream_handle(self) -> int:
        return int(self._stream.cuda_stream)

    def _alloc_host(self, nbytes: int) -> np.ndarray:
        tensor = self._torch.empty(nbytes, dtype=self._torch.uint8, pin_memory=True)
        arr = tensor.numpy()
        self._pinned[arr.ctypes.data] = tensor
        return arr

    def _alloc_device(self, nbytes: int) -> Any:
        return self._torch.empty(nbytes, dtype=self._torch.uint8, device=self._dev)

    def _device_ptr(self, mem: Any) -> int:
        return int(mem.data_ptr())

    def _htod(self, mem: Any, host: np.ndarray, nbytes: int) -> None:
        with self._torch.cuda.stream(self._stream):
            mem[:nbytes].copy_(self._pinned[host.ctypes.data][:nbytes], non_blocking=True)

    def _dtoh(self, host: np.ndarray, mem: Any, nbytes: int) -> None:
        with self._torch.cuda.stream(self._stream):
            self._pinned[host.ctypes.data][:nbytes].copy_(mem[:nbytes], non_blocking=True)

    def _sync(self) -> None:
        self._stream.synchronize()

    def _free_device(self, mem: Any) -> None:
        del mem  # the caching allocator takes it back with the last reference

    def _free_host(self, host: np.ndarray) -> None:
        self._pinned.pop(host.ctypes.data)

    def _destroy_stream(self) -> None:
        self._stream = None

    def _close(self) -> None:
        self._pinned.clear()


# ----------------------------------------------------------------------------------------------- factory
_CLASSES: dict[str, type[DeviceBuffers]] = {"cuda-python": CudaPythonBuffers, "pycuda": PycudaBuffers, "torch": TorchBuffers}
_MODULES = {"cuda-python": "cuda.bindings.runtime", "pycuda": "pycuda.driver", "torch": "torch"}
_INSTALL = {"cuda-python": "pip install cuda-python", "pycuda": "pip install pycuda (builds against your CUDA toolkit)",
            "torch": "a CUDA build of PyTorch"}


def buffer_kind_status(kind: str) -> tuple[bool, str]:
    """Whether buffers of ``kind`` can be created here, and a sentence saying why (not)."""
    if kind not in _CLASSES:
        raise ConfigError(f"unknown buffer kind {kind!r}; choose one of {BUFFER_KINDS}.")
    try:
        module = importlib.import_module(_MODULES[kind])
    except ImportError as exc:
        return False, f"{kind}: not installed ({exc}); {_INSTALL[kind]}."
    if kind == "torch" and not module.cuda.is_available():
        return False, "torch: installed, but this PyTorch sees no CUDA device."
    return True, f"{kind}: importable."


def make_buffers(kind: str = "cuda-python", device: int = 0) -> DeviceBuffers:
    """Open buffers of ``kind`` on ``device`` (allocate them with :meth:`DeviceBuffers.allocate`)."""
    ok, why = buffer_kind_status(kind)
    if not ok:
        raise TensorRTUnavailableError(f"cannot create {kind} buffers: {why}")
    return _CLASSES[kind](device)
