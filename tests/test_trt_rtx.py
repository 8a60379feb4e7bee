"""TensorRT-RTX's runtime settings (helpers/trt/rtx.py), applied where the execution context is built.

Engines, contexts, runtime configs and runtime caches are the strict doubles of tests/trt_doubles.py, whose
members and signatures tests/test_trt_doubles.py holds to NVIDIA's real ``tensorrt_rtx_bindings`` classes;
the enums (``CudaGraphStrategy``, ``DynamicShapesKernelSpecializationStrategy``) are the real ones. A real
TensorRT-RTX context needs an RTX-class GPU, which no machine here has.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.errors import ConfigError, TensorRTUnavailableError
from helpers.trt import compat
from helpers.trt.rtx import RtxRuntimeSettings, has_rtx_runtime, runtime_cache_path
from helpers.trt.runtime import EngineRunner, LoadedEngine

from trt_doubles import EngineDouble, RuntimeCacheDouble, numpy_buffers

lean = pytest.importorskip("tensorrt_lean_bindings", reason="pip install -r environment/requirements-trt-check.txt")
rtx = pytest.importorskip("tensorrt_rtx_bindings", reason="TensorRT-RTX: pip install -r environment/requirements-trt-check.txt")

PROFILES = [((1, 1), (4, 16), (8, 32))]


def runner_on(trt, settings=RtxRuntimeSettings()):
    buffers = numpy_buffers()
    logger = compat.capturing_logger(trt, echo=False)
    engine = EngineDouble(trt, PROFILES, buffers.memory, logger)
    return EngineRunner(LoadedEngine(trt, None, engine, logger, Path("model.fp16.engine")), buffers, settings), engine


def run_once(runner):
    ids = np.arange(12, dtype=np.int32).reshape(3, 4)
    np.testing.assert_array_equal(runner.infer({"input_ids": ids, "segment_ids": ids % 2})["logits"][:, 0], ids.sum(1))


def test_the_rtx_module_is_detected_by_its_features():
    assert has_rtx_runtime(rtx) and not has_rtx_runtime(lean)
    # the runtime's feature detection and the flavour recorded in sidecars agree on the real modules
    assert (compat.flavour_of(rtx), compat.flavour_of(lean)) == ("tensorrt-rtx", "tensorrt")


def test_settings_are_checked_and_default_to_tensorrt_rtxs_own():
    assert RtxRuntimeSettings().to_dict() == {"runtime_cache": None, "cuda_graphs": "disabled", "kernel_specialization": "lazy"}
    with pytest.raises(ConfigError, match=r"cuda_graphs must be one of \('disabled', 'whole_graph_capture'\)"):
        RtxRuntimeSettings(cuda_graphs="on")
    with pytest.raises(ConfigError, match="kernel_specialization must be one of"):
        RtxRuntimeSettings(kernel_specialization="JIT")
    assert runtime_cache_path("artifacts/trt/model.fp16.engine") == Path("artifacts/trt/model.fp16.engine.rtxcache")


def test_full_tensorrt_keeps_its_plain_context_and_refuses_rtx_only_settings(tmp_path):
    runner, engine = runner_on(lean)
    assert engine.runtime_configs == [] and engine.contexts[-1].runtime_config is None
    assert runner.describe()["rtx_runtime"] is None
    run_once(runner)
    with pytest.raises(TensorRTUnavailableError, match=rf"TensorRT-RTX runtime settings .* not available in TensorRT {lean.__version__}"):
        runner_on(lean, RtxRuntimeSettings(cuda_graphs="whole_graph_capture"))


def test_rtx_context_is_built_with_the_chosen_strategies(tmp_path):
    runner, engine = runner_on(rtx, RtxRuntimeSettings(cuda_graphs="whole_graph_capture", kernel_specialization="eager"))
    config = engine.runtime_configs[-1]
    assert engine.contexts[-1].runtime_config is config
    assert config.cuda_graph_strategy == rtx.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE
    assert config.dynamic_shapes_kernel_specialization_strategy == rtx.DynamicShapesKernelSpecializationStrategy.EAGER
    assert config.get_runtime_cache() is None  # no cache asked for: nothing is written
    run_once(runner)
    runner.close()
    assert list(tmp_path.iterdir()) == []


def test_runtime_cache_is_loaded_before_the_context_and_saved_atomically_on_close(tmp_path):
    cache = tmp_path / "model.fp16.engine.rtxcache"
    settings = RtxRuntimeSettings(runtime_cache=cache)
    first, engine = runner_on(rtx, settings)
    assert engine.runtime_configs[-1].get_runtime_cache() is not None
    assert first.describe()["rtx_runtime"] == {**settings.to_dict(), "cache_loaded": False}
    first.rtx.runtime_cache.kernels.append("gemm_3x4")  # what TensorRT-RTX compiled while running
    run_once(first)
    first.close()
    assert cache.read_bytes() == RuntimeCacheDouble.MAGIC + b"gemm_3x4"
    assert sorted(p.name for p in tmp_path.iterdir()) == [cache.name]  # no temporary file left behind

    second, engine = runner_on(rtx, settings)
    assert second.rtx.cache_loaded and engine.runtime_configs[-1].get_runtime_cache().kernels == ["gemm_3x4"]
    second.close()


def test_a_foreign_runtime_cache_is_ignored_and_replaced(tmp_path):
    cache = tmp_path / "model.fp16.engine.rtxcache"
    cache.write_bytes(b"a cache from another GPU or TensorRT-RTX version")
    runner, engine = runner_on(rtx, RtxRuntimeSettings(runtime_cache=cache))
    assert runner.rtx.cache_loaded is False and engine.runtime_configs[-1].get_runtime_cache().kernels == []
    runner.close()
    assert cache.read_bytes() == RuntimeCacheDouble.MAGIC
