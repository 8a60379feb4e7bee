"""Benchmark the random-weight architecture model from the command line (no notebook, no training needed).

    python -m helpers.bench --arch base --shapes 1x200 --out results/cpu

times every backend that can run here (PyTorch fp32, ONNX Runtime fp32 / fused / INT8 on the CPU; on a GPU
also PyTorch fp16, CUDA-graph replay, torch.compile and ONNX Runtime CUDA where installed) side by side,
and writes ``results.json`` plus plots into ``--out``. Notebook 06_benchmark does the same and more (the
trained model, its TensorRT engines, accuracy, texts per second).

    python -m helpers.bench --from-json results/h100/results.json --out results/h100

redraws the plots and prints the tables of an existing result file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..backends.registry import BACKENDS
from ..config import resolve_model_size
from ..machine import load_average
from . import BenchResult, build_lineup
from .lineup import BASELINES, CPU_BACKENDS, GPU_BACKENDS
from .models import architecture_model
from .report import latency_table, machine_table, skipped_table, sweep_table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="base", help="model size of the random-weight model (base = BERT-base)")
    p.add_argument("--shapes", default="1x200", help="comma-separated BATCHxSEQ shapes, e.g. 1x200,8x128")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--time-budget", type=float, default=0.0, help="seconds per backend and shape (0: no limit)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: every usable CPU)")
    p.add_argument("--backends", default=",".join(CPU_BACKENDS + GPU_BACKENDS),
                   help=f"comma-separated backend names, of: {', '.join(BACKENDS)}")
    p.add_argument("--cpu-max-tokens", type=int, default=0, help="CPU backends skip larger shapes (0: never)")
    p.add_argument("--compile-shapes", default="1x200")
    p.add_argument("--onnx-dir", default="artifacts/bench", help="where the model's ONNX files are kept")
    p.add_argument("--out", default="artifacts/bench", help="folder for results.json and plots")
    p.add_argument("--from-json", default=None, help="only redraw plots and print tables of this result file")
    a = p.parse_args(argv)
    out = Path(a.out)
    if a.from_json:
        result = BenchResult.load(a.from_json)
    else:
        result = measure(a)
        result.save(out / "results.json")
    show(result, out)
    return 0


def figures(result: BenchResult) -> dict[str, object]:
    """The usual figures of a result by file stem: ``article_1x200`` (bars of the first model timed there),
    ``latency_<model>`` and ``speedup_<model>_<device>`` for every model timed at several sequence lengths."""
    from .plots import plot_latency_vs_seq, plot_shape_bars, plot_speedup

    figs: dict[str, object] = {}
    models = list(dict.fromkeys(m.model for m in result.measurements))
    at_article = [n for n in models if result.select(model=n, batch=1, seq_len=200)]
    if at_article:
        figs["article_1x200"] = plot_shape_bars(result, at_article[0], 1, 200)
    for name in models:
        if len({m.seq_len for m in result.select(model=name)}) < 2:
            continue
        figs[f"latency_{name}"] = plot_latency_vs_seq(result, name)
        for device, baseline in BASELINES.items():
            if result.select(model=name, backend=baseline):
                figs[f"speedup_{name}_{device}"] = plot_speedup(result, name, baseline)
    return figs


def show(result: BenchResult, out: Path) -> None:
    """Print the tables of ``result`` and write its usual plots into ``out``."""
    import matplotlib.pyplot as plt

    from .plots import save_figure

    print(machine_table(result.environment))
    for model in dict.fromkeys(m.model for m in result.measurements):
        if result.select(model=model, batch=1, seq_len=200):
            print(f"\n{model}, 1x200\n{latency_table(result, model, 1, 200, baseline=BASELINES['cpu'])}")
        print(f"\n{model}, median ms\n{sweep_table(result, model)}")
    if result.skipped:
        print(f"\n{skipped_table(result)}")
    for stem, fig in figures(result).items():
        print("wrote", save_figure(fig, out / f"{stem}.png"))
        plt.close(fig)


def measure(a: argparse.Namespace) -> BenchResult:
    """Build the architecture model and its line-up, and time it at the requested shapes."""
    result = BenchResult.start(a.threads, warmup=a.warmup, iters=a.iters, rounds=a.rounds, time_budget_s=a.time_budget)
    arch = architecture_model(a.arch, onnx_dir=Path(a.onnx_dir) / f"arch-{resolve_model_size(a.arch).name}")
    names = [n for n in a.backends.split(",") if n]
    with build_lineup(arch.model, arch.files, name=arch.name, names=names, threads=a.threads,
                      cpu_max_tokens=a.cpu_max_tokens, compile_shapes=a.compile_shapes) as lineup:
        lineup.time(result, a.shapes)
    result.notes.append(f"load average after the run: {load_average()}")
    return result


if __name__ == "__main__":
    raise SystemExit(main())
