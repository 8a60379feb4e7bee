"""The served model's logic without a server: decoding, per-request errors, backend choice, the split form's steps."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.backends import Classifier, OrtBackend
from helpers.errors import BackendError, InputError
from helpers.serving.model import (BackendChoice, SentimentCore, choose_backend, decode_texts, postprocess,
                                   tokenize_request)
from serving_fixtures import repository, sources  # noqa: F401  (fixtures)


def test_decode_texts():
    raw = np.array([["好".encode()], [b"ok"]], dtype=object)
    assert decode_texts(raw) == ["好", "ok"]
    with pytest.raises(InputError, match=r"TEXT #1 is not valid UTF-8 \(byte 0xff at offset 0\)"):
        decode_texts(np.array([[b"ok"], [b"\xff\xfe"]], dtype=object), request=3)
    with pytest.raises(InputError, match="TEXT #0 is empty"):
        decode_texts(np.array([[b"  "]], dtype=object))
    with pytest.raises(InputError, match="holds no sentence"):
        decode_texts(np.zeros((0, 1), dtype=object))


def test_choose_backend_prefers_int8_then_fused_then_plain(tmp_path):
    for name in ("a.onnx", "b.onnx", "c.onnx"):
        (tmp_path / name).write_bytes(b"x")
    files = {"plain": "a.onnx", "fused": "b.onnx", "int8": "c.onnx"}
    assert choose_backend(tmp_path, files).kind == "ort-cpu-int8"
    assert choose_backend(tmp_path, {"plain": "a.onnx", "fused": "b.onnx"}).kind == "ort-cpu-fused"
    with pytest.raises(BackendError, match="no model file"):
        choose_backend(tmp_path, {"int8": "missing.onnx"})


def test_gpu_choice_on_a_cpu_machine_falls_back_with_reasons(tmp_path):
    (tmp_path / "f.onnx").write_bytes(b"x")
    (tmp_path / "p.onnx").write_bytes(b"x")
    choice = choose_backend(tmp_path, {"fused-fp16": "f.onnx", "plain": "p.onnx"}, device="gpu")
    assert choice.kind == "ort-cpu-plain"
    assert any(r.startswith("tensorrt: no file") for r in choice.passed_over)
    assert any(r.startswith("fused-fp16:") and "CUDAExecutionProvider" in r for r in choice.passed_over)


def test_a_tensorrt_runtime_that_refuses_this_gpu_is_passed_over(tmp_path, monkeypatch):
    import helpers.backends.onnxruntime_cuda as ort_cuda
    import helpers.machine as machine
    import helpers.trt.compat as compat

    for name in ("e.engine", "f.onnx", "fr.onnx", "i.onnx"):
        (tmp_path / name).write_bytes(b"x")
    files = {"tensorrt": "e.engine", "fused-fp16": "f.onnx", "fused-fp16-rightpad": "fr.onnx", "int8": "i.onnx"}
    rtx = type("tensorrt_rtx_bindings", (), {"__version__": "1.7.1.116", "Runtime": object})
    monkeypatch.setattr(compat, "import_tensorrt", lambda flavour=None: rtx)
    monkeypatch.setattr(compat, "flavour_of", lambda trt: "tensorrt-rtx")
    monkeypatch.setattr(machine, "gpu_identity", lambda device=0: machine.GpuInfo(0, "NVIDIA H200", "9.0", 143771))
    monkeypatch.setattr(ort_cuda, "cuda_provider_missing_reason", lambda: None)
    choice = choose_backend(tmp_path, files, device="gpu")
    assert choice.kind == "ort-cuda-fused-fp16" and choice.fast_path == tmp_path / "fr.onnx"
    assert choice.passed_over[0].startswith("tensorrt: TensorRT-RTX's runtime does not run on compute capability 9.0")
    assert "fr.onnx for right-padded batches" in choice.describe()


def test_a_gpu_repository_carries_every_gpu_file_and_the_cpu_fallback(tmp_path):
    from helpers.serving.repository import Sources, model_files

    onnx = {k: tmp_path / f"{k}.onnx" for k in ("plain", "fused", "int8", "fp16", "fused-fp16", "fused-fp16-rightpad")}
    sources = Sources(tmp_path / "vocab.txt", ["negative", "positive"], 32, onnx, engine=tmp_path / "model.fp16.engine")
    assert set(model_files(sources, "cpu")) == {"int8"}
    assert set(model_files(sources, "gpu")) == {"tensorrt", "fused-fp16", "fused-fp16-rightpad", "fp16", "int8"}
    del onnx["fused-fp16"]  # a companion never comes without its graph
    assert set(model_files(sources, "gpu")) == {"tensorrt", "fp16", "int8"}


def test_backend_lines_read_back_from_a_server_log(tmp_path):
    from helpers.serving.model import backend_line, served_backends

    choice = BackendChoice("ort-cuda-fused-fp16", tmp_path / "model.fused.fp16.onnx", ("tensorrt: no file",),
                           tmp_path / "model.fused.fp16.rightpad.onnx")
    log = "\n".join(["I1202 15:59:01 model_lifecycle.cc:1] loading: sentiment:1", backend_line("sentiment_0_0", choice),
                     backend_line("sentiment_nobatch_0_0", BackendChoice("ort-cpu-int8", tmp_path / "model.int8.onnx")),
                     "[sentiment_0_0] something else"])
    assert served_backends(log) == {"sentiment_0_0": "ort-cuda-fused-fp16", "sentiment_nobatch_0_0": "ort-cpu-int8"}


def test_core_answers_good_requests_and_refuses_bad_ones(repository, sources, tokenizer, sentences):  # noqa: F811
    core = SentimentCore(repository.root / "sentiment" / "1")
    assert isinstance(core.choice, BackendChoice) and core.choice.kind == "ort-cpu-plain"
    assert core.classifier.max_padding == core.spec.max_padding == 0.2  # the CPU repository's cap reaches the Classifier
    texts = sentences[0]
    good = np.array([[t.encode()] for t in texts[:3]], dtype=object)
    answers = core.answer([good, np.array([[b"\xff"]], dtype=object), None, np.array([[texts[5].encode()]], dtype=object)])
    reference = Classifier(tokenizer, OrtBackend(sources.onnx["plain"]), sources.labels).predict(texts[:3] + [texts[5]])
    assert [a.invalid_input for a in answers] == [False, True, True, False]
    assert "not valid UTF-8" in answers[1].error and "no input tensor named 'TEXT'" in answers[2].error
    served = [x.decode() for x in answers[0].labels.reshape(-1)] + [answers[3].labels[0, 0].decode()]
    assert served == reference.labels
    np.testing.assert_allclose(np.vstack([answers[0].probabilities, answers[3].probabilities]), reference.probabilities, atol=1e-6)
    core.close()


def test_backend_failure_becomes_error_answers(repository, monkeypatch):  # noqa: F811
    core = SentimentCore(repository.root / "sentiment" / "1")

    def fail(texts):
        raise BackendError("session lost")

    monkeypatch.setattr(core.classifier, "predict", fail)
    answers = core.answer([np.array([[b"fine"]], dtype=object)])
    assert answers[0].error.startswith("serving: ort-cpu-plain failed on 1 sentences (BackendError: session lost)")
    assert not answers[0].invalid_input


def test_tokenize_request_pads_to_a_multiple(tokenizer):
    ids, seg = tokenize_request(tokenizer, np.array([["质量太差了".encode()], ["好".encode()]], dtype=object), 16)
    assert ids.shape == (2, 16) and ids.dtype == np.int32 and seg.shape == ids.shape and not seg.any()
    assert ids[0, 0] == tokenizer.vocab.index("[CLS]") and ids[1, 3] == tokenizer.pad_id
    ids1, _ = tokenize_request(tokenizer, np.array([["好".encode()]], dtype=object), 1)
    assert ids1.shape == (1, 3)


def test_postprocess():
    names, probs = postprocess(np.array([[2.0, 0.0], [0.0, 3.0]], dtype=np.float32), ["neg", "pos"])
    assert names.reshape(-1).tolist() == [b"neg", b"pos"] and names.shape == (2, 1)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert probs[0, 0] == pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-6)
