"""Plots of benchmark results: latency against sequence length, speedup over a baseline, one shape's bars,
and texts per second end to end beside the model alone.

Figures are made with pyplot (``plt.subplots``), as a notebook expects: save one with :func:`save_figure`
(atomically), then ``plt.show()`` draws it as an image in the notebook; a script closes it with
``plt.close(fig)`` after saving.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

import numpy as np

from ..errors import ConfigError
from ..io import atomic_write
from .harness import device_kind
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
    fig, axes = plt.subplots(1, n, squeeze=False, figsize=(4.2 * n + 2.4, 4.0), layout="constrained")
    fig.suptitle(title)
    return fig, list(axes[0])


def _styles(result: BenchResult, model: str) -> dict[str, dict]:
    """One colour per backend, the same in every panel; squares for CPU backends, circles for GPU ones."""
    devices = {m.backend: device_kind(m.device) for m in result.select(model=model)}
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
    """Speedup (baseline median / backend median) against sequence length of the backends on the baseline's
    kind of device, one panel per batch size."""
    ratio = speedups(result, model, baseline)
    if not ratio:
        raise ConfigError(f"baseline {baseline!r} has no measurements of model {model!r}; choose one of "
                          f"{sorted({m.backend for m in result.select(model=model)})}.")
    device = device_kind(result.select(model=model, backend=baseline)[0].device)
    result = BenchResult(result.environment, result.timing,
                         [m for m in result.select(model=model) if device_kind(m.device) == device])
    chosen = _batches(result, model, batches)
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
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(ms) + 1.5), layout="constrained")
    y = range(len(ms))
    med = [m.latency.median_ms for m in ms]
    err = [[0] * len(ms), [m.latency.p90_ms - m.latency.median_ms for m in ms]]
    colors = ["tab:orange" if device_kind(m.device) == "cpu" else "tab:green" for m in ms]
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


def plot_text_rates(result: BenchResult, model: str, title: str | None = None) -> Figure:
    """Sentences per second of each backend through the Classifier (texts in, labels out) beside the same
    batches through the backend alone, with length bucketing; the tokenizer alone as a dashed line, and
    its share of each end-to-end time as a label."""
    recs = sorted((a for a in result.accuracy if a.model == model and a.bucketing and a.model_only_seconds),
                  key=lambda a: a.sentences_per_s)
    if not recs:
        raise ConfigError(f"no text rates of model {model!r} to plot; run Lineup.classify first (models with "
                          f"text rates: {sorted({a.model for a in result.accuracy if a.model_only_seconds})}).")
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(recs) + 1.8), layout="constrained")
    y = np.arange(len(recs))
    ax.barh(y + 0.2, [a.model_only_per_s for a in recs], height=0.4, color="0.75", label="model only (same batches)")
    ax.barh(y - 0.2, [a.sentences_per_s for a in recs], height=0.4, color="tab:blue", label="end to end (Classifier)")
    for i, a in zip(y, recs):
        ax.text(a.sentences_per_s * 1.05, i - 0.2, f"{a.sentences_per_s:,.0f}/s, tokenizer "
                f"{100 * a.tokenizer_share:.0f}%", va="center", fontsize="small")
    tok = recs[0].count / float(np.median([a.tokenize_seconds for a in recs]))
    ax.axvline(tok, color="tab:red", ls="--", lw=1, label=f"tokenizer alone ({tok:,.0f}/s)")
    ax.set_yticks(y, [f"{a.backend} ({device_kind(a.device or 'cpu')})" for a in recs])
    ax.set_xscale("log")
    ax.set_xlim(right=max(tok, max(a.model_only_per_s for a in recs)) * 4)
    ax.set_xlabel(f"sentences per second, {recs[0].count:,} {recs[0].dataset} sentences (higher is better)")
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title(title or f"{model}: texts to labels, end to end and model only")
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Save ``fig`` as PNG at ``path`` atomically."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
