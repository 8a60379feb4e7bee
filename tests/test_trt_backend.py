"""TensorRTBackend drives the TensorRT 10/11 runtime API, through strict doubles of the real TensorRT classes.

The engine and context are the doubles of tests/trt_doubles.py: only members NVIDIA's real ``ICudaEngine`` and
``IExecutionContext`` have, with their parameter names (tests/test_trt_doubles.py checks both against
``tensorrt_lean_bindings``), and TensorRT's rules: profile 0 active at first, input shapes cleared by a profile
switch, a shape outside the active profile refused, every address needed before ``execute_async_v3``. Their
"kernel" returns ``[sum(ids), sum(segments)]``. The module handed in is NVIDIA's real lean runtime module with only
``Runtime`` replaced (a real one needs a GPU), and the sidecar check runs for real against a pretended GPU. These
tests check this project's call sequence and bookkeeping; the CUDA memory is proven on a GPU by
environment/gpu/check_buffers.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import helpers.backends.tensorrt as tensorrt_backend
from helpers.backends import Classifier, TensorRTBackend
from helpers.errors import (BackendError, EngineMismatchError, InputError, MissingArtifactError,
                            TensorRTUnavailableError)
from helpers.trt.buffers import DeviceBuffers
from helpers.trt.metadata import EngineTarget

from trt_doubles import EngineDouble, NumpyMemory, engine_on_disk, module_with_runtime, numpy_buffers, refuse, running_here

lean = pytest.importorskip("tensorrt_lean_bindings", reason="pip install -r environment/requirements-trt-check.txt")

PROFILES = [((1, 1), (1, 48), (1, 64)), ((2, 1), (16, 48), (16, 64))]


@pytest.fixture()
def here(monkeypatch):
    """The backend's GPU: what running_target says for the module on the pretended GPU (no nvidia-smi asked)."""
    monkeypatch.setattr(tensorrt_backend, "running_target", lambda trt, device: running_here(trt))


def open_backend(tmp_path, profiles=PROFILES, *, input_type="INT32", buffers=None, precision="fp16", **kwargs):
    buffers = buffers or numpy_buffers()
    engine = EngineDouble(lean, profiles, buffers.memory, input_type=input_type)
    path = engine_on_disk(tmp_path, lean, precision)
    backend = TensorRTBackend(path, buffers=buffers, trt=module_with_runtime(lean, engine), **kwargs)
    return backend, engine, engine.contexts[-1], buffers


def feed(batch, seq, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 500, (batch, seq), dtype=np.int32), rng.integers(0, 2, (batch, seq), dtype=np.int32)


def expected(ids, seg):
    return np.stack([ids.sum(1), seg.sum(1)], 1).astype(np.float32)


def names(ctx, since=0):
    return [name for name, _ in ctx.calls[since:]]


# ----------------------------------------------------------------------------------------------- opening
def test_precision_and_limits_come_from_the_sidecar_and_the_engine(tmp_path, here):
    backend, *_ = open_backend(tmp_path, precision="fp16")
    assert backend.precision == "fp16" and backend.describe()["precision"] == "fp16"  # not the base class's fp32
    assert (backend.max_batch, backend.max_len) == (16, 64)
    assert backend.describe()["profiles"][1] == {"profile": 1, "min": "2x1", "opt": "16x48", "max": "16x64"}
    assert backend.describe()["tensorrt"] == f"tensorrt {lean.__version__}"
    backend.close()
    backend.close()


def test_the_sidecar_is_checked_with_the_onnx_before_any_buffer_is_opened(tmp_path, here, monkeypatch):
    onnx_path = tmp_path / "model.fp16.onnx"
    onnx_path.write_bytes(b"graph v1")
    path = engine_on_disk(tmp_path, lean, onnx_path=onnx_path)
    onnx_path.write_bytes(b"graph v2, re-exported")
    monkeypatch.setattr(tensorrt_backend, "make_buffers", lambda kind, device: pytest.fail("buffers opened for a stale engine"))
    with pytest.raises(EngineMismatchError, match="model.fp16.onnx changed since the build.*Rebuild it with 04_build_engine"):
        TensorRTBackend(path, onnx_path=onnx_path, gpu=1, trt=module_with_runtime(lean, None))
    handed = numpy_buffers()
    with pytest.raises(EngineMismatchError):
        TensorRTBackend(path, onnx_path=onnx_path, buffers=handed, trt=module_with_runtime(lean, None))
    assert not handed.memory.open  # buffers handed over belong to the backend, even when it refuses the engine


def test_the_gpu_is_made_current_before_the_engine_is_deserialized(tmp_path, here, monkeypatch):
    events, memory = [], NumpyMemory(device=1)
    engine = EngineDouble(lean, PROFILES, memory)
    module = module_with_runtime(lean, engine)
    original = module.Runtime.deserialize_cuda_engine

    def deserialize(self, serialized_engine):
        events.append("engine deserialized")
        return original(self, serialized_engine)

    def make_buffers(kind, device):
        events.append(f"{kind} buffers opened on GPU {device}")
        return DeviceBuffers(memory)

    monkeypatch.setattr(module.Runtime, "deserialize_cuda_engine", deserialize)
    monkeypatch.setattr(tensorrt_backend, "make_buffers", make_buffers)
    with TensorRTBackend(engine_on_disk(tmp_path, lean), buffers="pycuda", gpu=1, trt=module) as backend:
        assert backend.device == "cuda:1" and len(engine.contexts) == 1
    assert events == ["pycuda buffers opened on GPU 1", "engine deserialized"]


def test_an_engine_tensorrt_cannot_deserialize_is_refused_with_its_message_and_the_buffers_closed(tmp_path, here):
    buffers = numpy_buffers()
    with pytest.raises(EngineMismatchError, match="could not deserialize model.fp16.engine: Serialization assertion magicTag"):
        TensorRTBackend(engine_on_disk(tmp_path, lean), buffers=buffers, trt=module_with_runtime(lean, None))
    assert not buffers.memory.open


def test_a_missing_engine_names_the_notebook_to_run(tmp_path, here):
    with pytest.raises(MissingArtifactError, match="04_build_engine"):
        TensorRTBackend(tmp_path / "none.engine", buffers=numpy_buffers(), trt=lean)


def test_an_engine_without_the_contract_io_is_refused_and_closed(tmp_path, here):
    buffers = numpy_buffers()
    engine = EngineDouble(lean, PROFILES, buffers.memory)
    engine._names = ["input_ids", "token_type_ids", "logits"]
    with pytest.raises(BackendError, match=r"not the inputs \['input_ids', 'segment_ids'\].*missing \['segment_ids'\]"):
        TensorRTBackend(engine_on_disk(tmp_path, lean), buffers=buffers, trt=module_with_runtime(lean, engine))
    assert buffers.memory.blocks == {} and not buffers.memory.open


def test_a_failed_allocation_releases_the_context_and_everything_allocated(tmp_path, here):
    class Full(NumpyMemory):
        def alloc(self, nbytes):
            if len(self.blocks) == 2:
                raise BackendError("cuda-python: cudaMalloc(128) failed with cudaErrorMemoryAllocation (out of memory).")
            return super().alloc(nbytes)

    with pytest.raises(BackendError, match="out of memory"):
        open_backend(tmp_path, buffers=DeviceBuffers(Full()))


def test_close_drops_tensorrt_objects_before_freeing_the_buffers_once(tmp_path, here):
    seen = []

    class Watching(NumpyMemory):
        def close(self):
            seen.append((backend._context, backend._engine, backend._runtime))
            super().close()

    backend, _, _, buffers = open_backend(tmp_path, buffers=DeviceBuffers(Watching()))
    backend.close()
    backend.close()
    assert seen == [(None, None, None)]
    assert buffers.memory.blocks == {} and not buffers.memory.open


def test_without_tensorrt_the_backend_says_how_to_install(tmp_path, monkeypatch):
    import importlib

    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a: (_ for _ in ()).throw(ImportError(name)) if name in ("tensorrt", "tensorrt_rtx_bindings")
                        else real(name, *a))
    with pytest.raises(TensorRTUnavailableError, match="pip install tensorrt-cu12"):
        TensorRTBackend(tmp_path / "model.fp16.engine")


def test_an_rtx_runtime_on_a_gpu_it_refuses_is_unavailable_not_broken(tmp_path, monkeypatch):
    rtx = pytest.importorskip("tensorrt_rtx_bindings", reason="pip install -r environment/requirements-trt-check.txt")
    h200 = EngineTarget(rtx.__version__, "NVIDIA H200", "9.0", "tensorrt-rtx")
    monkeypatch.setattr(tensorrt_backend, "running_target", lambda trt, device: h200)
    monkeypatch.setattr(tensorrt_backend, "check_engine", lambda *a, **k: pytest.fail("an engine checked where none can run"))
    with pytest.raises(TensorRTUnavailableError, match=r"NVIDIA H200: TensorRT-RTX's runtime does not run on compute "
                                                       r"capability 9.0 .*pip install tensorrt-cu13"):
        TensorRTBackend(tmp_path / "model.fp16.engine", trt=rtx)


# ----------------------------------------------------------------------------------------------- running
def test_int64_engines_get_int64_buffers_and_the_right_answers(tmp_path, here):
    backend, *_ = open_backend(tmp_path, input_type="INT64")
    assert {n: s.dtype.name for n, s in backend.buffers.sizes.items()} == {
        "input_ids": "int64", "segment_ids": "int64", "logits": "float32"}
    ids, seg = feed(3, 7)
    np.testing.assert_array_equal(backend.predict_logits(ids, seg), expected(ids, seg))


def test_buffers_are_allocated_once_and_serve_every_shape(tmp_path, here):
    backend, _, _, buffers = open_backend(tmp_path)
    for batch, seq in [(1, 5), (16, 64), (3, 17), (1, 64)]:
        ids, seg = feed(batch, seq, seed=batch * seq)
        np.testing.assert_array_equal(backend.predict_logits(ids, seg), expected(ids, seg))
    assert [e for e in buffers.memory.log if e[0] == "alloc"] == [("alloc", 4096), ("alloc", 4096), ("alloc", 128)]


def test_each_call_selects_the_profile_then_sets_shapes_then_addresses_then_runs(tmp_path, here):
    backend, _, ctx, buffers = open_backend(tmp_path)
    backend.predict_logits(*feed(1, 9))  # profile 0 is active in a new context: no switch
    assert names(ctx) == ["set_input_shape", "set_input_shape", "set_tensor_address", "set_tensor_address",
                          "set_tensor_address", "execute_async_v3"]
    assert [args for _, args in ctx.calls[:2]] == [("input_ids", (1, 9)), ("segment_ids", (1, 9))]
    assert {args[0] for name, args in ctx.calls if name == "set_tensor_address"} == {"input_ids", "segment_ids", "logits"}
    assert ctx.calls[-1] == ("execute_async_v3", (buffers.stream_handle,))
    assert buffers.memory.log[-2:] == [("dtoh", 1 * 2 * 4), ("sync", None)]  # only the used bytes come back
    start = len(ctx.calls)
    backend.predict_logits(*feed(3, 9))  # needs profile 1: the switch comes first, on the buffers' stream
    assert names(ctx, start)[:3] == ["set_optimization_profile_async", "set_input_shape", "set_input_shape"]
    assert ctx.calls[start][1] == (1, buffers.stream_handle) and ctx.active_optimization_profile == 1


def test_shapes_set_before_the_profile_switch_are_refused_by_tensorrt(tmp_path, here):
    """What the backend must never do, shown on the double: TensorRT checks a shape against the ACTIVE profile,
    and a switch throws the shapes away (so swapping the two steps in ``_run`` fails)."""
    _, engine, ctx, _ = open_backend(tmp_path)
    engine._logger = logger = tensorrt_backend.compat.capturing_logger(lean, echo=False)
    assert ctx.set_input_shape("input_ids", (8, 30)) is False  # batch 8 is outside profile 0
    assert "outside optimization profile 0" in logger.errors()[-1]
    assert ctx.set_optimization_profile_async(1, 77) and ctx.set_input_shape("input_ids", (8, 30))
    assert ctx.set_optimization_profile_async(1, 77) and ctx.infer_shapes() == ["input_ids", "segment_ids"]


def test_the_profile_switches_only_when_the_shape_needs_another(tmp_path, here):
    backend, _, ctx, _ = open_backend(tmp_path)
    for batch, seq in [(1, 10), (1, 30), (8, 30), (4, 12), (1, 3)]:
        ids, seg = feed(batch, seq)
        np.testing.assert_array_equal(backend.predict_logits(ids, seg), expected(ids, seg))
    assert [args for name, args in ctx.calls if name == "set_optimization_profile_async"] == [(1, 77), (0, 77)]


def test_outputs_are_copies_not_views_of_the_reused_buffer(tmp_path, here):
    backend, *_ = open_backend(tmp_path)
    first = backend.predict_logits(*feed(2, 4, seed=1))
    kept = first.copy()
    backend.predict_logits(*feed(2, 4, seed=2))
    np.testing.assert_array_equal(first, kept)


def test_a_shape_in_no_profile_names_the_allowed_ranges(tmp_path, here):
    backend, *_ = open_backend(tmp_path, [((1, 1), (1, 8), (1, 64)), ((4, 1), (16, 8), (16, 64))])
    with pytest.raises(InputError, match=r"2 x 10 is outside every optimization profile \(profile 0: batch 1-1"):
        backend.predict_logits(*feed(2, 10))
    with pytest.raises(InputError, match="above this backend's maximum 16"):
        backend.predict_logits(*feed(17, 10))


@pytest.mark.parametrize("method,call", [
    ("set_input_shape", r"set_input_shape\('input_ids', \(2, 3\)\)"),
    ("set_tensor_address", r"set_tensor_address\('input_ids'\)"),
    ("execute_async_v3", r"execute_async_v3"),
])
def test_a_false_from_tensorrt_names_the_call_and_tensorrts_message(tmp_path, here, method, call):
    backend, _, ctx, _ = open_backend(tmp_path)
    refuse(ctx, method, f"{method}: Error Code 3: API Usage Error (double says no)")
    with pytest.raises(BackendError, match=rf"TensorRT {call} returned False: {method}: Error Code 3.*double says no"):
        backend.predict_logits(*feed(2, 3))


def test_a_refused_profile_switch_is_an_error_and_is_retried_on_the_next_call(tmp_path, here):
    backend, _, ctx, _ = open_backend(tmp_path)
    refuse(ctx, "set_optimization_profile_async", "setOptimizationProfileAsync: profile 1 is in use by another context")
    with pytest.raises(BackendError, match=r"set_optimization_profile_async\(1\) returned False: .*in use by another"):
        backend.predict_logits(*feed(3, 3))
    assert ctx.active_optimization_profile == 0  # TensorRT kept the profile it had
    ctx.refusals.clear()
    ids, seg = feed(3, 3)
    np.testing.assert_array_equal(backend.predict_logits(ids, seg), expected(ids, seg))
    assert ctx.active_optimization_profile == 1


def test_a_misaligned_device_address_is_refused_as_tensorrt_documents(tmp_path, here):
    class Misaligned(NumpyMemory):
        def alloc(self, nbytes):
            host, ptr = super().alloc(nbytes)
            self.blocks[ptr + 8] = self.blocks.pop(ptr)
            return host, ptr + 8

    backend, *_ = open_backend(tmp_path, buffers=DeviceBuffers(Misaligned()))
    with pytest.raises(BackendError, match=r"set_tensor_address\('input_ids'\) returned False: .*not 256-byte aligned"):
        backend.predict_logits(*feed(2, 3))


def test_a_feed_is_validated_once_with_one_message(tmp_path, here):
    backend, *_ = open_backend(tmp_path)
    with pytest.raises(InputError, match=r"^tensorrt: input_ids \(2, 3\) and segment_ids \(2, 4\) must have the same shape"):
        backend.predict_logits(np.ones((2, 3), np.int32), np.zeros((2, 4), np.int32))
    with pytest.raises(InputError, match=r"^tensorrt: input_ids must have rank 2"):
        backend.predict_logits(np.ones(3, np.int32), np.zeros(3, np.int32))


def test_the_classifier_runs_through_the_backend(tmp_path, here, tokenizer, sentences):
    backend, _, _, buffers = open_backend(tmp_path, [((1, 1), (4, 16), (4, 32))])
    texts = sentences[0][:7]
    with backend:
        pred = Classifier(tokenizer, backend, ["negative", "positive"], batch_size=32).predict(texts)
    assert pred.batches == 2  # batch size capped at the engine's 4
    enc = tokenizer.encode_batch(texts)
    np.testing.assert_array_equal(pred.logits[:, 0], enc.input_ids.sum(axis=1).astype(np.float32))
    assert buffers.memory.blocks == {} and not buffers.memory.open  # closed with the backend


def test_without_a_module_given_the_backend_uses_import_tensorrts(tmp_path, here, monkeypatch):
    buffers = numpy_buffers()
    module = module_with_runtime(lean, EngineDouble(lean, PROFILES, buffers.memory))
    monkeypatch.setattr(tensorrt_backend.compat, "import_tensorrt", lambda flavour=None: module)
    with TensorRTBackend(engine_on_disk(tmp_path, lean), buffers=buffers) as backend:
        ids, seg = feed(2, 5)
        np.testing.assert_array_equal(backend.predict_logits(ids, seg), expected(ids, seg))
