"""The benchmark line-up's TensorRT backends: a missing TensorRT or engine is a skip, anything else is an error.

06 must never benchmark an engine built from an older ONNX export, and never report a TensorRT failure as "not
available". ``TensorRTBackend`` itself is replaced here (a real one needs a GPU); what is checked is what the
line-up hands it and which of its errors become skips.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import helpers.backends.tensorrt as tensorrt_backend
import helpers.trt.compat as compat
import helpers.trt.metadata as metadata
from helpers.bench.lineup import LineupConfig, build_lineup
from helpers.bench.system import ThreadSettings
from helpers.errors import BackendError, EngineMismatchError, TensorRTUnavailableError
from helpers.trt.rtx import RtxRuntimeSettings

THREADS = ThreadSettings(torch_intra_op=1, torch_inter_op=1, ort_intra_op=1)
ONLY_TENSORRT = LineupConfig(cpu=(), gpu=("tensorrt-fp32", "tensorrt-fp16"))


@pytest.fixture()
def files(tmp_path):
    onnx = {"plain": tmp_path / "model.onnx", "fp16": tmp_path / "model.fp16.onnx", "int8": tmp_path / "model.int8.onnx"}
    engines = {"fp16": tmp_path / "model.fp16.engine"}
    return onnx, engines


def lineup(files, model=None):
    onnx, engines = files
    return build_lineup(model, onnx, name="m", threads=THREADS, config=ONLY_TENSORRT, engines=engines, cuda=True)


def test_the_engine_is_opened_with_the_onnx_its_sidecar_names(files, monkeypatch):
    opened = []

    class Backend(SimpleNamespace):
        def close(self):
            pass

    monkeypatch.setattr(compat, "import_tensorrt", lambda *a: "trt module")
    monkeypatch.setattr(metadata, "read_metadata", lambda engine: SimpleNamespace(onnx_file="model.fp16.onnx"))
    monkeypatch.setattr(tensorrt_backend, "TensorRTBackend",
                        lambda engine, **kw: opened.append((Path(engine).name, kw)) or Backend(device="cuda"))
    result = lineup(files)
    assert opened == [("model.fp16.engine", {"onnx_path": files[0]["fp16"], "trt": "trt module", "rtx": RtxRuntimeSettings()})]
    assert list(result.backends) == ["tensorrt-fp16"]
    assert [(s.backend, s.reason.split(":")[0]) for s in result.skipped] == [("tensorrt-fp32", "tensorrt-fp32")]
    assert "04_build_engine builds one" in result.skipped[0].reason


def test_without_tensorrt_the_engines_are_skipped_with_the_install_hint(files, monkeypatch):
    def absent(*a):
        raise TensorRTUnavailableError("TensorRT is not installed in this Python; install it with `pip install tensorrt-cu12`")

    monkeypatch.setattr(compat, "import_tensorrt", absent)
    result = lineup(files)
    assert result.backends == {} and "pip install tensorrt-cu12" in result.skipped[1].reason


@pytest.mark.parametrize("error", [
    EngineMismatchError("its source ONNX model.fp16.onnx changed since the build"),
    BackendError("TensorRT execute_async_v3 returned False: illegal memory access"),
])
def test_a_stale_engine_or_a_runtime_failure_stops_the_run(files, monkeypatch, error):
    def fails(engine, **kw):
        raise error

    monkeypatch.setattr(compat, "import_tensorrt", lambda *a: "trt module")
    monkeypatch.setattr(metadata, "read_metadata", lambda engine: SimpleNamespace(onnx_file="model.fp16.onnx"))
    monkeypatch.setattr(tensorrt_backend, "TensorRTBackend", fails)
    with pytest.raises(type(error), match=str(error)[:20]):
        lineup(files)


def test_an_engine_built_from_an_unknown_onnx_is_refused(files, monkeypatch):
    monkeypatch.setattr(compat, "import_tensorrt", lambda *a: "trt module")
    monkeypatch.setattr(metadata, "read_metadata", lambda engine: SimpleNamespace(onnx_file="model.fused.onnx"))
    with pytest.raises(EngineMismatchError, match=r"was built from model.fused.onnx, which is not one of this model's"):
        lineup(files)


def test_tensorrt_rtx_engines_are_timed_with_eagerly_specialised_kernels(files, monkeypatch):
    rtx = pytest.importorskip("tensorrt_rtx_bindings", reason="TensorRT-RTX: pip install -r environment/requirements-trt-check.txt")
    opened = []
    monkeypatch.setattr(compat, "import_tensorrt", lambda *a: rtx)
    monkeypatch.setattr(metadata, "read_metadata", lambda engine: SimpleNamespace(onnx_file="model.fp16.onnx"))
    monkeypatch.setattr(tensorrt_backend, "TensorRTBackend",
                        lambda engine, **kw: opened.append(kw["rtx"]) or SimpleNamespace(device="cuda", close=lambda: None))
    lineup(files)
    assert opened == [RtxRuntimeSettings(kernel_specialization="eager")]
