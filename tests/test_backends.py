"""PyTorch and ONNX Runtime backends: same numbers, clear errors for bad files and bad feeds."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import helper

import helpers.backends as backends
from helpers.backends import Backend, OrtBackend, OrtConfig, TorchBackend
from helpers.bench.models import architecture_model
from helpers.errors import BackendError, ExportError, InputError, MissingArtifactError
from helpers.export import onnx_from_classifier, sample_feed
from helpers.onnx_variants import fused_onnx_from_plain

VOCAB = 90


@pytest.fixture(scope="module")
def tiny():
    return architecture_model("tiny", VOCAB, seed=2).model


@pytest.fixture(scope="module")
def plain_path(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("backends") / "model.onnx"
    return onnx_from_classifier(tiny, path, labels=["negative", "positive"], max_len=24, model_size="tiny").path


@pytest.fixture()
def torch_backend(tiny):
    return TorchBackend(tiny)


@pytest.fixture()
def ort_backend(plain_path):
    with OrtBackend(plain_path, max_batch=8) as backend:
        yield backend


def save_graph(path, inputs, outputs):
    nodes = [helper.make_node("Identity", [inputs[0].name], [outputs[0].name])]
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", inputs, outputs),
                                opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


# ------------------------------------------------------------------------------------------ same numbers
def test_torch_and_ort_agree(torch_backend, ort_backend):
    ids, seg = sample_feed(4, 20, VOCAB, seed=11)
    a, b = torch_backend.predict_logits(ids, seg), ort_backend.predict_logits(ids, seg)
    assert a.dtype == b.dtype == np.float32 and a.shape == (4, 2)
    assert np.abs(a - b).max() <= 1e-4


def test_int64_feeds_are_accepted(ort_backend):
    ids, seg = sample_feed(2, 6, VOCAB)
    np.testing.assert_allclose(ort_backend.predict_logits(ids.astype(np.int64), seg.astype(np.int64)),
                               ort_backend.predict_logits(ids, seg), atol=1e-7)


def test_describe_and_limits(ort_backend, torch_backend):
    info = ort_backend.describe()
    assert info["backend"] == "onnxruntime" and info["variant"] == "plain" and info["max_batch"] == 8
    assert info["max_len"] == 512 and info["providers"] == ["CPUExecutionProvider"]
    assert torch_backend.describe()["max_len"] == 512 and torch_backend.precision == "fp32"


def test_fused_model_brings_its_session_recipe(plain_path, tmp_path):
    fused = fused_onnx_from_plain(plain_path, tmp_path / "fused.onnx")
    with OrtBackend(fused.path) as backend:
        assert backend.name == "onnxruntime-fused"
        assert backend.disabled_optimizers == ["SkipLayerNormFusion"]
    with OrtBackend(fused.path, OrtConfig(disabled_optimizers=())) as backend:
        assert backend.disabled_optimizers == []


# ------------------------------------------------------------------------------------------ bad files
def test_missing_file(tmp_path):
    with pytest.raises(MissingArtifactError, match=r"no ONNX model at .*run notebook 02_onnx_export first"):
        OrtBackend(tmp_path / "absent.onnx")


def test_corrupt_file(tmp_path, plain_path):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(plain_path.read_bytes()[:5000])
    with pytest.raises(ExportError, match="could not be loaded .*corrupt, truncated or not an ONNX model"):
        OrtBackend(truncated)


def test_foreign_model(tmp_path):
    f = onnx.TensorProto.FLOAT
    path = save_graph(tmp_path / "foreign.onnx", [helper.make_tensor_value_info("pixels", f, ["n", 3])],
                      [helper.make_tensor_value_info("scores", f, ["n", 3])])
    with pytest.raises(ExportError, match=r"not a classifier exported by this project.*found inputs \['pixels'\]"):
        OrtBackend(path)


def test_model_with_wrong_input_dtype(tmp_path):
    i64, f = onnx.TensorProto.INT64, onnx.TensorProto.FLOAT
    nodes = [helper.make_node("Cast", ["input_ids"], ["logits"], to=f)]
    inputs = [helper.make_tensor_value_info(n, i64, ["b", "s"]) for n in ("input_ids", "segment_ids")]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("logits", f, ["b", "s"])])
    path = tmp_path / "int64.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ExportError, match=r"input 'input_ids' must be int32 \[batch, seq_len\], found int64"):
        OrtBackend(path)


def test_unavailable_provider(plain_path):
    with pytest.raises(BackendError, match=r"providers \['NoSuchExecutionProvider'\] are not available"):
        OrtBackend(plain_path, OrtConfig(providers=("NoSuchExecutionProvider",)))


def test_cuda_without_gpu(tiny, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendError, match="PyTorch sees no CUDA GPU"):
        TorchBackend(tiny, device="cuda")


# ------------------------------------------------------------------------------------------ bad feeds
@pytest.mark.parametrize("which", ["torch", "ort"])
def test_bad_feeds(which, torch_backend, ort_backend):
    backend = torch_backend if which == "torch" else ort_backend
    ids, seg = sample_feed(2, 5, VOCAB)
    with pytest.raises(InputError, match=r"must have rank 2 \[batch, seq_len\]"):
        backend.predict_logits(ids[0], seg[0])
    with pytest.raises(InputError, match="must hold integers .* got dtype float32"):
        backend.predict_logits(ids.astype(np.float32), seg)
    with pytest.raises(InputError, match="must have the same shape"):
        backend.predict_logits(ids, seg[:, :3])
    with pytest.raises(InputError, match=r"token ids must lie in \[0, 90\)"):
        backend.predict_logits(ids + VOCAB, seg)
    with pytest.raises(InputError, match="must be a numpy array"):
        backend.predict_logits(ids.tolist(), seg)


def test_batch_and_length_above_maximum(ort_backend):
    ids, seg = sample_feed(9, 4, VOCAB)
    with pytest.raises(InputError, match="batch 9 is above this backend's maximum 8"):
        ort_backend.predict_logits(ids, seg)
    ids, seg = sample_feed(1, 513, VOCAB)
    with pytest.raises(InputError, match="sequence length 513 is above this backend's maximum 512"):
        ort_backend.predict_logits(ids, seg)


def test_token_range_is_checked_by_the_base_class():
    """Every backend that knows its vocabulary refuses ids outside it before its own code runs."""

    class Counting(Backend):
        name, vocab_size, runs = "counting", 10, 0

        def _run(self, input_ids, segment_ids):
            self.runs += 1
            return np.zeros((len(input_ids), 2), np.float32)

    backend = Counting()
    ids, seg = np.array([[2, 9, 3]], np.int32), np.zeros((1, 3), np.int32)
    assert backend.predict_logits(ids, seg).shape == (1, 2)
    for bad, shown in ((10, "from 2 to 10"), (-1, "from -1 to 9")):
        with pytest.raises(InputError, match=rf"counting: token ids must lie in \[0, 10\) for this model, got values {shown}"):
            backend.predict_logits(np.array([[2, 9, bad]], np.int32), seg)
    assert backend.runs == 1
    backend.vocab_size = None  # a backend that does not know its vocabulary checks no range
    assert backend.predict_logits(np.array([[2, 99, 3]], np.int32), seg).shape == (1, 2)


def test_closed_backend(plain_path):
    backend = OrtBackend(plain_path)
    backend.close()
    backend.close()  # safe twice
    with pytest.raises(BackendError, match="this backend was closed"):
        backend.predict_logits(*sample_feed(1, 3, VOCAB))


# ------------------------------------------------------------------------------------------ the rest
def test_tensorrt_backend_is_lazy():
    code = ("import sys, helpers.backends; "
            "assert not any(m == 'tensorrt' or m.startswith(('tensorrt.', 'tensorrt_', 'pycuda', 'cuda')) "
            "or m == 'helpers.backends.tensorrt' for m in sys.modules), 'eager import'")
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchBackend'"):
        _ = backends.NoSuchBackend
