"""TensorRTBackend joins the Backend / Classifier API; its limits come from the engine's profiles.

The engine and context are doubles built from the real TensorRT classes (tests/trt_doubles.py): their
"kernel" returns ``[sum(ids), sum(segments)]``, which is enough to check the plumbing between the
Classifier, the backend and the runner. The runtime module handed in only replaces ``Runtime`` (a real one
needs a GPU); everything else is NVIDIA's real lean runtime module.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.backends import Classifier, TensorRTBackend
from helpers.errors import InputError, TensorRTUnavailableError
from helpers.trt import compat

from trt_doubles import NumpyBuffers, context_double, engine_double

lean = pytest.importorskip("tensorrt_lean_bindings", reason="pip install -r environment/requirements-trt-check.txt")


def backend_on_doubles(tmp_path, profiles):
    engine = engine_double(lean, profiles)
    buffers = NumpyBuffers()
    engine.create_execution_context.return_value = context_double(lean, engine, buffers)

    class RuntimeDouble:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return engine

    module = type("TrtDouble", (), {name: getattr(lean, name) for name in compat.RUNTIME_API["module"]})
    module.Runtime = RuntimeDouble
    path = tmp_path / "model.fp16.plan"
    path.write_bytes(b"engine bytes")
    return TensorRTBackend(path, buffers=buffers, check=False, trt=module), buffers


def test_limits_come_from_the_engine_profiles(tmp_path):
    backend, _ = backend_on_doubles(tmp_path, [((1, 1), (1, 16), (1, 32)), ((2, 1), (8, 16), (8, 32))])
    assert (backend.max_batch, backend.max_len) == (8, 32)
    assert backend.describe()["profiles"][1] == {"profile": 1, "min": "2x1", "opt": "8x16", "max": "8x32"}
    with pytest.raises(InputError, match="above this backend's maximum 8"):
        backend.predict_logits(np.ones((9, 4), np.int32), np.zeros((9, 4), np.int32))
    backend.close()
    backend.close()


def test_classifier_runs_through_the_backend(tmp_path, tokenizer, sentences):
    backend, buffers = backend_on_doubles(tmp_path, [((1, 1), (4, 16), (4, 32))])
    texts = sentences[0][:7]
    with backend:
        pred = Classifier(tokenizer, backend, ["negative", "positive"], batch_size=32).predict(texts)
    assert pred.batches == 2  # batch size capped at the engine's 4
    enc = tokenizer.encode_batch(texts)
    np.testing.assert_array_equal(pred.logits[:, 0], enc.input_ids.sum(axis=1).astype(np.float32))
    assert buffers.memory == {}  # closed with the backend


def test_without_tensorrt_the_backend_says_how_to_install(tmp_path, monkeypatch):
    import importlib

    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a: (_ for _ in ()).throw(ImportError(name)) if name in ("tensorrt", "tensorrt_rtx_bindings")
                        else real(name, *a))
    with pytest.raises(TensorRTUnavailableError, match="pip install tensorrt-cu12"):
        TensorRTBackend(tmp_path / "model.fp16.plan")
