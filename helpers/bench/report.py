"""Tables of benchmark results: a :class:`Table` shows itself as Markdown in a notebook (the last line of a
cell) and prints as Markdown text (README files paste it).

Formatting happens here and only here; the result objects keep full-precision numbers. There is no
pandas dependency: a benchmark table is a handful of rows, and Markdown is what both a notebook and a
README show well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .results import BenchResult
from .system import cpus_busy, device_label

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


@dataclass(frozen=True)
class Table:
    """A small table: a notebook displays it as Markdown, ``str()`` gives the same Markdown text."""

    header: Sequence[str]
    rows: Sequence[Sequence[Any]]
    numeric: Sequence[bool] | None = None

    def __str__(self) -> str:
        return markdown_table(self.header, self.rows, self.numeric)

    def _repr_markdown_(self) -> str:
        return str(self)


def speedups(result: BenchResult, model: str, baseline: str) -> dict[tuple[str, int, int], float]:
    """(backend, batch, seq_len) -> baseline median / backend median, where the baseline ran that shape."""
    base = {(m.batch, m.seq_len): m.latency.median_ms for m in result.select(model=model, backend=baseline)}
    return {(m.backend, m.batch, m.seq_len): base[(m.batch, m.seq_len)] / m.latency.median_ms
            for m in result.select(model=model) if (m.batch, m.seq_len) in base and m.latency.median_ms > 0}


def latency_table(result: BenchResult, model: str, batch: int, seq_len: int, baseline: str | None = None,
                  deployed: Sequence[str] = ()) -> Table:
    """All backends at one shape: median/p90/p99 end-to-end, GPU compute, speedup, throughput, parity; the
    backends named in ``deployed`` (e.g. :func:`~helpers.backends.best_backend`'s choices) are marked."""
    rows = result.select(model=model, batch=batch, seq_len=seq_len)
    ratio = speedups(result, model, baseline) if baseline else {}
    body = []
    for m in sorted(rows, key=lambda m: m.latency.median_ms):
        body.append([
            f"**{m.backend}** (deployed)" if m.backend in deployed else m.backend, m.device, m.precision, fmt_ms(m.latency.median_ms), fmt_ms(m.latency.p90_ms),
            fmt_ms(m.latency.p99_ms), fmt_ms(m.device_compute.median_ms if m.device_compute else None),
            fmt_ratio(ratio.get((m.backend, batch, seq_len))), f"{m.throughput_per_s:,.0f}",
            "-" if m.max_abs_diff is None else f"{m.max_abs_diff:.1e}", fmt_ms(m.first_call_ms),
            m.latency.n, f"{100 * m.drift:.0f}%",
        ])
    header = ["backend", "device", "precision", "median ms", "p90 ms", "p99 ms", "GPU compute ms",
              f"speedup vs {baseline}" if baseline else "speedup", "rows/s", "max abs logit diff",
              "first call ms", "n", "round drift"]
    return Table(header, body, [False, False, False] + [True] * 10)


def sweep_table(result: BenchResult, model: str, backends: Sequence[str] | None = None) -> Table:
    """Median end-to-end ms: one row per shape, one column per backend (``-`` where it did not run)."""
    ms = result.select(model=model)
    names = list(backends) if backends else list(dict.fromkeys(m.backend for m in ms))
    shapes = sorted({(m.batch, m.seq_len) for m in ms})
    table = {(m.backend, m.batch, m.seq_len): m.latency.median_ms for m in ms}
    body = [[f"{b}x{s}"] + [fmt_ms(table.get((n, b, s))) for n in names] for b, s in shapes]
    return Table(["batch x seq"] + names, body, [False] + [True] * len(names))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def text_table(result: BenchResult, model: str) -> Table:
    """Each backend's pass over a labelled set through the Classifier: accuracy, agreement with the reference,
    padding, sentences/s end to end and model only (same batches), and the tokenizer's share of the time."""
    body = [[a.backend, "yes" if a.bucketing else "no", a.count, f"{100 * a.accuracy:.2f}%",
             _pct(a.agreement_with_reference), _pct(a.padding_fraction), "-" if a.batches is None else a.batches,
             f"{a.sentences_per_s:,.0f}", "-" if a.model_only_per_s is None else f"{a.model_only_per_s:,.0f}",
             _pct(a.share_of_model_only), _pct(a.tokenizer_share)]
            for a in result.accuracy if a.model == model]
    return Table(["backend", "length bucketing", "sentences", "accuracy", "agrees with reference", "padding",
                  "batches", "end to end /s", "model only /s", "end to end / model only", "tokenizer share"],
                 body, [False, False] + [True] * 9)


def skipped_table(result: BenchResult) -> Table:
    """Every skipped backend with its reason (shapes of one backend and reason grouped)."""
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for s in result.skipped:
        grouped.setdefault((s.model, s.backend, s.reason), []).append(s.shape)
    body = [[model, backend, ", ".join(shapes), reason] for (model, backend, reason), shapes in grouped.items()]
    return Table(["model", "backend", "shapes", "why skipped"], body)


def machine_table(env: Mapping[str, Any]) -> Table:
    """What a result was measured on: device, CPU and threads, GPU, versions, date, and whether the CPUs were
    quiet at the start (the rule of :func:`~helpers.bench.system.cpus_busy`)."""
    host, ver = env["host"], env.get("versions", {})
    keys = ("torch", "onnxruntime", "onnxruntime-gpu", "tensorrt", "bert4torch", "numpy")
    threads = env.get("threads") or {}
    rows = [["device", device_label(env)],
            ["CPU", f"{host['cpu_model']}, {host['usable_cpus']} usable CPUs, {threads.get('torch_intra_op', '?')} "
                    "threads per CPU backend"]]
    gpu = env.get("gpu")
    if gpu:
        smi = gpu.get("nvidia_smi")
        driver = f", driver {smi['driver_version']}" if isinstance(smi, dict) else ""
        rows.append(["GPU", f"{gpu['name']}, compute {gpu.get('capability')}, CUDA {gpu.get('torch_cuda')}{driver}"])
    rows += [["versions", f"Python {host['python']}; " + ", ".join(f"{k} {ver[k]}" for k in keys if k in ver)],
             ["measured", env["measured_utc"]],
             ["CPUs at the start", cpus_busy(dict(env)) or "quiet"]]
    return Table(["", "this run"], rows)


#: The backends :func:`article_comparison` sets beside the article's rows, with their labels.
ARTICLE_ROWS: dict[str, str] = {
    "pytorch": "PyTorch fp32 eager, CPU", "onnxruntime-int8": "ONNX Runtime INT8, CPU",
    "pytorch-cuda": "PyTorch fp32 eager, GPU", "torch-cuda-fp16-graph": "PyTorch fp16 + CUDA graph, GPU",
    "ort-cuda-fused-fp16-graph": "ONNX Runtime CUDA fused fp16 + CUDA graph, GPU",
    "ort-cuda-fused-fp16-rightpad-graph": "the same, mask index for right-padded batches, GPU",
    "tensorrt-fp16": "TensorRT fp16, GPU"}


def article_comparison(result: BenchResult, model: str, rows: Mapping[str, str] = ARTICLE_ROWS, batch: int = 1,
                       seq_len: int = 200) -> Table:
    """Our medians next to the original article's table: ``rows`` maps our backend name -> a label."""
    body = [[label, "original article", fmt_ms(ms)] for label, ms in ARTICLE_MS.items()]
    label = device_label(result.environment)
    for backend, text in rows.items():
        found = result.select(model=model, backend=backend, batch=batch, seq_len=seq_len)
        if found:
            body.append([text, label, fmt_ms(found[0].latency.median_ms)])
    return Table(["what", "measured on", f"{batch}x{seq_len} ms"], body, [False, False, True])


def goals_table(result: BenchResult, gpu_backend: str | None = None) -> Table:
    """The series' goals judged on ``result`` (:func:`~helpers.bench.goals.check_goals`; ``gpu_backend``: the
    deployed GPU path, :func:`~helpers.backends.best_backend`'s choice)."""
    from .goals import check_goals

    return Table(["goal", "measured", "verdict"],
                 [[c.goal, c.measured, c.verdict] for c in check_goals(result, gpu_backend=gpu_backend)])
