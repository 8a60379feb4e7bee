"""GPU backends, the parts that can be checked without a GPU: configs, names, and the clear errors raised
where CUDA (or onnxruntime-gpu) is absent. Their per-shape cache is tested in test_shape_cache.py."""

from __future__ import annotations

import pytest
import torch

from helpers.backends import onnxruntime_cuda
from helpers.backends.onnxruntime_cuda import OrtCudaBackend, OrtCudaConfig, cuda_provider_missing_reason
from helpers.backends.torch_gpu import TorchCudaBackend, TorchCudaConfig, require_cuda
from helpers.errors import BackendError, ConfigError


def test_config_names_say_the_variant():
    assert TorchCudaConfig().name == "torch-cuda-fp16"
    assert TorchCudaConfig(precision="fp32").name == "torch-cuda-fp32"
    assert TorchCudaConfig(mode="cuda_graph").name == "torch-cuda-fp16-graph"
    assert TorchCudaConfig(mode="compile", compile_mode="reduce-overhead").name == "torch-compile-fp16-reduce-overhead"


@pytest.mark.parametrize("kwargs, match", [
    ({"precision": "int4"}, "precision must be one of"),
    ({"mode": "jit"}, "mode must be one of"),
    ({"compile_mode": "fast"}, "compile_mode must be one of"),
    ({"max_shapes": 0}, "max_shapes and capture_warmup must be >= 1"),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TorchCudaConfig(**kwargs)


def test_no_cuda_gives_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendError, match="torch-cuda-fp16-graph: PyTorch .* sees no CUDA GPU"):
        TorchCudaBackend(torch.nn.Linear(2, 2), TorchCudaConfig(mode="cuda_graph"))
    with pytest.raises(BackendError, match="step x: .*use the CPU backends"):
        require_cuda("step x")


def test_ort_cuda_missing_provider_is_a_clear_error(monkeypatch, tmp_path):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    reason = cuda_provider_missing_reason()
    assert reason is not None and "has no CUDAExecutionProvider" in reason and "onnxruntime-gpu" in reason
    with pytest.raises(BackendError, match="ort-cuda-fp16-graph: onnxruntime .* has no CUDAExecutionProvider"):
        OrtCudaBackend(tmp_path / "model.onnx", OrtCudaConfig(cuda_graph=True), precision="fp16")


def test_ort_cuda_missing_model_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(onnxruntime_cuda, "cuda_provider_missing_reason", lambda: None)
    with pytest.raises(BackendError, match="no ONNX model at .*run notebook 02_onnx_export"):
        OrtCudaBackend(tmp_path / "absent.onnx")


def test_ort_cuda_config_validation():
    with pytest.raises(ConfigError, match="device_id >= 0"):
        OrtCudaConfig(device_id=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_variants_agree_with_fp32_eager():
    """On a GPU machine: fp16 eager and graph replay match fp32 on a small model, shapes are cached."""
    import numpy as np

    model = torch.nn.Sequential(torch.nn.Embedding(50, 16), torch.nn.Flatten(), torch.nn.LazyLinear(2))

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, ids, seg):
            return self.m(ids.long() + seg.long())

    ids = np.random.default_rng(0).integers(5, 50, size=(2, 8)).astype(np.int32)
    seg = np.zeros_like(ids)
    Wrap()(torch.from_numpy(ids), torch.from_numpy(seg))  # materialise the lazy layer
    ref = TorchCudaBackend(Wrap(), TorchCudaConfig(precision="fp32")).predict_logits(ids, seg)
    graph = TorchCudaBackend(Wrap(), TorchCudaConfig(mode="cuda_graph"))
    for _ in range(2):
        np.testing.assert_allclose(graph.predict_logits(ids, seg), ref, atol=1e-2)
    assert graph.describe()["shapes_built"] == 1
    assert len(graph.device_compute_ms(ids, seg, 3)) == 3
