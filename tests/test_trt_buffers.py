"""Buffer sizing and the shared buffer bookkeeping (the CUDA implementations run in environment/gpu/)."""

from __future__ import annotations

import ctypes
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from helpers.errors import BackendError, ConfigError, InputError, TensorRTUnavailableError
from helpers.export import TensorSpec
from helpers.trt.buffers import (BUFFER_KINDS, CudaPythonMemory, DeviceBuffers, PycudaMemory, TorchMemory,
                                 buffer_kind_status, engine_tensors, make_buffers, size_buffers, tensor_bytes)

from trt_doubles import EngineDouble, NumpyMemory, numpy_buffers

lean = pytest.importorskip("tensorrt_lean_bindings", reason="pip install -r environment/requirements-trt-check.txt")

SPECS = (TensorSpec("input_ids", True, np.dtype(np.int32), (-1, -1)),
         TensorSpec("segment_ids", True, np.dtype(np.int32), (-1, -1)),
         TensorSpec("logits", False, np.dtype(np.float32), (-1, 2)))
PROFILES = [((1, 1), (1, 48), (1, 64)), ((2, 1), (16, 48), (16, 64))]


def test_every_tensor_is_sized_at_the_maximum():
    sizes = size_buffers(SPECS, max_batch=32, max_len=128)
    assert [(b.name, b.shape, tensor_bytes(b)) for b in sizes] == [
        ("input_ids", (32, 128), 32 * 128 * 4), ("segment_ids", (32, 128), 32 * 128 * 4), ("logits", (32, 2), 256)]
    buffers = numpy_buffers().allocate(sizes)
    assert buffers.describe()["buffers"][0] == {"tensor": "input_ids", "direction": "input", "dtype": "int32",
                                                "max shape": "32x128", "bytes": 16384}
    assert buffers.describe()["total_bytes"] == 2 * 16384 + 256


def test_dtype_decides_the_bytes():
    int64 = (TensorSpec("input_ids", True, np.dtype(np.int64), (-1, -1)),)
    half = (TensorSpec("logits", False, np.dtype(np.float16), (-1, 2)),)
    assert tensor_bytes(size_buffers(int64, 4, 10)[0]) == 4 * 10 * 8
    assert tensor_bytes(size_buffers(half, 4, 10)[0]) == 4 * 2 * 2


def test_unknown_dynamic_axes_and_empty_maxima_are_errors():
    odd = (TensorSpec("hidden", False, np.dtype(np.float32), (-1, -1, 64)),)
    with pytest.raises(ConfigError, match="dynamic axis 1"):
        size_buffers(odd, 8, 16)
    with pytest.raises(ConfigError, match="max_batch and max_len >= 1"):
        size_buffers(SPECS, 0, 16)


def test_an_engine_gets_a_buffer_per_tensor_of_its_own_dtype_at_its_profiles_maximum():
    buffers = numpy_buffers()
    engine = EngineDouble(lean, PROFILES, buffers.memory, input_type="INT64")
    assert [(s.name, s.is_input, s.dtype.name, s.shape) for s in engine_tensors(engine, lean)] == [
        ("input_ids", True, "int64", (-1, -1)), ("segment_ids", True, "int64", (-1, -1)),
        ("logits", False, "float32", (-1, 2))]
    buffers.allocate_for(engine, lean)
    assert {n: (s.shape, s.dtype.name) for n, s in buffers.sizes.items()} == {
        "input_ids": ((16, 64), "int64"), "segment_ids": ((16, 64), "int64"), "logits": ((16, 2), "float32")}
    assert [e for e in buffers.memory.log if e[0] == "alloc"] == [("alloc", 8192), ("alloc", 8192), ("alloc", 128)]


def test_buffers_are_reused_and_copies_checked():
    buffers = numpy_buffers().allocate(size_buffers(SPECS, 8, 16))
    ptr = buffers.device_ptr("input_ids")
    for shape in [(1, 3), (8, 16), (2, 5)]:
        data = np.arange(np.prod(shape), dtype=np.int32).reshape(shape)
        buffers.to_device("input_ids", data)
        buffers.host_view("input_ids", shape)[...] = -1  # the round trip must bring the data back from the device
        back = buffers.to_host("input_ids", shape)
        buffers.synchronize()
        np.testing.assert_array_equal(back, data)
        assert buffers.device_ptr("input_ids") == ptr  # same memory every call
    assert [n for kind, n in buffers.memory.log if kind == "htod"] == [12, 512, 40]  # only the bytes a call needs
    with pytest.raises(InputError, match=r"needs 136 elements but its buffer holds 128"):
        buffers.to_device("input_ids", np.zeros((8, 17), np.int32))
    with pytest.raises(InputError, match=r"input_ids must be int32 \(the engine's type\), got float32"):
        buffers.to_device("input_ids", np.zeros((1, 3), np.float32))
    with pytest.raises(InputError, match="no buffer for tensor 'token_type_ids'"):
        buffers.host_view("token_type_ids", (1, 1))
    with pytest.raises(BackendError, match="already allocated"):
        buffers.allocate(size_buffers(SPECS, 8, 16))


def test_int32_feeds_fill_int64_buffers():
    buffers = numpy_buffers().allocate(size_buffers((TensorSpec("input_ids", True, np.dtype(np.int64), (-1, -1)),), 2, 4))
    buffers.to_device("input_ids", np.array([[1, 2, 3]], np.int32))
    assert buffers.memory.blocks[buffers.device_ptr("input_ids")][:24].view(np.int64).tolist() == [1, 2, 3]


def test_close_is_deterministic_and_idempotent():
    with numpy_buffers() as buffers:
        buffers.allocate(size_buffers(SPECS, 2, 4))
    assert [e[0] for e in buffers.memory.log if e[0] in ("free", "close")] == ["free"] * 3 + ["close"]
    assert [e[1] for e in buffers.memory.log if e[0] == "free"] == [16, 32, 32]  # reverse order of allocation
    buffers.close()  # the double fails a second free or a second close
    assert buffers.memory.blocks == {} and not buffers.memory.open
    with pytest.raises(BackendError, match="used after close"):
        buffers.host_view("logits", (1, 2))


def test_a_failed_allocation_frees_what_was_made_and_closes():
    class FailsThird(NumpyMemory):
        def alloc(self, nbytes):
            if len(self.blocks) == 2:
                raise BackendError("pycuda: mem_alloc(256) failed (MemoryError: cuMemAlloc failed: out of memory).")
            return super().alloc(nbytes)

    buffers = DeviceBuffers(FailsThird())
    with pytest.raises(BackendError, match="out of memory"):
        buffers.allocate(size_buffers(SPECS, 8, 16))
    assert buffers.memory.blocks == {} and not buffers.memory.open  # both buffers freed, the context popped
    assert buffers.sizes == {}
    with pytest.raises(BackendError, match="used after close"):
        buffers.allocate(size_buffers(SPECS, 8, 16))


def test_kinds_report_why_they_are_unavailable(monkeypatch):
    import importlib

    real = importlib.import_module

    def no_cuda(name, *a, **k):
        if name.startswith(("cuda", "pycuda")):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", no_cuda)
    assert set(BUFFER_KINDS) == {"cuda-python", "pycuda", "torch"}
    ok, why = buffer_kind_status("pycuda")
    assert not ok and "pip install pycuda" in why
    with pytest.raises(TensorRTUnavailableError, match="cannot create cuda-python buffers: cuda-python: not installed"):
        make_buffers("cuda-python")
    with pytest.raises(ConfigError, match="unknown buffer kind 'cupy'"):
        buffer_kind_status("cupy")


def test_torch_kind_needs_a_cuda_device():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: this test covers CPU-only machines")
    assert buffer_kind_status("torch") == (False, "torch: installed, but this PyTorch sees no CUDA device.")


# ------------------------------------------------------------------ the three real memory objects, on fakes
# These fakes only record the order of calls and fail on request: the device must be made current before
# anything else, and a failure must release what was made. That the real calls work is proven on a GPU by
# environment/gpu/check_buffers.py.
class FakeCudart:
    """The part of ``cuda.bindings.runtime`` CudaPythonMemory calls, returning ``(status, *values)`` tuples."""

    class cudaError_t:  # noqa: N801 - the real names
        cudaSuccess, cudaErrorMemoryAllocation = 0, 2

    class cudaMemcpyKind:  # noqa: N801
        cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost = 1, 2

    def __init__(self, fail=()):
        self.calls, self.fail, self._host = [], set(fail), []

    def _result(self, name, args, *values):
        self.calls.append((name, args))
        return (self.cudaError_t.cudaErrorMemoryAllocation if name in self.fail else 0, *values)

    def cudaSetDevice(self, device):  # noqa: N802
        return self._result("cudaSetDevice", (device,))

    def cudaStreamCreate(self):  # noqa: N802
        return self._result("cudaStreamCreate", (), 0x5)

    def cudaMallocHost(self, nbytes):  # noqa: N802
        self._host.append(ctypes.create_string_buffer(nbytes))
        return self._result("cudaMallocHost", (nbytes,), ctypes.addressof(self._host[-1]))

    def cudaMalloc(self, nbytes):  # noqa: N802
        return self._result("cudaMalloc", (nbytes,), 0x20000)

    def cudaFreeHost(self, ptr):  # noqa: N802
        return self._result("cudaFreeHost", (ptr,))

    def cudaFree(self, ptr):  # noqa: N802
        return self._result("cudaFree", (ptr,))

    def cudaStreamDestroy(self, stream):  # noqa: N802
        return self._result("cudaStreamDestroy", (stream,))

    def cudaGetErrorName(self, err):  # noqa: N802
        return 0, b"cudaErrorMemoryAllocation"

    def cudaGetErrorString(self, err):  # noqa: N802
        return 0, b"out of memory"


def test_cuda_python_sets_the_device_first_and_releases_everything_when_cudamalloc_fails(monkeypatch):
    rt = FakeCudart(fail={"cudaMalloc"})
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", rt)
    buffers = DeviceBuffers(CudaPythonMemory(1))
    assert rt.calls == [("cudaSetDevice", (1,)), ("cudaStreamCreate", ())]
    with pytest.raises(BackendError, match=r"cudaMalloc\(512\) failed with cudaErrorMemoryAllocation \(out of memory\)"):
        buffers.allocate(size_buffers(SPECS, 8, 16))
    assert rt.calls[2:] == [("cudaMallocHost", (512,)), ("cudaMalloc", (512,)),
                            ("cudaFreeHost", (ctypes.addressof(rt._host[0]),)), ("cudaStreamDestroy", (0x5,))]


def test_pycuda_pushes_the_device_context_first_and_pops_it_when_opening_fails(monkeypatch):
    calls = []

    class Error(Exception):
        pass

    class Context:
        def push(self):
            calls.append("push")

        def detach(self):
            calls.append("detach")

        @staticmethod
        def pop():
            calls.append("pop")

    def stream():
        raise Error("cuStreamCreate failed: out of memory")

    driver = SimpleNamespace(Error=Error, Context=Context, Stream=stream, init=lambda: calls.append("init"),
                             Device=lambda n: SimpleNamespace(retain_primary_context=lambda: calls.append(f"device {n}") or Context()))
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    with pytest.raises(BackendError, match=r"pycuda: Stream\(\) failed \(Error: cuStreamCreate failed"):
        PycudaMemory(2)
    assert calls == ["init", "device 2", "push", "pop", "detach"]


def test_torch_makes_its_device_current_before_creating_the_stream(monkeypatch):
    calls = []
    cuda = SimpleNamespace(is_available=lambda: True, set_device=lambda d: calls.append(("set_device", d)),
                           Stream=lambda device: calls.append(("Stream", device)) or SimpleNamespace(cuda_stream=9))
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda))
    memory = TorchMemory(3)
    assert calls == [("set_device", 3), ("Stream", 3)] and memory.stream == 9 and memory.device == 3
