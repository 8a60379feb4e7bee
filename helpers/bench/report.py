"""Tables of benchmark results, as Markdown text (Jupyter renders it; README files paste it).

Formatting happens here and only here; the result objects keep full-precision numbers. There is no
pandas dependency: a benchmark table is a handful of rows, and Markdown is what both a notebook and a
README show well.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .harness import Measurement
from .results import BenchResult
from .system import device_label

#: The original article's table (batch 1, sequence 200, mean of 500 loops; hardware not stated).
ARTICLE_MS: dict[str, float] = {
    "PyTorch, CPU": 144.0,
    "PyTorch, GPU": 29.0,
    "ONNX Runtime, CPU": 66.0,
    "ONNX + TensorRT, GPU": 101.0,
}


def fmt_ms(value: float | None) -> str:
    """Milliseconds with three significant digits (``0.652``, ``38.1``, ``209``); ``-`` for None."""
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[bool] | None = None) -> str:
    """A GitHub-flavoured Markdown table; ``numeric[i]`` right-aligns column ``i``."""
    numeric = list(numeric) if numeric is not None else [False] * len(header)
    if len(numeric) != len(header) or any(len(r) != len(header) for r in rows):
        raise ValueError(f"every row needs {len(header)} cells like the header {list(header)}")
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def speedups(result: BenchResult, model: str, baseline: str) -> dict[tuple[str, int, int], float]:
    """(backend, batch, seq_len) -> baseline median / backend median, where the baseline ran that shape."""
    base = {(m.batch, m.seq_len): m.latency.median_ms for m in result.select(model=model, backend=baseline)}
    return {(m.backend, m.batch, m.seq_len): base[(m.batch, m.seq_len)] / m.latency.median_ms
            for m in result.select(model=model) if (m.batch, m.seq_len) in base and m.latency.median_ms > 0}


def latency_table(result: BenchResult, model: str, batch: int, seq_len: int, baseline: str | None = None) -> str:
    """All backends at one shape: median/p90/p99 end-to-end, GPU compute, speedup, throughput, parity."""
    rows = result.select(model=model, batch=batch, seq_len=seq_len)
    ratio = speedups(result, model, baseline) if baseline else {}
    body = []
    for m in sorted(rows, key=lambda m: m.latency.median_ms):
        body.append([
            m.backend, m.device, m.precision, fmt_ms(m.latency.median_ms), fmt_ms(m.latency.p90_ms),
            fmt_ms(m.latency.p99_ms), fmt_ms(m.device_compute.median_ms if m.device_compute else None),
            fmt_ratio(ratio.get((m.backend, batch, seq_len))), f"{m.throughput_per_s:,.0f}",
            "-" if m.max_abs_diff is None else f"{m.max_abs_diff:.1e}", fmt_ms(m.first_call_ms),
            m.latency.n, f"{100 * m.drift:.0f}%",
        ])
    header = ["backend", "device", "precision", "median ms", "p90 ms", "p99 ms", "GPU compute ms",
              f"speedup vs {baseline}" if baseline else "speedup", "rows/s", "max abs logit diff",
              "first call ms", "n", "round drift"]
    return markdown_table(header, body, [False, False, False] + [True] * 10)


def sweep_table(result: BenchResult, model: str, backends: Sequence[str] | None = None) -> str:
    """Median end-to-end ms: one row per shape, one column per backend (``-`` where it did not run)."""
    ms = result.select(model=model)
    names = list(backends) if backends else list(dict.fromkeys(m.backend for m in ms))
    shapes = sorted({(m.batch, m.seq_len) for m in ms})
    table = {(m.backend, m.batch, m.seq_len): m.latency.median_ms for m in ms}
    body = [[f"{b}x{s}"] + [fmt_ms(table.get((n, b, s))) for n in names] for b, s in shapes]
    return markdown_table(["batch x seq"] + names, body, [False] + [True] * len(names))


def accuracy_table(result: BenchResult, model: str) -> str:
    """Accuracy and whole-set throughput of each backend, with and without length bucketing."""
    body = [[a.backend, "yes" if a.bucketing else "no", a.pad_multiple, a.count, f"{100 * a.accuracy:.2f}%",
             "-" if a.agreement_with_reference is None else f"{100 * a.agreement_with_reference:.2f}%",
             "-" if a.padding_fraction is None else f"{100 * a.padding_fraction:.0f}%",
             f"{a.seconds:.2f}", f"{a.sentences_per_s:,.0f}"]
            for a in result.accuracy if a.model == model]
    return markdown_table(["backend", "length bucketing", "width multiple", "sentences", "accuracy",
                           "agrees with reference", "padding", "seconds", "sentences/s"], body, [False, False] + [True] * 7)


def skipped_table(result: BenchResult) -> str:
    """Every skipped backend with its reason (shapes of one backend and reason grouped)."""
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for s in result.skipped:
        grouped.setdefault((s.model, s.backend, s.reason), []).append(s.shape)
    body = [[model, backend, ", ".join(shapes), reason] for (model, backend, reason), shapes in grouped.items()]
    return markdown_table(["model", "backend", "shapes", "why skipped"], body)


def environment_summary(env: Mapping[str, Any]) -> str:
    """One Markdown line naming device, CPU, threads, key versions and the date of measurement."""
    host, ver = env["host"], env.get("versions", {})
    keys = ("torch", "onnxruntime", "onnxruntime-gpu", "tensorrt", "bert4torch", "numpy")
    versions = ", ".join(f"{k} {ver[k]}" for k in keys if k in ver)
    threads = env.get("threads") or {}
    gpu = env.get("gpu")
    gpu_s = ""
    if gpu:
        smi = gpu.get("nvidia_smi")
        driver = f", driver {smi['driver_version']}" if isinstance(smi, dict) else ""
        gpu_s = f" GPU CUDA {gpu.get('torch_cuda')}{driver};"
    return (f"**{device_label(env)}** ({host['cpu_model']}, {host['usable_cpus']} usable CPUs, CPU threads "
            f"{threads.get('torch_intra_op', '?')});{gpu_s} Python {host['python']}; {versions}; "
            f"measured {env['measured_utc']}.")


def article_comparison(result: BenchResult, model: str, rows: Mapping[str, str], batch: int = 1,
                       seq_len: int = 200) -> str:
    """Our medians next to the original article's table: ``rows`` maps our backend name -> a label."""
    body = [[label, "original article", fmt_ms(ms)] for label, ms in ARTICLE_MS.items()]
    label = device_label(result.environment)
    for backend, text in rows.items():
        found = result.select(model=model, backend=backend, batch=batch, seq_len=seq_len)
        if found:
            body.append([text, label, fmt_ms(found[0].latency.median_ms)])
    return markdown_table(["what", "measured on", f"{batch}x{seq_len} ms"], body, [False, False, True])


def measurement_line(m: Measurement) -> str:
    """One human line for a measurement (for logs and asserts)."""
    dev = f", GPU compute {fmt_ms(m.device_compute.median_ms)} ms" if m.device_compute else ""
    return f"{m.backend} {m.batch}x{m.seq_len}: median {fmt_ms(m.latency.median_ms)} ms (p99 {fmt_ms(m.latency.p99_ms)}){dev}"
