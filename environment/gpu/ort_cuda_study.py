"""ONNX Runtime CUDA on the BERT-base architecture: which attention-mask format of the GPU-fused FP16 graph is
faster, and is it still correct?

    python environment/gpu/ort_cuda_study.py [--out DIR] [--shapes 1x200,1x128,8x128,32x128]

The series' ``model.fused.fp16.onnx`` gives every ``Attention`` the raw 2-D mask, which is right for any
padding pattern (bert4torch treats every id 0 as padding, wherever it is). ONNX Runtime's fused attention
kernels on a GPU need the 1-D "mask index" (the number of real tokens per row) instead, which is only right
when padding sits at the end of each row, as the series' ``Classifier`` always makes it. This study builds
both graphs (same export, same fusion otherwise), times them side by side with I/O binding and CUDA graphs,
with PyTorch fp16 CUDA-graph replay as an anchor and PyTorch fp32 as the reference, and checks both graphs
on right-padded batches and on batches with id 0 inside rows. Needs a CUDA GPU and onnxruntime-gpu.
Writes ``ort_cuda_study.json`` (a :class:`helpers.bench.BenchResult`) into ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
from pathlib import Path

import numpy as np


def parity(backend, reference, vocab_size: int, *, inner_zeros: bool, seed: int = 7) -> dict[str, float]:
    """Max |logit difference| and argmax agreement against ``reference`` on 64 x 128 right-padded rows
    (and, with ``inner_zeros``, id 0 inside rows too)."""
    from helpers.export import sample_feed

    ids, seg = sample_feed(64, 128, vocab_size, seed=seed, pad_inside=inner_zeros)
    if not inner_zeros:  # right padding of random lengths only
        keep = np.random.default_rng(seed).integers(2, 129, size=64)
        for row, k in enumerate(keep):
            ids[row, k:] = 0
    got, ref = backend.predict_logits(ids, seg), reference.predict_logits(ids, seg)
    return {"max_abs_diff": float(np.abs(got - ref).max()),
            "argmax_agreement": float(np.mean(got.argmax(1) == ref.argmax(1)))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT", "artifacts/bench"))
    p.add_argument("--shapes", default="1x200,1x128,8x128,32x128")
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("ort_cuda_study: PyTorch sees no CUDA GPU; run this on a GPU machine with onnxruntime-gpu installed.")
        return 2

    from helpers.backends.onnxruntime_cuda import OrtCudaBackend, OrtCudaConfig
    from helpers.backends.torch_backend import TorchBackend
    from helpers.backends.torch_gpu import TorchCudaBackend, TorchCudaConfig
    from helpers.bench import BenchResult, TimingConfig, capture_environment, fix_cpu_threads, time_side_by_side
    from helpers.bench.harness import parse_shapes
    from helpers.bench.models import architecture_model, ensure_onnx_set
    from helpers.onnx_variants import GPU_FUSION, FusionConfig, fused_fp16_onnx_from_plain

    threads = fix_cpu_threads(0)
    arch = architecture_model("base")
    timing = TimingConfig(warmup=20, iters=a.iters, rounds=a.rounds)
    result = BenchResult(environment=capture_environment(threads), timing=timing.to_dict(), parameters=vars(a))
    with tempfile.TemporaryDirectory(prefix="ort-cuda-study-") as tmp:
        plain = ensure_onnx_set(arch, tmp, ("plain",))["plain"]
        graphs = {
            "ort-cuda-fused-fp16-graph (raw 2-D mask)": fused_fp16_onnx_from_plain(plain, Path(tmp) / "raw.onnx", GPU_FUSION),
            "ort-cuda-fused-fp16-graph (1-D mask index)": fused_fp16_onnx_from_plain(
                plain, Path(tmp) / "index.onnx", FusionConfig(skip_layer_norm=True, raw_attention_mask=False)),
        }
        reference = TorchBackend(copy.deepcopy(arch.model), "cuda")
        backends = {"pytorch-cuda": reference,
                    "torch-cuda-fp16-graph": TorchCudaBackend(arch.model, TorchCudaConfig(mode="cuda_graph"))}
        for name, report in graphs.items():
            backends[name] = OrtCudaBackend(report.path, OrtCudaConfig(cuda_graph=True), precision="fp16", name=name)
            for inner in (False, True):
                check = parity(backends[name], reference, arch.vocab_size, inner_zeros=inner)
                label = "id 0 inside rows" if inner else "right padding"
                result.notes.append(f"{name}, 64 x 128 with {label}: max |logit diff| {check['max_abs_diff']:.2e}, "
                                    f"argmax agreement {check['argmax_agreement']:.4f}")
                print(result.notes[-1])
        measured, skipped = time_side_by_side(backends, parse_shapes(a.shapes), timing, model="arch-base",
                                              vocab_size=arch.vocab_size, reference="pytorch-cuda")
        result.add(measured, skipped)
        for b in backends.values():
            b.close()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    print("wrote", result.save(out / "ort_cuda_study.json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
