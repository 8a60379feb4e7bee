"""06's GPU path on a real GPU: the line-up opens the PyTorch GPU backends through the registry, times them with
their GPU compute beside, and classifies texts end to end beside the same batches alone. Needs a CUDA GPU (the
CPU machines skip it, saying so); ONNX Runtime CUDA joins where onnxruntime-gpu is installed."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

GPU_TORCH = ("pytorch-cuda", "torch-cuda-fp16", "torch-cuda-fp16-graph")
LABELS = ["negative", "positive"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from helpers.backends import model_files
    from helpers.bench.models import architecture_model

    arch = architecture_model("tiny", vocab_size=300, onnx_dir=tmp_path_factory.mktemp("arch"), log=None)
    assert set(arch.files) >= {"plain", "fused", "int8", "fp16", "fused-fp16", "fused-fp16-rightpad"}
    return arch, model_files(next(iter(arch.files.values())).parent)


def test_gpu_lineup_times_and_classifies(setup, tokenizer, sentences):
    from helpers.backends.registry import cuda_refusal
    from helpers.bench import BenchResult, build_lineup

    arch, files = setup
    ort = () if cuda_refusal() else ("ort-cuda-fused-fp16-graph", "ort-cuda-fused-fp16-rightpad-graph")
    names = ("pytorch",) + GPU_TORCH + ort
    result = BenchResult({"host": {"usable_cpus": 2}}, {"warmup": 2, "iters": 6, "rounds": 2})
    with build_lineup(arch.model, files, name="arch-tiny", names=names, cuda=True) as lineup:
        assert tuple(lineup.backends) == names and lineup.reference == "pytorch-cuda" and lineup.skipped == []
        measured = lineup.time(result, "1x16, 4x32", log=None)
        for m in measured:
            assert m.max_abs_diff is not None and m.max_abs_diff < (1e-3 if m.precision == "fp32" else 5e-2), m.backend
            assert (m.device_compute is not None) == (m.backend != "pytorch" and m.backend != "pytorch-cuda")
        texts = sentences[0] * 8
        records = lineup.classify(result, tokenizer, LABELS, texts, np.array(sentences[1] * 8), dataset="test",
                                  rounds=2, only=",".join(("pytorch-cuda",) + GPU_TORCH[1:] + ort), log=None)
    assert {r.backend for r in records} == set(GPU_TORCH + ort)
    for r in records:
        assert r.device.startswith("cuda") and r.model_only_seconds > 0 and r.batches >= 1
        assert r.agreement_with_reference >= r.min_agreement, (r.backend, r.agreement_with_reference)
    router = next((r for r in records if r.backend.endswith("rightpad-graph")), None)
    assert router is None or router.agreement_with_reference >= 0.99
