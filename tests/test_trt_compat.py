"""TensorRT 10.x / 11.x branching, tested with module objects that do or do not offer a feature.

The stand-in modules below only carry the attributes the branching looks at: these tests check this
project's feature detection and what it chooses, not TensorRT. (The real 11.x lean runtime module is used
for the same checks in test_trt_api_names.py.)
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from helpers.errors import ConfigError, TensorRTUnavailableError
from helpers.trt import compat

TRT10 = SimpleNamespace(__version__="10.13.0.35", BuilderFlag=SimpleNamespace(FP16="fp16-flag", TF32="tf32"),
                        Builder=object, OnnxParser=object)
TRT11 = SimpleNamespace(__version__="11.4.0.106", BuilderFlag=SimpleNamespace(TF32="tf32"),
                        Builder=object, OnnxParser=object)
LEAN11 = SimpleNamespace(__version__="11.4.0.106", BuilderFlag=SimpleNamespace(TF32="tf32"))


def test_features_are_detected_not_read_from_the_version():
    assert compat.features_of(TRT10) == compat.TrtFeatures("10.13.0.35", True, True)
    assert compat.features_of(TRT11) == compat.TrtFeatures("11.4.0.106", False, True)
    assert compat.features_of(LEAN11).has_builder is False
    # A 10.x release that already dropped the flag is treated like 11.x: detection, not version numbers.
    odd = SimpleNamespace(__version__="10.99.0", BuilderFlag=SimpleNamespace(), Builder=object, OnnxParser=object)
    assert compat.features_of(odd).fp16_builder_flag is False
    assert compat.features_of(TRT11).major == 11


def test_fp16_flag_where_it_exists_and_a_uniform_message_where_not():
    assert compat.fp16_builder_flag(TRT10) == "fp16-flag"
    with pytest.raises(TensorRTUnavailableError,
                       match=r"^BuilderFlag.FP16 is not available in TensorRT 11.4.0.106; .*model.fp16.onnx"):
        compat.fp16_builder_flag(TRT11)
    with pytest.raises(TensorRTUnavailableError, match=r"^The engine builder .* is not available in TensorRT 11.4.0.106"):
        compat.require_builder(LEAN11)
    compat.require_builder(TRT11)  # a full module passes


def test_precision_plans_per_release():
    fp16_10 = compat.precision_plan(compat.features_of(TRT10), "fp16")
    fp16_11 = compat.precision_plan(compat.features_of(TRT11), "fp16")
    fp32_11 = compat.precision_plan(compat.features_of(TRT11), "fp32")
    assert (fp16_10.onnx_variant, fp16_10.use_fp16_flag, fp16_10.trtexec_args) == ("fp32", True, ("--fp16",))
    assert (fp16_11.onnx_variant, fp16_11.use_fp16_flag, fp16_11.trtexec_args) == ("fp16", False, ())
    assert (fp32_11.onnx_variant, fp32_11.use_fp16_flag, fp32_11.polygraphy_args) == ("fp32", False, ())
    assert "strongly typed" in fp16_11.explanation
    with pytest.raises(ConfigError, match="precision must be one of"):
        compat.precision_plan(compat.features_of(TRT11), "int8")


def test_missing_tensorrt_gives_install_steps(monkeypatch):
    import importlib

    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a: (_ for _ in ()).throw(ImportError("No module named 'tensorrt'"))
                        if name == "tensorrt" else real(name, *a))
    with pytest.raises(TensorRTUnavailableError, match=r"TensorRT is not installed.*tensorrt-cu12.*tensorrt-cu13.*Dockerfile"):
        compat.import_tensorrt()
    assert compat.tensorrt_available() is False


def test_api_lists_are_disjoint_where_they_should_be():
    names = compat.api_names()
    assert "FP16" in names["BuilderFlag"] and "FP16" not in compat.RUNTIME_API.get("BuilderFlag", ())
    for role in compat.OBJECT_NAMES.values():
        assert role in names, f"{role} holds TensorRT objects but has no name list"


def test_capturing_logger_filters_by_severity():
    module = SimpleNamespace(ILogger=type("ILogger", (), {"__init__": lambda self: None}))
    logger = compat.capturing_logger(module, "ERROR", echo=False)
    logger.log(SimpleNamespace(name="WARNING"), "slow")
    logger.log(SimpleNamespace(name="INTERNAL_ERROR"), "boom")
    assert logger.messages == [("INTERNAL_ERROR", "boom")]
    with pytest.raises(ConfigError, match="min_severity"):
        compat.capturing_logger(module, "LOUD")
