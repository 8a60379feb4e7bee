"""TensorRT-RTX's runtime settings (helpers/trt/rtx.py), applied by TensorRTBackend where the context is built.

Engines, contexts, runtime configs and runtime caches are the strict doubles of tests/trt_doubles.py, whose
members and signatures tests/test_trt_doubles.py holds to NVIDIA's real ``tensorrt_rtx_bindings`` classes; the
module and its enums (``DynamicShapesKernelSpecializationStrategy``) are the real ones with only ``Runtime``
replaced. A real TensorRT-RTX context needs an RTX-class GPU, which no machine here has.
"""

from __future__ import annotations

import numpy as np
import pytest

import helpers.backends.tensorrt as tensorrt_backend
from helpers.backends import TensorRTBackend
from helpers.errors import ConfigError, TensorRTUnavailableError
from helpers.trt import compat
from helpers.trt.rtx import has_rtx_runtime, runtime_cache_path

from trt_doubles import EngineDouble, RuntimeCacheDouble, engine_on_disk, module_with_runtime, numpy_buffers, running_here

lean = pytest.importorskip("tensorrt_lean_bindings", reason="pip install -r environment/requirements-trt-check.txt")
rtx = pytest.importorskip("tensorrt_rtx_bindings", reason="TensorRT-RTX: pip install -r environment/requirements-trt-check.txt")

PROFILES = [((1, 1), (4, 16), (8, 32))]


@pytest.fixture(autouse=True)
def here(monkeypatch):
    monkeypatch.setattr(tensorrt_backend, "running_target", lambda trt, device: running_here(trt))


def backend_on(trt, folder, **kwargs):
    buffers = numpy_buffers()
    engine = EngineDouble(trt, PROFILES, buffers.memory)
    return TensorRTBackend(engine_on_disk(folder, trt), buffers=buffers, trt=module_with_runtime(trt, engine), **kwargs), engine


def run_once(backend):
    ids = np.arange(12, dtype=np.int32).reshape(3, 4)
    np.testing.assert_array_equal(backend.predict_logits(ids, ids % 2)[:, 0], ids.sum(1))


def test_the_rtx_module_is_detected_by_its_features():
    assert has_rtx_runtime(rtx) and not has_rtx_runtime(lean)
    # the runtime's feature detection and the flavour recorded in sidecars agree on the real modules
    assert (compat.flavour_of(rtx), compat.flavour_of(lean)) == ("tensorrt-rtx", "tensorrt")
    assert runtime_cache_path("artifacts/trt/model.fp16.engine").name == "model.fp16.engine.rtxcache"


def test_full_tensorrt_keeps_its_plain_context_and_refuses_rtx_only_settings(tmp_path):
    backend, engine = backend_on(lean, tmp_path)
    assert engine.runtime_configs == [] and engine.contexts[-1].runtime_config is None
    assert backend.describe()["rtx_runtime"] is None
    run_once(backend)
    backend.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.fp16.engine", "model.fp16.engine.json"]  # no cache
    with pytest.raises(TensorRTUnavailableError, match=rf"kernel_specialization='eager' is not available in TensorRT "
                                                       rf"{lean.__version__}"):
        backend_on(lean, tmp_path, kernel_specialization="eager")
    with pytest.raises(ConfigError, match="kernel_specialization must be one of"):
        backend_on(rtx, tmp_path, kernel_specialization="JIT")


def test_the_rtx_context_is_built_with_the_chosen_kernel_specialization(tmp_path):
    backend, engine = backend_on(rtx, tmp_path, kernel_specialization="eager")
    config = engine.runtime_configs[-1]
    assert engine.contexts[-1].runtime_config is config
    assert config.dynamic_shapes_kernel_specialization_strategy == rtx.DynamicShapesKernelSpecializationStrategy.EAGER
    assert backend.describe()["rtx_runtime"]["kernel_specialization"] == "eager"
    run_once(backend)
    backend.close()


def test_the_runtime_cache_beside_the_engine_is_loaded_before_the_context_and_saved_atomically_on_close(tmp_path):
    cache = tmp_path / "model.fp16.engine.rtxcache"
    first, engine = backend_on(rtx, tmp_path)
    assert engine.runtime_configs[-1].get_runtime_cache() is first.rtx.runtime_cache
    assert first.describe()["rtx_runtime"] == {"runtime_cache": str(cache), "cache_loaded": False,
                                               "kernel_specialization": "lazy"}
    first.rtx.runtime_cache.kernels.append("gemm_3x4")  # what TensorRT-RTX compiled while running
    run_once(first)
    first.close()
    assert cache.read_bytes() == RuntimeCacheDouble.MAGIC + b"gemm_3x4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.fp16.engine", "model.fp16.engine.json", cache.name]

    second, engine = backend_on(rtx, tmp_path)
    assert second.rtx.cache_loaded and engine.runtime_configs[-1].get_runtime_cache().kernels == ["gemm_3x4"]
    second.close()


def test_a_foreign_runtime_cache_is_ignored_and_replaced(tmp_path):
    cache = tmp_path / "model.fp16.engine.rtxcache"
    cache.write_bytes(b"a cache from another GPU or TensorRT-RTX version")
    backend, engine = backend_on(rtx, tmp_path)
    assert backend.rtx.cache_loaded is False and engine.runtime_configs[-1].get_runtime_cache().kernels == []
    backend.close()
    assert cache.read_bytes() == RuntimeCacheDouble.MAGIC
