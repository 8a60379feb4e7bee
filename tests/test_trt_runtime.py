"""EngineRunner's use of the TensorRT 10/11 API, driven through strict doubles of the real TensorRT classes.

The engine and context are the doubles of tests/trt_doubles.py: only members NVIDIA's real ``ICudaEngine`` and
``IExecutionContext`` have, with their parameter names (tests/test_trt_doubles.py checks both against
``tensorrt_lean_bindings``), and TensorRT's rules: profile 0 active at first, input shapes cleared by a
profile switch, a shape outside the active profile refused. These tests check this project's call sequence
and bookkeeping; the CUDA memory part is proven on a GPU by environment/gpu/check_buffers.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.errors import BackendError, EngineMismatchError, InputError, MissingArtifactError
from helpers.trt import compat, runtime
from helpers.trt.runtime import EngineRunner, LoadedEngine, io_specs_from_engine, load_engine, open_engine, profiles_from_engine

from trt_doubles import EngineDouble, NumpyMemory, module_with_runtime, numpy_buffers, refuse

lean = pytest.importorskip("tensorrt_lean_bindings", reason="pip install -r environment/requirements-trt-check.txt")

PROFILES = [((1, 1), (1, 48), (1, 64)), ((2, 1), (16, 48), (16, 64))]


def make_runner(profiles=PROFILES, input_type="INT32", buffers=None):
    buffers = buffers or numpy_buffers()
    logger = compat.capturing_logger(lean, echo=False)
    engine = EngineDouble(lean, profiles, buffers.memory, logger, input_type=input_type)
    runner = EngineRunner(LoadedEngine(lean, None, engine, logger, Path("model.fp16.engine")), buffers)
    return runner, engine, engine.contexts[-1], buffers


def feed(batch, seq, seed=0):
    rng = np.random.default_rng(seed)
    return {"input_ids": rng.integers(0, 500, (batch, seq), dtype=np.int32),
            "segment_ids": rng.integers(0, 2, (batch, seq), dtype=np.int32)}


def expected(f):
    return np.stack([f["input_ids"].sum(1), f["segment_ids"].sum(1)], 1).astype(np.float32)


def names(ctx, since=0):
    return [name for name, _ in ctx.calls[since:]]


def test_io_specs_read_dtypes_from_the_engine():
    specs = io_specs_from_engine(EngineDouble(lean, PROFILES, input_type="INT64"), lean)
    assert [(s.name, s.is_input, s.dtype.name, s.shape) for s in specs] == [
        ("input_ids", True, "int64", (-1, -1)), ("segment_ids", True, "int64", (-1, -1)),
        ("logits", False, "float32", (-1, 2))]


def test_profiles_are_read_from_the_engine():
    profile_set = profiles_from_engine(EngineDouble(lean, PROFILES))
    assert [p.label() for p in profile_set.profiles] == ["batch 1-1 (opt 1) x length 1-64 (opt 48)",
                                                  "batch 2-16 (opt 16) x length 1-64 (opt 48)"]


def test_int64_engines_get_int64_buffers_and_the_right_answers():
    runner, *_ = make_runner(input_type="INT64")
    assert {b.name: b.dtype.name for b in runner.buffer_sizes} == {"input_ids": "int64", "segment_ids": "int64",
                                                                  "logits": "float32"}
    f = feed(3, 7)
    np.testing.assert_array_equal(runner.infer(f)["logits"], expected(f))


def test_buffers_are_allocated_once_at_the_profile_maximum():
    runner, _, _, buffers = make_runner()
    sizes = {b.name: (b.max_shape, b.nbytes) for b in runner.buffer_sizes}
    assert sizes == {"input_ids": ((16, 64), 16 * 64 * 4), "segment_ids": ((16, 64), 16 * 64 * 4),
                     "logits": ((16, 2), 16 * 2 * 4)}
    for batch, seq in [(1, 5), (16, 64), (3, 17), (1, 64)]:
        f = feed(batch, seq, seed=batch * seq)
        np.testing.assert_array_equal(runner.infer(f)["logits"], expected(f))
    assert [e for e in buffers.memory.log if e[0] == "alloc"] == [("alloc", 4096), ("alloc", 4096), ("alloc", 128)]


def test_each_call_selects_the_profile_then_sets_shapes_then_addresses_then_runs():
    runner, _, ctx, buffers = make_runner()
    start = len(ctx.calls)
    runner.infer(feed(3, 9))  # profile 1 is active after construction: no switch needed
    assert names(ctx, start) == ["set_input_shape", "set_input_shape", "infer_shapes", "set_tensor_address",
                                 "set_tensor_address", "set_tensor_address", "execute_async_v3"]
    assert [args for name, args in ctx.calls[start:start + 2]] == [("input_ids", (3, 9)), ("segment_ids", (3, 9))]
    assert {args[0] for name, args in ctx.calls if name == "set_tensor_address"} == {"input_ids", "segment_ids", "logits"}
    assert ctx.calls[-1] == ("execute_async_v3", (buffers.stream_handle,))
    assert buffers.memory.log[-2:] == [("dtoh", 3 * 2 * 4), ("sync", None)]  # only the used bytes come back
    start = len(ctx.calls)
    runner.infer(feed(1, 9))  # needs profile 0: the switch comes before the shapes, on the buffers' stream
    assert names(ctx, start)[:3] == ["set_optimization_profile_async", "set_input_shape", "set_input_shape"]
    assert ctx.calls[start][1] == (0, buffers.stream_handle)


def test_shapes_set_before_the_profile_switch_are_refused_by_tensorrt():
    """What the runner must never do, shown on the double: TensorRT checks a shape against the ACTIVE profile,
    and a switch throws the shapes away (so swapping the two steps in ``EngineRunner.infer`` fails)."""
    _, engine, ctx, _ = make_runner()
    ctx.set_optimization_profile_async(0, 77)
    assert ctx.set_input_shape("input_ids", (8, 30)) is False  # batch 8 is outside profile 0
    assert "outside optimization profile 0" in engine._logger.errors()[-1]
    assert ctx.set_optimization_profile_async(1, 77) and ctx.set_input_shape("input_ids", (8, 30))
    assert ctx.set_optimization_profile_async(1, 77) and ctx.infer_shapes() == ["input_ids", "segment_ids"]


def test_profile_switches_only_when_the_shape_needs_another():
    runner, _, ctx, _ = make_runner()
    start = len(ctx.calls)
    for batch, seq in [(1, 10), (1, 30), (8, 30), (4, 12)]:
        f = feed(batch, seq)
        np.testing.assert_array_equal(runner.infer(f)["logits"], expected(f))
    assert [args for name, args in ctx.calls[start:] if name == "set_optimization_profile_async"] == [(0, 77), (1, 77)]
    assert runner.active_profile == 1 and ctx.profile == 1


def test_outputs_are_copies_not_views_of_the_reused_buffer():
    runner, *_ = make_runner()
    first = runner.infer(feed(2, 4, seed=1))["logits"]
    kept = first.copy()
    runner.infer(feed(2, 4, seed=2))
    np.testing.assert_array_equal(first, kept)


def test_shape_outside_every_profile_names_the_allowed_range():
    runner, *_ = make_runner()
    with pytest.raises(InputError, match=r"17 x 10 is outside every optimization profile .*at most 16 rows"):
        runner.infer(feed(17, 10))
    with pytest.raises(InputError, match=r"at most 64 tokens"):
        runner.infer(feed(1, 65))


def test_wrong_feed_names_and_dtypes_are_input_errors():
    runner, *_ = make_runner()
    with pytest.raises(InputError, match=r"missing \['segment_ids'\]"):
        runner.infer({"input_ids": np.zeros((1, 3), np.int32)})
    with pytest.raises(InputError, match="must be int32 .read from the engine., got float32"):
        runner.infer({"input_ids": np.zeros((1, 3), np.float32), "segment_ids": np.zeros((1, 3), np.float32)})


@pytest.mark.parametrize("method,call", [
    ("set_input_shape", r"set_input_shape\('input_ids', \(2, 3\)\)"),
    ("set_tensor_address", r"set_tensor_address\('input_ids'\)"),
    ("execute_async_v3", r"execute_async_v3"),
])
def test_a_false_from_tensorrt_names_the_call_and_tensorrts_message(method, call):
    runner, _, ctx, _ = make_runner()
    refuse(ctx, method, f"{method}: Error Code 3: API Usage Error (double says no)")
    with pytest.raises(BackendError, match=rf"TensorRT {call} returned False: {method}: Error Code 3.*double says no"):
        runner.infer(feed(2, 3))


def test_a_refused_profile_switch_is_an_error_and_is_retried_on_the_next_call():
    runner, _, ctx, _ = make_runner()
    refuse(ctx, "set_optimization_profile_async", "setOptimizationProfileAsync: profile 0 is in use by another context")
    with pytest.raises(BackendError, match=r"set_optimization_profile_async\(0\) returned False: .*in use by another"):
        runner.infer(feed(1, 3))
    assert runner.active_profile is None
    ctx.refusals.clear()
    f = feed(1, 3)
    np.testing.assert_array_equal(runner.infer(f)["logits"], expected(f))
    assert runner.active_profile == 0


def test_a_misaligned_device_address_is_refused_as_tensorrt_documents():
    class Misaligned(NumpyMemory):
        def alloc(self, nbytes):
            host, ptr = super().alloc(nbytes)
            self.blocks[ptr + 8] = self.blocks.pop(ptr)
            return host, ptr + 8

    runner, *_ = make_runner(buffers=runtime.DeviceBuffers(Misaligned()))
    with pytest.raises(BackendError, match=r"set_tensor_address\('input_ids'\) returned False: .*not 256-byte aligned"):
        runner.infer(feed(2, 3))


def test_shapes_tensorrt_cannot_infer_are_an_error():
    runner, _, ctx, _ = make_runner()
    ctx.infer_shapes = lambda: ["segment_ids"]
    with pytest.raises(BackendError, match=r"could not infer the shapes of \['segment_ids'\]"):
        runner.infer(feed(2, 3))


def test_close_drops_tensorrt_objects_before_freeing_the_buffers_once():
    seen = []

    class Watching(NumpyMemory):
        def close(self):
            seen.append((runner._context, runner.loaded))
            super().close()

    runner, engine, _, buffers = make_runner(buffers=runtime.DeviceBuffers(Watching()))
    loaded = runner.loaded
    runner.close()
    runner.close()
    assert seen == [(None, None)] and loaded.engine is None and loaded.runtime is None
    assert buffers.memory.blocks == {} and not buffers.memory.open


def test_a_failed_allocation_releases_the_context_and_everything_allocated():
    class Full(NumpyMemory):
        def alloc(self, nbytes):
            if len(self.blocks) == 2:
                raise BackendError("cuda-python: cudaMalloc(128) failed with cudaErrorMemoryAllocation (out of memory).")
            return super().alloc(nbytes)

    buffers = runtime.DeviceBuffers(Full())
    logger = compat.capturing_logger(lean, echo=False)
    engine = EngineDouble(lean, PROFILES, buffers.memory, logger)
    loaded = LoadedEngine(lean, None, engine, logger, Path("model.engine"))
    with pytest.raises(BackendError, match="out of memory"):
        EngineRunner(loaded, buffers)
    assert buffers.memory.blocks == {} and not buffers.memory.open and loaded.engine is None


def test_open_engine_opens_the_device_before_deserializing_and_closes_it_on_failure(tmp_path, monkeypatch):
    events = []
    memory = NumpyMemory(device=1)
    engine = EngineDouble(lean, PROFILES, memory)

    def make_buffers(kind, device):
        events.append(("buffers opened", kind, device))
        return runtime.DeviceBuffers(memory)

    module = module_with_runtime(lean, engine)
    original = module.Runtime.deserialize_cuda_engine

    def deserialize(self, serialized_engine):
        events.append(("engine deserialized",))
        return original(self, serialized_engine)

    monkeypatch.setattr(module.Runtime, "deserialize_cuda_engine", deserialize)
    monkeypatch.setattr(runtime, "make_buffers", make_buffers)
    (tmp_path / "model.engine").write_bytes(b"engine bytes")
    with open_engine(tmp_path / "model.engine", trt=module, buffers="pycuda", device=1) as runner:
        assert runner.buffers.device == 1 and len(engine.contexts) == 1
    assert events == [("buffers opened", "pycuda", 1), ("engine deserialized",)]

    failing = module_with_runtime(lean, None)  # deserialization fails
    memory.open = True
    with pytest.raises(EngineMismatchError):
        open_engine(tmp_path / "model.engine", trt=failing, buffers="pycuda", device=1)
    assert not memory.open  # the buffers (pycuda: its pushed context) were closed


def test_missing_engine_names_the_notebook_to_run(tmp_path):
    with pytest.raises(MissingArtifactError, match="04_build_engine"):
        load_engine(tmp_path / "none.engine", trt=lean)


def test_undeserializable_engine_reports_tensorrt_messages(tmp_path):
    (tmp_path / "bad.engine").write_bytes(b"not an engine")
    with pytest.raises(EngineMismatchError, match="could not deserialize bad.engine: Serialization assertion magicTag"):
        load_engine(tmp_path / "bad.engine", trt=module_with_runtime(lean))
