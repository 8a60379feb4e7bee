"""EngineRunner's use of the TensorRT 10/11 API, driven through doubles of the real TensorRT classes.

The engine and context here are ``create_autospec`` instances of NVIDIA's real ``ICudaEngine`` and
``IExecutionContext`` (tensorrt_lean_bindings), so any attribute TensorRT lacks fails; their behaviour is
scripted in tests/trt_doubles.py. These tests check this project's call sequence and bookkeeping; the CUDA
memory part is proven on a GPU by environment/gpu/check_buffers.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.errors import BackendError, EngineMismatchError, InputError, MissingArtifactError
from helpers.trt import compat
from helpers.trt.runtime import EngineRunner, LoadedEngine, io_specs_from_engine, io_specs_from_onnx, load_engine, profiles_from_engine
from helpers.trt.smoke import smoke_onnx

from trt_doubles import NumpyBuffers, context_double, engine_double

lean = pytest.importorskip("tensorrt_lean_bindings", reason="pip install -r environment/requirements-trt-check.txt")

PROFILES = [((1, 1), (1, 48), (1, 64)), ((2, 1), (16, 48), (16, 64))]


def make_runner(profiles=PROFILES, input_type="INT32"):
    engine = engine_double(lean, profiles, input_type=input_type)
    buffers = NumpyBuffers()
    ctx = context_double(lean, engine, buffers)
    engine.create_execution_context.return_value = ctx
    loaded = LoadedEngine(lean, None, engine, compat.capturing_logger(lean, echo=False), None)
    return EngineRunner(loaded, buffers=buffers), engine, ctx, buffers


def feed(batch, seq, seed=0):
    rng = np.random.default_rng(seed)
    return {"input_ids": rng.integers(0, 500, (batch, seq), dtype=np.int32),
            "segment_ids": rng.integers(0, 2, (batch, seq), dtype=np.int32)}


def expected(f):
    return np.stack([f["input_ids"].sum(1), f["segment_ids"].sum(1)], 1).astype(np.float32)


def test_io_specs_read_dtypes_from_the_engine():
    engine = engine_double(lean, PROFILES, input_type="INT64")
    specs = io_specs_from_engine(engine, lean)
    assert [(s.name, s.is_input, s.dtype.name, s.shape) for s in specs] == [
        ("input_ids", True, "int64", (-1, -1)), ("segment_ids", True, "int64", (-1, -1)),
        ("logits", False, "float32", (-1, 2))]


def test_profiles_are_read_from_the_engine():
    plan = profiles_from_engine(engine_double(lean, PROFILES))
    assert [p.label() for p in plan.profiles] == ["batch 1-1 (opt 1) x length 1-64 (opt 48)",
                                                  "batch 2-16 (opt 16) x length 1-64 (opt 48)"]


def test_buffers_are_allocated_once_at_the_profile_maximum():
    runner, _, _, buffers = make_runner()
    sizes = {b.name: (b.max_shape, b.nbytes) for b in runner.buffer_plan}
    assert sizes == {"input_ids": ((16, 64), 16 * 64 * 4), "segment_ids": ((16, 64), 16 * 64 * 4),
                     "logits": ((16, 2), 16 * 2 * 4)}
    for batch, seq in [(1, 5), (16, 64), (3, 17), (1, 64)]:
        f = feed(batch, seq, seed=batch * seq)
        np.testing.assert_array_equal(runner.infer(f)["logits"], expected(f))
    allocations = [e for e in buffers.log if e[0].startswith("alloc")]
    assert len(allocations) == 6  # 3 tensors x (pinned host + device), once


def test_each_call_sets_shapes_addresses_and_runs_on_the_stream():
    runner, _, ctx, buffers = make_runner()
    ctx.reset_mock()
    f = feed(3, 9)
    runner.infer(f)
    ctx.set_input_shape.assert_any_call("input_ids", (3, 9))
    ctx.set_input_shape.assert_any_call("segment_ids", (3, 9))
    assert {c.args[0] for c in ctx.set_tensor_address.call_args_list} == {"input_ids", "segment_ids", "logits"}
    ctx.execute_async_v3.assert_called_once_with(buffers.stream_handle)
    copies = [e for e in buffers.log[-5:]]
    assert copies[-2:] == [("dtoh", 3 * 2 * 4), ("sync", None)]  # only the used bytes come back


def test_profile_switches_only_when_the_shape_needs_another():
    runner, _, ctx, _ = make_runner()
    ctx.reset_mock()
    runner.infer(feed(1, 10))
    runner.infer(feed(1, 30))
    runner.infer(feed(8, 30))
    runner.infer(feed(4, 12))
    assert [c.args for c in ctx.set_optimization_profile_async.call_args_list] == [(0, 77), (1, 77)]
    assert runner.active_profile == 1


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


def test_a_false_from_tensorrt_becomes_a_backend_error():
    runner, _, ctx, _ = make_runner()
    ctx.execute_async_v3.side_effect = lambda stream: False
    with pytest.raises(BackendError, match="execute_async_v3 returned False"):
        runner.infer(feed(1, 3))


def test_close_frees_everything_once():
    runner, _, _, buffers = make_runner()
    runner.close()
    runner.close()
    assert buffers.memory == {} and not buffers.context_open
    assert sum(1 for e in buffers.log if e[0] == "destroy_stream") == 1


def test_io_specs_from_onnx_match_the_contract(tmp_path):
    specs = io_specs_from_onnx(smoke_onnx(tmp_path / "smoke.onnx"))
    assert [(s.name, s.is_input, s.dtype.name, s.shape) for s in specs] == [
        ("input_ids", True, "int32", (-1, -1)), ("segment_ids", True, "int32", (-1, -1)),
        ("logits", False, "float32", (-1, 2))]


def test_missing_files_name_the_notebook_to_run(tmp_path):
    with pytest.raises(MissingArtifactError, match="02_onnx_export"):
        io_specs_from_onnx(tmp_path / "none.onnx")
    with pytest.raises(MissingArtifactError, match="04_build_engine"):
        load_engine(tmp_path / "none.plan", trt=lean)


def test_undeserializable_engine_reports_tensorrt_messages(tmp_path):
    class RuntimeDouble:  # a real Runtime needs CUDA; this one fails the way TensorRT reports it
        def __init__(self, logger):
            self.logger = logger

        def deserialize_cuda_engine(self, data):
            self.logger.log(lean.ILogger.Severity.ERROR, "Serialization assertion magicTag failed")
            return None

    module = type("TrtWithRuntimeDouble", (), {"Runtime": RuntimeDouble, "ILogger": lean.ILogger,
                                              "__version__": lean.__version__})
    (tmp_path / "bad.plan").write_bytes(b"not an engine")
    with pytest.raises(EngineMismatchError, match="could not deserialize bad.plan: Serialization assertion magicTag"):
        load_engine(tmp_path / "bad.plan", trt=module)
