"""The benchmark line-up's TensorRT backends: a missing TensorRT or engine is a skip, anything else is an error.

06 must never benchmark an engine built from an older ONNX export, and never report a TensorRT failure as "not
available". ``TensorRTBackend`` itself is replaced here by a stand-in bound to its real signature (a real one
needs a GPU); what is checked is what the line-up, through the registry, hands it and which of its errors
become skips.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import SimpleNamespace

import pytest

import helpers.backends.tensorrt as tensorrt_backend
import helpers.trt.metadata as metadata
from helpers.backends import model_files
from helpers.bench import build_lineup
from helpers.errors import BackendError, EngineMismatchError, TensorRTUnavailableError

ONLY_TENSORRT = ("tensorrt-fp32", "tensorrt-fp16")
MODEL = SimpleNamespace(config={"vocab_size": 300})


@pytest.fixture()
def files(tmp_path):
    for name in ("model.onnx", "model.fp16.onnx", "model.int8.onnx", "model.fp16.engine"):
        (tmp_path / name).write_bytes(b"")
    return model_files(tmp_path, tmp_path)


def lineup(files):
    return build_lineup(MODEL, files, name="m", names=ONLY_TENSORRT, cuda=True)


def stand_in(monkeypatch, make):
    """Replace TensorRTBackend by ``make``, called only with arguments the real class accepts."""
    signature = inspect.signature(tensorrt_backend.TensorRTBackend)

    def bound(*args, **kwargs):
        signature.bind(*args, **kwargs)
        return make(*args, **kwargs)

    monkeypatch.setattr(tensorrt_backend, "TensorRTBackend", bound)


def test_the_engine_is_opened_with_the_onnx_its_sidecar_names(files, monkeypatch):
    opened = []
    monkeypatch.setattr(metadata, "read_metadata", lambda engine: SimpleNamespace(onnx_file="model.fp16.onnx"))
    stand_in(monkeypatch, lambda engine, **kw: opened.append((Path(engine).name, kw)) or
             SimpleNamespace(device="cuda:0", close=lambda: None))
    result = lineup(files)
    assert opened == [("model.fp16.engine", {"onnx_path": files["fp16"], "buffers": "cuda-python", "gpu": 0})]
    assert list(result.backends) == ["tensorrt-fp16"]
    assert [s.backend for s in result.skipped] == ["tensorrt-fp32"]
    assert "no engine-fp32 model file" in result.skipped[0].reason and "04_build_engine" in result.skipped[0].reason


def test_without_a_tensorrt_that_runs_here_the_engines_are_skipped_with_the_reason(files, monkeypatch):
    def absent(*a, **kw):
        raise TensorRTUnavailableError("TensorRT is not installed in this Python; install it with `pip install tensorrt-cu12`")

    monkeypatch.setattr(metadata, "read_metadata", lambda engine: SimpleNamespace(onnx_file="model.fp16.onnx"))
    stand_in(monkeypatch, absent)
    result = lineup(files)
    assert result.backends == {} and "pip install tensorrt-cu12" in result.skipped[1].reason


@pytest.mark.parametrize("error", [
    EngineMismatchError("its source ONNX model.fp16.onnx changed since the build"),
    BackendError("TensorRT execute_async_v3 returned False: illegal memory access"),
])
def test_a_stale_engine_or_a_runtime_failure_stops_the_run(files, monkeypatch, error):
    def fails(*a, **kw):
        raise error

    monkeypatch.setattr(metadata, "read_metadata", lambda engine: SimpleNamespace(onnx_file="model.fp16.onnx"))
    stand_in(monkeypatch, fails)
    with pytest.raises(type(error), match=str(error)[:20]):
        lineup(files)


def test_an_engine_built_from_an_unknown_onnx_is_refused(files, monkeypatch):
    monkeypatch.setattr(metadata, "read_metadata", lambda engine: SimpleNamespace(onnx_file="model.fused.onnx"))
    with pytest.raises(EngineMismatchError, match=r"was built from model.fused.onnx, which is not one of this model's"):
        lineup(files)
