"""Plots of benchmark results: latency against sequence length, and speedup over a baseline.

Figures are built as :class:`matplotlib.figure.Figure` objects without touching pyplot's global state, so
they work the same in a notebook (which displays a returned figure), in a script and in tests; save them
with :func:`save_figure`, which writes atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ..errors import ConfigError
from ..io import atomic_write
from .report import speedups
from .results import BenchResult


def _batches(result: BenchResult, model: str, batches: Sequence[int] | None) -> list[int]:
    found = sorted({m.batch for m in result.select(model=model)})
    chosen = [b for b in (batches or found) if b in found]
    if not chosen:
        raise ConfigError(f"no measurements of model {model!r} to plot (batches {list(batches or [])}); "
                          f"models measured: {sorted({m.model for m in result.measurements})}.")
    return chosen


def _grid(n: int, title: str) -> tuple[Figure, list]:
    fig = Figure(figsize=(4.2 * n + 2.4, 4.0), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    fig.suptitle(title)
    return fig, list(axes)


def _styles(result: BenchResult, model: str) -> dict[str, dict]:
    """One colour per backend, the same in every panel; squares for CPU backends, circles for GPU ones."""
    devices = {m.backend: m.device for m in result.select(model=model)}
    return {name: {"color": f"C{i % 10}", "marker": "s" if dev == "cpu" else "o"}
            for i, (name, dev) in enumerate(devices.items())}


def _legend(fig: Figure, axes: list) -> None:
    """One legend for the figure, right of the panels, listing every backend drawn in any panel."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside right upper", fontsize="small")


def plot_latency_vs_seq(result: BenchResult, model: str, batches: Sequence[int] | None = None,
                        title: str | None = None) -> Figure:
    """Median end-to-end latency (log scale) against sequence length, one line per backend, one panel per batch."""
    chosen = _batches(result, model, batches)
    fig, axes = _grid(len(chosen), title or f"{model}: median latency per call (lower is better)")
    styles = _styles(result, model)
    for ax, batch in zip(axes, chosen):
        for name, style in styles.items():
            pts = sorted((m.seq_len, m.latency.median_ms) for m in result.select(model=model, backend=name, batch=batch))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, **style)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length (tokens)")
        ax.set_ylabel("median latency (ms)")
        ax.set_title(f"batch {batch}")
        ax.grid(True, which="both", alpha=0.3)
    _legend(fig, axes)
    return fig


def plot_speedup(result: BenchResult, model: str, baseline: str, batches: Sequence[int] | None = None,
                 title: str | None = None) -> Figure:
    """Speedup (baseline median / backend median) against sequence length, one panel per batch size."""
    chosen = _batches(result, model, batches)
    ratio = speedups(result, model, baseline)
    if not ratio:
        raise ConfigError(f"baseline {baseline!r} has no measurements of model {model!r}; choose one of "
                          f"{sorted({m.backend for m in result.select(model=model)})}.")
    fig, axes = _grid(len(chosen), title or f"{model}: speedup over {baseline} (higher is better)")
    styles = _styles(result, model)
    for ax, batch in zip(axes, chosen):
        for name, style in styles.items():
            pts = sorted((s, r) for (b, bt, s), r in ratio.items() if b == name and bt == batch)
            if pts and name != baseline:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, **style)
        ax.axhline(1.0, color="grey", lw=1, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length (tokens)")
        ax.set_ylabel(f"speedup over {baseline}")
        times = FuncFormatter(lambda v, _: f"{v:g}x")
        ax.yaxis.set_major_formatter(times)
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}x" if str(v)[0] in "235" else ""))
        ax.set_title(f"batch {batch}")
        ax.grid(True, which="both", alpha=0.3)
    _legend(fig, axes)
    return fig


def plot_shape_bars(result: BenchResult, model: str, batch: int, seq_len: int, title: str | None = None) -> Figure:
    """Horizontal bars of median latency (with p90 whiskers) of every backend at one shape."""
    ms = sorted(result.select(model=model, batch=batch, seq_len=seq_len), key=lambda m: m.latency.median_ms)
    if not ms:
        raise ConfigError(f"no measurements of {model!r} at {batch}x{seq_len} to plot.")
    fig = Figure(figsize=(7, 0.45 * len(ms) + 1.5), layout="constrained")
    ax = fig.subplots()
    y = range(len(ms))
    med = [m.latency.median_ms for m in ms]
    err = [[0] * len(ms), [m.latency.p90_ms - m.latency.median_ms for m in ms]]
    colors = ["tab:orange" if m.device == "cpu" else "tab:green" for m in ms]
    ax.barh(list(y), med, xerr=err, color=colors, alpha=0.85, ecolor="0.3", capsize=2)
    ax.set_yticks(list(y), [f"{m.backend} ({m.device})" for m in ms])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median ms (whisker: p90; orange: CPU, green: GPU)")
    for i, m in zip(y, ms):
        ax.text(m.latency.p90_ms * 1.08, i, f"{m.latency.median_ms:.3g}", va="center", fontsize="small")
    ax.set_xlim(right=max(m.latency.p90_ms for m in ms) * 3)
    ax.set_title(title or f"{model}, batch {batch} x sequence {seq_len}")
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Save ``fig`` as PNG at ``path`` atomically."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


def standard_figures(result: BenchResult, baselines: dict[str, str] | None = None, article: tuple[int, int] = (1, 200)) -> dict[str, Figure]:
    """The benchmark's usual figures by file stem: ``article_1x200`` (bars of the architecture model, or the
    first model measured there), ``latency_<model>`` and ``speedup_<model>_<device>`` for every model with
    several sequence lengths, the speedup over ``baselines[device]`` (PyTorch fp32 eager by default)."""
    from .lineup import BASELINES

    baselines = dict(BASELINES if baselines is None else baselines)
    figs: dict[str, Figure] = {}
    models = list(dict.fromkeys(m.model for m in result.measurements))
    at_article = [n for n in models if result.select(model=n, batch=article[0], seq_len=article[1])]
    if at_article:
        name = next((n for n in at_article if n.startswith("arch-")), at_article[0])
        figs[f"article_{article[0]}x{article[1]}"] = plot_shape_bars(result, name, *article)
    for name in models:
        if len({m.seq_len for m in result.select(model=name)}) < 2:
            continue
        figs[f"latency_{name}"] = plot_latency_vs_seq(result, name)
        for device, baseline in baselines.items():
            subset = BenchResult(result.environment, result.timing,
                                 [m for m in result.select(model=name) if m.device == device])
            others = {m.backend for m in subset.measurements} - {baseline}
            if len({m.seq_len for m in subset.measurements}) > 1 and subset.select(backend=baseline) and others:
                figs[f"speedup_{name}_{device}"] = plot_speedup(subset, name, baseline)
    return figs
