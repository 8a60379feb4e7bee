"""Buffer sizing and the shared buffer bookkeeping (the CUDA implementations run in environment/gpu/)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.errors import BackendError, ConfigError, InputError, TensorRTUnavailableError
from helpers.trt.buffers import (BUFFER_KINDS, BufferSpec, TensorSpec, buffer_kind_status, make_buffers, plan_buffers,
                                 total_bytes)

from trt_doubles import NumpyBuffers

SPECS = (TensorSpec("input_ids", True, np.dtype(np.int32), (-1, -1)),
         TensorSpec("segment_ids", True, np.dtype(np.int32), (-1, -1)),
         TensorSpec("logits", False, np.dtype(np.float32), (-1, 2)))


def test_plan_sizes_every_tensor_at_the_maximum():
    plan = plan_buffers(SPECS, max_batch=32, max_len=128)
    assert [(b.name, b.max_shape, b.nbytes) for b in plan] == [
        ("input_ids", (32, 128), 32 * 128 * 4), ("segment_ids", (32, 128), 32 * 128 * 4), ("logits", (32, 2), 256)]
    assert total_bytes(plan) == 2 * 16384 + 256
    assert plan[0].row() == {"tensor": "input_ids", "direction": "input", "dtype": "int32", "max shape": "32x128",
                             "bytes": 16384}


def test_dtype_decides_the_bytes():
    int64 = (TensorSpec("input_ids", True, np.dtype(np.int64), (-1, -1)),)
    half = (TensorSpec("logits", False, np.dtype(np.float16), (-1, 2)),)
    assert plan_buffers(int64, 4, 10)[0].nbytes == 4 * 10 * 8
    assert plan_buffers(half, 4, 10)[0].nbytes == 4 * 2 * 2


def test_given_maxima_win_and_unknown_dynamic_axes_are_errors():
    odd = (TensorSpec("hidden", False, np.dtype(np.float32), (-1, -1, 64)),)
    with pytest.raises(ConfigError, match="dynamic axis 1"):
        plan_buffers(odd, 8, 16)
    assert plan_buffers(odd, 8, 16, max_shapes={"hidden": (8, 16, 64)})[0].nbytes == 8 * 16 * 64 * 4
    with pytest.raises(ConfigError, match="max_batch and max_len >= 1"):
        plan_buffers(SPECS, 0, 16)


def test_buffers_are_reused_and_views_checked():
    buffers = NumpyBuffers().allocate(plan_buffers(SPECS, 8, 16))
    ptr = buffers.device_ptr("input_ids")
    for shape in [(1, 3), (8, 16), (2, 5)]:
        data = np.arange(np.prod(shape), dtype=np.int32).reshape(shape)
        view = buffers.host_view("input_ids", shape)
        view[...] = data
        buffers.to_device("input_ids", view.nbytes)
        view[...] = -1  # the round trip must bring the data back from "device" memory
        buffers.to_host("input_ids", view.nbytes)
        buffers.synchronize()
        np.testing.assert_array_equal(buffers.host_view("input_ids", shape), data)
        assert buffers.device_ptr("input_ids") == ptr  # same memory every call
    with pytest.raises(InputError, match=r"needs 136 elements but its buffer holds 128"):
        buffers.host_view("input_ids", (8, 17))
    with pytest.raises(InputError, match="outside its buffer of 512 bytes"):
        buffers.to_device("input_ids", 513)
    with pytest.raises(InputError, match="no buffer for tensor 'token_type_ids'"):
        buffers.host_view("token_type_ids", (1, 1))
    with pytest.raises(BackendError, match="already allocated"):
        buffers.allocate(plan_buffers(SPECS, 8, 16))


def test_close_is_deterministic_and_idempotent():
    with NumpyBuffers() as buffers:
        buffers.allocate(plan_buffers(SPECS, 2, 4))
    frees = [e[0] for e in buffers.log if e[0].startswith(("free", "destroy"))]
    assert frees == ["free_device", "free_host"] * 3 + ["destroy_stream"]
    buffers.close()
    assert [e[0] for e in buffers.log].count("destroy_stream") == 1
    with pytest.raises(BackendError, match="used after close"):
        buffers.host_view("logits", (1, 2))


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


def test_bufferspec_counts_elements():
    assert BufferSpec("x", True, np.dtype(np.int32), (3, 7)).elements == 21
