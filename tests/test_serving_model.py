"""The served model's logic without a server: decoding, per-request errors, the files and backend it runs, the GPU
Triton gives an instance, the vocabulary check, the split form's steps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.backends import Classifier, OrtBackend
from helpers.errors import BackendError, CheckpointError, InputError
from helpers.serving.model import (SERVING_FILE, SentimentCore, SentimentModel, backend_line, decode_requests,
                                   decode_texts, postprocess, served_backends, tokenize_request)
from helpers.serving.repository import served_files
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


def test_decode_requests_takes_every_request_in_one_pass():
    requests = [np.array([["好".encode()], [b"ok"]], dtype=object), np.array([[b"fine"]], dtype=object)]
    texts, stops = decode_requests(requests)
    assert texts == ["好", "ok", "fine"] and stops.tolist() == [2, 3]
    for bad in ([np.array([[b"\xff"]], dtype=object)], [np.array([[b" "]], dtype=object)], [None],
                [np.zeros((0, 1), dtype=object)]):
        with pytest.raises(InputError):
            decode_requests(requests + bad)


def test_a_cpu_repository_carries_the_cpus_best_file_and_a_gpu_one_every_gpu_backends(tmp_path, monkeypatch):
    import helpers.trt.metadata as metadata

    keys = ("plain", "fused", "int8", "fp16", "fused-fp16", "fused-fp16-rightpad", "engine-fp16")
    files = {k: tmp_path / f"{k}.bin" for k in keys}
    for path in files.values():
        path.write_bytes(b"x")
    monkeypatch.setattr(metadata, "read_metadata", lambda engine: type("Meta", (), {"onnx_file": "fp16.bin"}))
    assert set(served_files(files, "cpu")) == {"int8"}
    assert set(served_files(files, "gpu")) == {"engine-fp16", "fp16", "fused-fp16", "fused-fp16-rightpad", "int8"}
    del files["fused-fp16"]  # the right-padded twin is no backend on its own
    assert set(served_files(files, "gpu")) == {"engine-fp16", "fp16", "int8"}
    del files["int8"]
    assert set(served_files(files, "cpu")) == {"fused"}


def test_backend_lines_read_back_from_a_server_log():
    log = "\n".join(["I1202 15:59:01 model_lifecycle.cc:1] loading: sentiment:1",
                     backend_line("sentiment_0_0", "ort-cuda-fused-fp16-rightpad-graph: a.onnx + b.onnx on GPU 0"),
                     backend_line("sentiment_nobatch_0_1", "onnxruntime-int8: model.int8.onnx"),
                     "[sentiment_0_0] something else"])
    assert served_backends(log) == {"sentiment_0_0": "ort-cuda-fused-fp16-rightpad-graph",
                                    "sentiment_nobatch_0_1": "onnxruntime-int8"}


def test_core_answers_good_requests_and_refuses_bad_ones(repository, sources, tokenizer, sentences):  # noqa: F811
    core = SentimentCore(repository.root / "sentiment" / "1")
    assert core.choice.name == "onnxruntime" and core.describe().startswith("onnxruntime: model.onnx")
    assert core.classifier.max_padding == core.spec.max_padding == 0.2  # the CPU repository's cap reaches the Classifier
    texts = sentences[0]
    good = np.array([[t.encode()] for t in texts[:3]], dtype=object)
    answers = core.answer([good, np.array([[b"\xff"]], dtype=object), None, np.array([[texts[5].encode()]], dtype=object),
                           np.array([["\u200b".encode()]], dtype=object)])
    reference = Classifier(tokenizer, OrtBackend(sources.files["plain"]), sources.labels).predict(texts[:3] + [texts[5]])
    assert [a.invalid_input for a in answers] == [False, True, True, False, True]
    assert "not valid UTF-8" in answers[1].error and "no input tensor named 'TEXT'" in answers[2].error
    assert answers[4].error.startswith("request 4")
    served = [x.decode() for x in answers[0].labels.reshape(-1)] + [answers[3].labels[0, 0].decode()]
    assert served == reference.labels
    np.testing.assert_allclose(np.vstack([answers[0].probabilities, answers[3].probabilities]), reference.probabilities,
                               atol=1e-6)
    fast = core.answer([good, np.array([[texts[5].encode()]], dtype=object)])  # no bad request: one pass
    assert [x.decode() for a in fast for x in a.labels.reshape(-1)] == reference.labels
    core.close()


def test_backend_failure_becomes_error_answers(repository, monkeypatch):  # noqa: F811
    core = SentimentCore(repository.root / "sentiment" / "1")

    def fail(texts):
        raise BackendError("session lost")

    monkeypatch.setattr(core.classifier, "predict", fail)
    answers = core.answer([np.array([[b"fine"]], dtype=object), np.array([[b"ok"]], dtype=object)])
    assert all(a.error.startswith("serving: onnxruntime failed on 2 sentences (BackendError: session lost)")
               for a in answers)
    assert not any(a.invalid_input for a in answers)

    def refuse(texts):
        raise InputError("token id 9999 out of range")

    monkeypatch.setattr(core.classifier, "predict", refuse)  # after the requests were checked: a server-side error
    answers = core.answer([np.array([[b"fine"]], dtype=object), np.array([[b"\xff"]], dtype=object)])
    assert answers[0].error == "serving: token id 9999 out of range" and not answers[0].invalid_input
    assert answers[1].invalid_input and "not valid UTF-8" in answers[1].error
    core.close()


def test_a_changed_vocabulary_is_refused_by_the_served_model(repository, tmp_path):  # noqa: F811
    import shutil

    folder = tmp_path / "1"
    shutil.copytree(repository.root / "sentiment" / "1", folder)
    lines = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    (folder / "vocab.txt").write_text("\n".join(lines[:5] + lines[6:] + lines[5:6]) + "\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match="is not the file this checkpoint was saved with"):
        SentimentCore(folder)


def test_each_instance_runs_its_backend_on_the_gpu_triton_gives_it(repository, monkeypatch):  # noqa: F811
    """A double of the registry records what a GPU instance asks for: Triton's device id reaches open_backend."""
    import helpers.serving.model as model
    from helpers.backends.registry import BackendChoice

    asked = {}
    files = json.loads((repository.root / "sentiment" / "1" / SERVING_FILE).read_text())["files"]
    real_open = model.open_backend

    def best(found, device, *, device_id=0):
        asked["best"] = (sorted(found), device, device_id)
        return BackendChoice("onnxruntime", (found["plain"],), ("ort-cuda-fp16-graph: no fp16 file",))

    def open_(name, found, *, device_id=0, threads=0):
        asked["open"] = (name, device_id)
        return real_open(name, found, threads=threads)

    monkeypatch.setattr(model, "best_backend", best)
    monkeypatch.setattr(model, "open_backend", open_)
    instance = SentimentModel()
    instance.initialize({"model_repository": str(repository.root / "sentiment"), "model_version": "1",
                         "model_instance_kind": "GPU", "model_instance_device_id": "1",
                         "model_instance_name": "sentiment_0_1"})
    assert asked == {"best": (sorted(files), "gpu", 1), "open": ("onnxruntime", 1)}
    assert instance.core.device == "gpu" and instance.core.device_id == 1
    instance.finalize()


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
