"""TensorRTBackend joins the Backend / Classifier API; its limits come from the engine's profiles.

The engine and context are the strict doubles of tests/trt_doubles.py: their "kernel" returns
``[sum(ids), sum(segments)]``, which is enough to check the plumbing between the Classifier, the backend and
the runner. The module handed in only replaces ``Runtime`` (a real one needs a GPU); everything else is NVIDIA's
real lean runtime module.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.backends import Classifier, TensorRTBackend
from helpers.errors import BackendError, EngineMismatchError, InputError, TensorRTUnavailableError

from trt_doubles import EngineDouble, module_with_runtime, numpy_buffers

lean = pytest.importorskip("tensorrt_lean_bindings", reason="pip install -r environment/requirements-trt-check.txt")


def backend_on_doubles(tmp_path, profiles, **kwargs):
    buffers = numpy_buffers()
    engine = EngineDouble(lean, profiles, buffers.memory)
    path = tmp_path / "model.fp16.engine"
    path.write_bytes(b"engine bytes")
    return TensorRTBackend(path, buffers=buffers, trt=module_with_runtime(lean, engine), **{"check": False, **kwargs}), buffers


def test_limits_come_from_the_engine_profiles(tmp_path):
    backend, _ = backend_on_doubles(tmp_path, [((1, 1), (1, 16), (1, 32)), ((2, 1), (8, 16), (8, 32))])
    assert (backend.max_batch, backend.max_len) == (8, 32)
    assert backend.describe()["profiles"][1] == {"profile": 1, "min": "2x1", "opt": "8x16", "max": "8x32"}
    with pytest.raises(InputError, match="above this backend's maximum 8"):
        backend.predict_logits(np.ones((9, 4), np.int32), np.zeros((9, 4), np.int32))
    backend.close()
    backend.close()


def test_a_feed_is_validated_once_with_one_message(tmp_path):
    backend, _ = backend_on_doubles(tmp_path, [((1, 1), (4, 16), (4, 32))])
    with pytest.raises(InputError, match=r"^tensorrt: input_ids \(2, 3\) and segment_ids \(2, 4\) must have the same shape"):
        backend.predict_logits(np.ones((2, 3), np.int32), np.zeros((2, 4), np.int32))
    with pytest.raises(InputError, match=r"^tensorrt: input_ids must have rank 2"):
        backend.predict_logits(np.ones(3, np.int32), np.zeros(3, np.int32))
    backend.close()


def test_classifier_runs_through_the_backend(tmp_path, tokenizer, sentences):
    backend, buffers = backend_on_doubles(tmp_path, [((1, 1), (4, 16), (4, 32))])
    texts = sentences[0][:7]
    with backend:
        pred = Classifier(tokenizer, backend, ["negative", "positive"], batch_size=32).predict(texts)
    assert pred.batches == 2  # batch size capped at the engine's 4
    enc = tokenizer.encode_batch(texts)
    np.testing.assert_array_equal(pred.logits[:, 0], enc.input_ids.sum(axis=1).astype(np.float32))
    assert buffers.memory.blocks == {} and not buffers.memory.open  # closed with the backend


def test_the_sidecar_is_checked_with_the_onnx_before_any_buffer_is_opened(tmp_path, monkeypatch):
    import helpers.backends.tensorrt as module
    import helpers.trt.runtime as runtime
    from helpers.trt.metadata import RunningEnvironment

    checked = []

    def check_engine(engine_path, running, onnx_path):
        checked.append((engine_path.name, running, onnx_path))
        raise EngineMismatchError("its source ONNX model.fp16.onnx changed since the build")

    running_here = lambda device: RunningEnvironment("11.4.0.106", f"GPU {device}", "9.0", "tensorrt")
    monkeypatch.setattr(module, "running_environment", lambda trt, device: running_here(device))
    monkeypatch.setattr(module, "check_engine", check_engine)
    monkeypatch.setattr(runtime, "make_buffers", lambda kind, device: pytest.fail("buffers opened for a stale engine"))
    with pytest.raises(EngineMismatchError, match="changed since the build"):
        TensorRTBackend(tmp_path / "model.fp16.engine", onnx_path=tmp_path / "model.fp16.onnx", gpu=1, trt=lean)
    assert checked == [("model.fp16.engine", running_here(1), tmp_path / "model.fp16.onnx")]


def test_an_engine_without_the_contract_io_is_refused_and_closed(tmp_path):
    buffers = numpy_buffers()
    engine = EngineDouble(lean, [((1, 1), (4, 16), (4, 32))], buffers.memory)
    engine._names = ["input_ids", "token_type_ids", "logits"]
    path = tmp_path / "model.fp16.engine"
    path.write_bytes(b"engine bytes")
    with pytest.raises(BackendError, match=r"lacks the inputs \['segment_ids'\]"):
        TensorRTBackend(path, buffers=buffers, check=False, trt=module_with_runtime(lean, engine))
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
    import helpers.backends.tensorrt as module
    from helpers.trt.metadata import RunningEnvironment

    rtx = pytest.importorskip("tensorrt_rtx_bindings", reason="pip install -r environment/requirements-trt-check.txt")
    h200 = RunningEnvironment(rtx.__version__, "NVIDIA H200", "9.0", "tensorrt-rtx")
    monkeypatch.setattr(module, "running_environment", lambda trt, device: h200)
    monkeypatch.setattr(module, "check_engine", lambda *a: pytest.fail("an engine checked where none can run"))
    with pytest.raises(TensorRTUnavailableError, match=r"NVIDIA H200: TensorRT-RTX's runtime does not run on compute "
                                                       r"capability 9.0 .*pip install tensorrt-cu13"):
        TensorRTBackend(tmp_path / "model.fp16.engine", trt=rtx)
