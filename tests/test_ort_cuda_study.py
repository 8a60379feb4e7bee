"""environment/gpu/ort_cuda_study.py: its correctness check runs on the CPU here (the timing needs a GPU).

The check must tell the two attention-mask formats apart: both are right on right-padded rows, and only the
raw 2-D mask stays right when id 0 appears inside a row.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from helpers.backends.onnxruntime import OrtBackend
from helpers.backends.torch_backend import TorchBackend
from helpers.bench.models import architecture_model, ensure_onnx_set
from helpers.onnx_variants import FusionConfig, fused_onnx_from_plain

SCRIPT = Path(__file__).resolve().parents[1] / "environment" / "gpu" / "ort_cuda_study.py"
VOCAB = 300


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("ort_cuda_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """A tiny classifier whose attention matters (larger weights), fused with each mask format (fp32, CPU)."""
    import torch

    arch = architecture_model("tiny", VOCAB, seed=3)
    with torch.no_grad():
        for p in arch.model.parameters():
            p.mul_(4.0)  # random small weights barely attend; scaled up, masking a position changes the logits
    folder = tmp_path_factory.mktemp("study")
    plain = ensure_onnx_set(arch, folder, ("plain",), log=None)["plain"]
    raw = fused_onnx_from_plain(plain, folder / "raw.onnx", FusionConfig(raw_attention_mask=True))
    index = fused_onnx_from_plain(plain, folder / "index.onnx", FusionConfig(raw_attention_mask=False))
    return arch, OrtBackend(raw.path), OrtBackend(index.path)


def test_parity_check_separates_the_mask_formats(study, graphs):
    arch, raw, index = graphs
    reference = TorchBackend(arch.model)
    for backend in (raw, index):
        right = study.parity(backend, reference, VOCAB, inner_zeros=False)
        assert right["max_abs_diff"] < 1e-3 and right["argmax_agreement"] == 1.0
    assert study.parity(raw, reference, VOCAB, inner_zeros=True)["max_abs_diff"] < 1e-3
    assert study.parity(index, reference, VOCAB, inner_zeros=True)["max_abs_diff"] > 1e-2


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_has_cuda(), reason="on a GPU machine the study would run for real")
def test_without_a_gpu_the_study_says_so(study, capsys):
    assert study.main(["--out", "unused"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().out
