"""TensorRT flavours and release differences, decided by feature detection.

Module stand-ins below carry only the attributes the detection looks at (so 10.x, 11.x and a lean
runtime can be described on a machine that has none of them); the real TensorRT-RTX and TensorRT 11 lean
modules are used for the same checks in test_trt_api_names.py and test_trt_builder.py.
"""

from __future__ import annotations

import importlib
import types

import pytest

from helpers.errors import ConfigError, TensorRTUnavailableError
from helpers.trt import compat


def module(name: str, version: str, *, builder: bool = True, fp16_flag: bool = False, strongly_typed: bool = True):
    trt = types.ModuleType(name)
    trt.__version__ = version
    trt.BuilderFlag = types.SimpleNamespace(**({"FP16": "fp16"} if fp16_flag else {}), TF32="tf32")
    if builder:
        trt.Builder, trt.OnnxParser = object, object
        trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(**({"STRONGLY_TYPED": 5} if strongly_typed else {}))
    return trt


TRT10 = module("tensorrt", "10.13.0.35", fp16_flag=True)
TRT11 = module("tensorrt", "11.4.0.106")
LEAN11 = module("tensorrt_lean_bindings", "11.4.0.106", builder=False)
RTX = module("tensorrt_rtx_bindings", "1.7.1.116")


def test_features_are_detected_not_read_from_the_version():
    assert compat.features_of(TRT10) == compat.TrtFeatures("10.13.0.35", True, "tensorrt", True)
    assert compat.features_of(TRT11) == compat.TrtFeatures("11.4.0.106", True, "tensorrt", True)
    assert compat.features_of(LEAN11).has_builder is False and compat.features_of(LEAN11).strongly_typed_flag is False
    assert compat.features_of(RTX).flavour == "tensorrt-rtx" and compat.features_of(RTX).label == "TensorRT-RTX 1.7.1.116"
    assert compat.features_of(TRT11).major == 11


def test_flavour_is_told_by_the_module():
    assert [compat.flavour_of(m) for m in (TRT10, LEAN11, RTX)] == ["tensorrt", "tensorrt", "tensorrt-rtx"]
    assert compat.flavour_of(types.ModuleType("tensorrt_rtx")) == "tensorrt-rtx"
    with pytest.raises(ConfigError, match=r"cannot tell which TensorRT flavour module 'onnxruntime' is"):
        compat.flavour_of(types.ModuleType("onnxruntime"))
    # stand-ins under other names are told by what they offer
    assert compat.flavour_of(types.SimpleNamespace(Runtime=object)) == "tensorrt"
    assert compat.flavour_of(types.SimpleNamespace(Runtime=object, ComputeCapability=object)) == "tensorrt-rtx"
    with pytest.raises(ConfigError, match=r"flavour must be one of \('tensorrt', 'tensorrt-rtx'\), got 'rtx'"):
        compat.TrtFeatures("1.0", flavour="rtx")


def test_strongly_typed_network_flag_where_it_exists():
    assert compat.network_flags(TRT10) == 1 << 5
    assert compat.network_flags(module("tensorrt", "12.0", strongly_typed=False)) == 0  # a release without the flag
    assert compat.network_flags(LEAN11) == 0


def test_builder_is_required_for_building():
    with pytest.raises(TensorRTUnavailableError, match=r"^The engine builder .* is not available in TensorRT 11.4.0.106"):
        compat.require_builder(LEAN11)
    compat.require_builder(RTX)  # TensorRT-RTX has a builder


def _hide(monkeypatch, *names):
    real = importlib.import_module

    def fake(name, *args):
        if name in names:
            raise ImportError(f"No module named '{name}'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)


def test_auto_detection_prefers_full_tensorrt(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", TRT11)
    monkeypatch.setitem(__import__("sys").modules, "tensorrt_rtx_bindings", RTX)
    assert compat.import_tensorrt() is TRT11
    assert compat.import_tensorrt("tensorrt-rtx") is RTX
    _hide(monkeypatch, "tensorrt")
    assert compat.import_tensorrt() is RTX  # TensorRT-RTX when full TensorRT is absent


def test_missing_tensorrt_gives_the_install_command_of_each_flavour(monkeypatch):
    _hide(monkeypatch, "tensorrt", "tensorrt_rtx_bindings")
    with pytest.raises(TensorRTUnavailableError) as err:
        compat.import_tensorrt()
    text = str(err.value)
    assert "data-centre GPUs (TensorRT): `pip install tensorrt-cu13` (or `pip install tensorrt-cu12` for a CUDA 12 driver)" in text
    assert ("GeForce RTX / RTX PRO GPUs (TensorRT-RTX): `pip install tensorrt-rtx-cu13-libs==1.7.1.116 "
            "tensorrt-rtx-cu13-bindings==1.7.1.116`") in text
    with pytest.raises(TensorRTUnavailableError, match=r"^TensorRT flavour 'tensorrt-rtx' is not installed"):
        compat.import_tensorrt("tensorrt-rtx")
    with pytest.raises(ConfigError, match="flavour must be one of"):
        compat.import_tensorrt("tensorrt-lean")


def test_install_commands():
    assert compat.install_command("tensorrt", 12) == "pip install tensorrt-cu12"
    assert compat.install_command("tensorrt-rtx", 12) == (
        "pip install tensorrt-rtx-cu12-libs==1.7.1.116 tensorrt-rtx-cu12-bindings==1.7.1.116")
    with pytest.raises(ConfigError, match="CUDA 12 and 13 drivers, got CUDA 11"):
        compat.install_command("tensorrt", 11)


@pytest.mark.parametrize("targets,cc,fits", [("9.0", "9.0", True), ("9.0", "8.9", False),
                                              (compat.RTX_PORTABLE_TARGETS, "8.6", True),
                                              (compat.RTX_PORTABLE_TARGETS, "9.0", False),
                                              (compat.RTX_PORTABLE_TARGETS, "12.1", True),
                                              (compat.RTX_PORTABLE_TARGETS, "7.5", False)])
def test_compute_capability_targets(targets, cc, fits):
    assert compat.runs_on(targets, cc) is fits


def test_bad_compute_capability_is_refused():
    with pytest.raises(ConfigError, match="compute capabilities must look like"):
        compat.runs_on("<cc>", "9.0")


def test_capturing_logger_filters_by_severity():
    trt = types.SimpleNamespace(ILogger=type("ILogger", (), {"__init__": lambda self: None}))
    logger = compat.capturing_logger(trt, "ERROR", echo=False)
    logger.log(types.SimpleNamespace(name="WARNING"), "slow")
    logger.log(types.SimpleNamespace(name="INTERNAL_ERROR"), "boom")
    assert logger.messages == [("INTERNAL_ERROR", "boom")]
    with pytest.raises(ConfigError, match="min_severity"):
        compat.capturing_logger(trt, "LOUD")


@pytest.mark.parametrize("flavour, cc, refused", [
    ("tensorrt", "9.0", False), ("tensorrt", "8.9", False),
    ("tensorrt-rtx", "9.0", True), ("tensorrt-rtx", "10.0", True),  # data-centre Hopper / Blackwell
    ("tensorrt-rtx", "8.9", False), ("tensorrt-rtx", "12.0", False), ("tensorrt-rtx", "12.1", False)])
def test_which_runtime_runs_on_which_gpu(flavour, cc, refused):
    reason = compat.runtime_refusal(flavour, cc)
    assert (reason is not None) == refused
    if refused:
        assert f"compute capability {cc}" in reason and "pip install tensorrt-cu13" in reason
