"""Benchmark the random-weight architecture model from the command line (no notebook, no training needed).

    python -m helpers.bench --arch base --shapes 1x200 --out results/cpu

times every backend that can run here (PyTorch fp32, ONNX Runtime fp32 / fused / INT8 on the CPU; on a GPU
also PyTorch fp16, CUDA-graph replay, torch.compile and ONNX Runtime CUDA where installed) side by side,
and writes ``results.json`` plus plots into ``--out``. Notebook 06_benchmark does the same and more (the
trained model, accuracy, throughput).

    python -m helpers.bench --from-json results/h100/results.json --out results/h100

redraws the plots and prints the tables of an existing result file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import BenchResult, TimingConfig, capture_environment, fix_cpu_threads, load_result, time_side_by_side
from ..config import has_cuda
from .harness import parse_shapes
from .lineup import BASELINES, CPU_BACKENDS, GPU_BACKENDS, LineupConfig, build_lineup, combine, cpu_token_rule, only_at
from .models import architecture_model, ensure_onnx_set
from .plots import save_figure, standard_figures
from .report import environment_summary, latency_table, skipped_table, sweep_table
from ..machine import load_average
from .system import busy_cpu_warning


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="base", help="model size of the random-weight model (base = BERT-base)")
    p.add_argument("--shapes", default="1x200", help="comma-separated BATCHxSEQ shapes, e.g. 1x200,8x128")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--time-budget", type=float, default=0.0, help="seconds per backend and shape (0: no limit)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: every usable CPU)")
    p.add_argument("--cpu", default=",".join(CPU_BACKENDS), help="CPU backends to build ('' for none)")
    p.add_argument("--gpu", default=",".join(GPU_BACKENDS), help="GPU backends to build ('' for none)")
    p.add_argument("--cpu-max-tokens", type=int, default=0, help="CPU backends skip larger shapes (0: never)")
    p.add_argument("--compile-mode", default="max-autotune")
    p.add_argument("--compile-shapes", default="1x200")
    p.add_argument("--onnx-dir", default="artifacts/bench", help="where the model's ONNX files are kept")
    p.add_argument("--out", default="artifacts/bench", help="folder for results.json and plots")
    p.add_argument("--from-json", default=None, help="only redraw plots and print tables of this result file")
    a = p.parse_args(argv)
    out = Path(a.out)
    if a.from_json:
        result = load_result(a.from_json)
    else:
        result = measure(a)
        result.save(out / "results.json")
    show(result, out)
    return 0


def show(result: BenchResult, out: Path) -> None:
    """Print the tables of ``result`` and write its standard plots into ``out``."""
    print(environment_summary(result.environment))
    for model in dict.fromkeys(m.model for m in result.measurements):
        if result.select(model=model, batch=1, seq_len=200):
            print(f"\n{model}, 1x200\n" + latency_table(result, model, 1, 200, baseline=BASELINES["cpu"]))
        print(f"\n{model}, median ms\n" + sweep_table(result, model))
    if result.skipped:
        print("\n" + skipped_table(result))
    for stem, fig in standard_figures(result).items():
        print("wrote", save_figure(fig, out / f"{stem}.png"))


def measure(a: argparse.Namespace) -> BenchResult:
    """Build the architecture model and its line-up, and time it at the requested shapes."""
    threads = fix_cpu_threads(a.threads)
    env = capture_environment(threads)
    print(busy_cpu_warning(env) or "CPUs quiet.")
    timing = TimingConfig(warmup=a.warmup, iters=a.iters, rounds=a.rounds, time_budget_s=a.time_budget)
    arch = architecture_model(a.arch)
    name = f"arch-{arch.model_size}"
    gpu = tuple(x for x in a.gpu.split(",") if x)
    gpu_variants = {"ort-cuda": ("fp16",), "ort-cuda-fused": ("fused-fp16",),
                    "ort-cuda-fused-rightpad": ("fused-fp16", "fused-fp16-rightpad")}
    variants = ("plain", "fused", "int8") + tuple(dict.fromkeys(
        v for k, vs in gpu_variants.items() if k in gpu and has_cuda() for v in vs))
    onnx = ensure_onnx_set(arch, Path(a.onnx_dir) / name, variants)
    shapes = parse_shapes(a.shapes)
    compile_shapes = {(s.batch, s.seq_len) for s in parse_shapes(a.compile_shapes)}
    result = BenchResult(environment=env, timing=timing.to_dict(), parameters=vars(a))
    config = LineupConfig(cpu=tuple(x for x in a.cpu.split(",") if x), gpu=gpu, compile_mode=a.compile_mode)
    with build_lineup(arch.model, onnx, name=name, threads=threads, config=config) as lineup:
        measured, skipped = time_side_by_side(
            lineup.backends, shapes, timing, model=name, vocab_size=arch.vocab_size, reference=BASELINES["cpu"],
            skip_rule=combine(cpu_token_rule(a.cpu_max_tokens), only_at("torch-compile", compile_shapes)))
        result.add(measured, lineup.skipped + skipped)
    result.notes.append(f"load average after the run: {load_average()}")
    return result


if __name__ == "__main__":
    raise SystemExit(main())
