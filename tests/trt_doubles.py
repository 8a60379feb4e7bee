"""Test doubles for the TensorRT tests (no GPU, no TensorRT builder here). Read this before trusting them.

* :class:`NumpyBuffers` is a :class:`~helpers.trt.buffers.DeviceBuffers` whose "device" memory is numpy
  arrays. It exercises the base class's bookkeeping (sizes, reuse, views, close) on a CPU. The real
  CUDA implementations are proven on a GPU by environment/gpu/check_buffers.py.
* :func:`engine_double` / :func:`context_double` are ``unittest.mock.create_autospec`` instances of the
  **real** TensorRT classes from ``tensorrt_lean_bindings``, so they refuse any attribute the real
  ``ICudaEngine`` / ``IExecutionContext`` lack. Their behaviour (shapes, a "kernel" that sums token ids)
  is written here: they test how :class:`~helpers.trt.runtime.EngineRunner` drives TensorRT (the call
  sequence, profile switching, buffer use), not TensorRT itself.
* :class:`FakeBuilderModule` stands in for the ``tensorrt`` module's builder side with or without
  ``BuilderFlag.FP16``: it tests this project's 10.x / 11.x branching, not TensorRT.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any
from unittest import mock

import numpy as np

from helpers.trt.buffers import DeviceBuffers


class NumpyBuffers(DeviceBuffers):
    """DeviceBuffers with numpy arrays as "device" memory (pointers are fake integers)."""

    kind = "numpy-double"
    _ptrs = itertools.count(0x1000, 0x1000)

    def _open(self, device: int) -> None:
        self.memory: dict[int, np.ndarray] = {}
        self.log: list[tuple[str, Any]] = []
        self.context_open = True

    def _create_stream(self) -> Any:
        return 77

    def _stream_handle(self) -> int:
        return self._stream

    def _alloc_host(self, nbytes: int) -> np.ndarray:
        self.log.append(("alloc_host", nbytes))
        return np.zeros(nbytes, np.uint8)

    def _alloc_device(self, nbytes: int) -> Any:
        ptr = next(self._ptrs)
        self.memory[ptr] = np.full(nbytes, 0xAB, np.uint8)
        self.log.append(("alloc_device", nbytes))
        return ptr

    def _device_ptr(self, mem: Any) -> int:
        return mem

    def _htod(self, mem: Any, host: np.ndarray, nbytes: int) -> None:
        self.memory[mem][:nbytes] = host[:nbytes]
        self.log.append(("htod", nbytes))

    def _dtoh(self, host: np.ndarray, mem: Any, nbytes: int) -> None:
        host[:nbytes] = self.memory[mem][:nbytes]
        self.log.append(("dtoh", nbytes))

    def _sync(self) -> None:
        self.log.append(("sync", None))

    def _free_device(self, mem: Any) -> None:
        del self.memory[mem]
        self.log.append(("free_device", mem))

    def _free_host(self, host: np.ndarray) -> None:
        self.log.append(("free_host", host.size))

    def _destroy_stream(self) -> None:
        self.log.append(("destroy_stream", None))

    def _close(self) -> None:
        self.context_open = False


# -------------------------------------------------------------------------------------- runtime doubles
def engine_double(trt: Any, profiles: list[tuple[tuple[int, int], tuple[int, int], tuple[int, int]]],
                  labels: int = 2, input_type: str = "INT32") -> Any:
    """An autospec'd ICudaEngine: inputs input_ids/segment_ids [-1,-1], output logits float32 [-1, labels]."""
    names = ["input_ids", "segment_ids", "logits"]
    engine = mock.create_autospec(trt.ICudaEngine, instance=True)
    engine.num_io_tensors = 3
    engine.num_optimization_profiles = len(profiles)
    engine.get_tensor_name.side_effect = lambda i: names[i]
    engine.get_tensor_mode.side_effect = lambda n: trt.TensorIOMode.OUTPUT if n == "logits" else trt.TensorIOMode.INPUT
    engine.get_tensor_dtype.side_effect = lambda n: trt.DataType.FLOAT if n == "logits" else getattr(trt.DataType, input_type)
    engine.get_tensor_shape.side_effect = lambda n: (-1, labels) if n == "logits" else (-1, -1)
    engine.get_tensor_profile_shape.side_effect = lambda n, i: [list(s) for s in profiles[i]]
    engine.labels = labels
    return engine


def context_double(trt: Any, engine: Any, buffers: "NumpyBuffers | None" = None) -> Any:
    """An autospec'd IExecutionContext whose execute_async_v3 writes [sum(ids), sum(seg)] into logits."""
    ctx = mock.create_autospec(trt.IExecutionContext, instance=True)
    state = SimpleNamespace(profile=None, shapes={}, addresses={}, buffers=buffers)

    def set_profile(index, stream):
        state.profile = index
        return True

    def set_input_shape(name, shape):
        state.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(name):
        if name == "logits":
            return (state.shapes["input_ids"][0], engine.labels)
        return state.shapes.get(name, (-1, -1))

    def set_tensor_address(name, ptr):
        state.addresses[name] = ptr
        return True

    def execute(stream):
        mem = state.buffers.memory
        batch, seq = state.shapes["input_ids"]
        count = batch * seq
        ids = mem[state.addresses["input_ids"]][: count * 4].view(np.int32).reshape(batch, seq)
        seg = mem[state.addresses["segment_ids"]][: count * 4].view(np.int32).reshape(batch, seq)
        out = np.zeros((batch, engine.labels), np.float32)
        out[:, 0], out[:, 1] = ids.sum(axis=1), seg.sum(axis=1)
        mem[state.addresses["logits"]][: out.nbytes] = out.view(np.uint8).reshape(-1)
        return True

    ctx.set_optimization_profile_async.side_effect = set_profile
    ctx.set_input_shape.side_effect = set_input_shape
    ctx.get_tensor_shape.side_effect = get_tensor_shape
    ctx.set_tensor_address.side_effect = set_tensor_address
    ctx.infer_shapes.return_value = []
    ctx.execute_async_v3.side_effect = execute
    ctx.state = state
    return ctx


# -------------------------------------------------------------------------------------- builder double
class _Recorder:
    """An object that records method calls made on it (name, args) into a shared list."""

    def __init__(self, log: list, label: str, **returns: Any) -> None:
        self._log, self._label, self._returns = log, label, returns

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def method(*args: Any, **kwargs: Any) -> Any:
            self._log.append((f"{self._label}.{name}", args + tuple(kwargs.items())))
            value = self._returns.get(name)
            return value(*args, **kwargs) if callable(value) else value
        return method


class FakeBuilderModule:
    """A stand-in for the builder side of the ``tensorrt`` module, with or without ``BuilderFlag.FP16``.

    ``parse_ok=False`` makes the parser fail with two recorded errors; ``build_ok=False`` makes
    ``build_serialized_network`` return None with an error logged, as TensorRT does.
    """

    class ILogger:
        def __init__(self) -> None:
            pass

        class Severity:
            pass

    def __init__(self, version: str, fp16_flag: bool, parse_ok: bool = True, build_ok: bool = True) -> None:
        self.__version__ = version
        self.calls: list[tuple[str, tuple]] = []
        self.BuilderFlag = SimpleNamespace(**({"FP16": "FLAG_FP16"} if fp16_flag else {}), TF32="FLAG_TF32")
        self.MemoryPoolType = SimpleNamespace(WORKSPACE="POOL_WORKSPACE")
        self.DataType = SimpleNamespace(INT32="DT_INT32", FLOAT="DT_FLOAT")
        self.parse_ok, self.build_ok = parse_ok, build_ok
        self.cache_in: list[bytes] = []

    def nptype(self, dtype: Any) -> Any:
        return {"DT_INT32": np.int32, "DT_FLOAT": np.float32}[dtype]

    def Builder(self, logger: Any) -> Any:  # noqa: N802 - TensorRT's name
        self.logger = logger
        tensors = [SimpleNamespace(name="input_ids", dtype="DT_INT32", shape=(-1, -1)),
                   SimpleNamespace(name="segment_ids", dtype="DT_INT32", shape=(-1, -1))]
        network = _Recorder(self.calls, "network", num_inputs=None)
        network.num_inputs, network.num_outputs = 2, 1
        network.get_input = lambda i: tensors[i]
        network.get_output = lambda i: SimpleNamespace(name="logits", dtype="DT_FLOAT", shape=(-1, 2))
        self.network = network

        def create_timing_cache(data: bytes) -> Any:
            self.cache_in.append(bytes(data))
            return _Recorder(self.calls, "timing_cache", serialize=lambda: b"CACHE-" + str(len(self.cache_in)).encode())

        config = _Recorder(self.calls, "builder_config", add_optimization_profile=lambda p: 0,
                           create_timing_cache=create_timing_cache, set_timing_cache=lambda c, ignore_mismatch=None: True,
                           get_timing_cache=lambda: create_timing_cache(b"after-build"))

        def build(net: Any, cfg: Any) -> Any:
            if not self.build_ok:
                logger.log(SimpleNamespace(name="ERROR"), "Error Code 4: out of workspace")
                return None
            return b"ENGINE-BYTES"

        return _Recorder(self.calls, "builder", create_network=lambda *a: network,
                         create_builder_config=lambda: config,
                         create_optimization_profile=lambda: _Recorder(self.calls, "trt_profile"),
                         build_serialized_network=build)

    def OnnxParser(self, network: Any, logger: Any) -> Any:  # noqa: N802 - TensorRT's name
        errors = [SimpleNamespace(desc=lambda: "Unsupported op Foo", code=lambda: 8, node=lambda: 3,
                                  node_name=lambda: "/enc/Foo", node_operator=lambda: "Foo"),
                  SimpleNamespace(desc=lambda: "Invalid node", code=lambda: 5, node=lambda: 7,
                                  node_name=lambda: "/enc/Bar", node_operator=lambda: "Bar")]
        parser = _Recorder(self.calls, "parser", parse_from_file=lambda path: self.parse_ok,
                           get_error=lambda i: errors[i])
        parser.num_errors = 0 if self.parse_ok else 2
        return parser
