"""Serving measurements: throughput and latency against concurrency, the server's statistics beside the
client's, NVIDIA's perf_analyzer beside the project's load tool, the in-process Classifier as the ceiling, the
issues' goals, a results JSON and a plot.

For each protocol (HTTP, gRPC), each model (dynamic batching on: ``sentiment``; off: ``sentiment_nobatch``)
and each concurrency, one closed-loop run of :func:`~helpers.serving.load.run_load` is made after a short
warm-up, with Triton's statistics read before and after it. Where perf_analyzer runs (glibc >= 2.38, see
:mod:`helpers.serving.perf_analyzer`) it measures the batching model over both protocols at the same
concurrencies. The cases run one after another on one server.

Goals are judged only on a quiet machine: both load tools and the server share the host's CPUs, so when other
programs kept them busy (:func:`~helpers.bench.system.cpus_busy`, the rule 06 uses) the figures are recorded and
shown, and every verdict is withheld with the reason.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from ..bench.stats import LatencyStats
from ..bench.system import capture_environment, cpus_busy
from ..errors import ConfigError, ServingError
from ..io import atomic_write_json
from ..machine import cpu_summary
from .client import PROTOCOLS, make_client, statistics_after, stats_delta, wait_idle
from .load import LoadSpec, run_load
from .perf_analyzer import PerfConfig, perf_sweep

#: The goals on a 2-core CPU with the small model and ONNX Runtime INT8 (the project's load tool measures them).
CPU_GOALS = {"batching_vs_c1": 2.0, "batching_vs_nobatch": 1.5, "overhead_ms": 2.0, "at_concurrency": 16}
#: The goals on one GPU (the H200 of the release run): gRPC, one sentence per request, measured by perf_analyzer at
#: a concurrency of at least ``min_concurrency``, p99 reported beside the throughput.
GPU_GOALS = {"sentences_per_s": 10_000, "moonshot_sentences_per_s": 20_000, "min_concurrency": 64}
#: Concurrencies swept by default: the CPU goals read 1 and 16; the GPU goals need 64 or more.
CONCURRENCIES = {"cpu": (1, 2, 4, 8, 16, 32), "gpu": (1, 4, 16, 64, 128)}


@dataclass(frozen=True)
class SweepConfig:
    """What to measure. ``requests`` per case is at least ``min_requests_per_client`` x concurrency."""

    concurrencies: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    protocols: tuple[str, ...] = PROTOCOLS
    models: tuple[tuple[str, str], ...] = (("batching", "sentiment"), ("no batching", "sentiment_nobatch"))
    requests: int = 400
    min_requests_per_client: int = 10
    warmup_requests: int = 20
    timeout_s: float = 30.0
    ceiling_requests: int = 200
    #: perf_analyzer (where it runs): the models it measures, at the same concurrencies, and how
    perf_models: tuple[tuple[str, str], ...] = (("batching", "sentiment"),)
    perf: PerfConfig = PerfConfig()

    def __post_init__(self) -> None:
        if not self.concurrencies or min(self.concurrencies) < 1 or self.requests < 1:
            raise ConfigError(f"sweep: concurrencies and requests must be >= 1, got {self}.")
        unknown = [p for p in self.protocols if p not in PROTOCOLS]
        if unknown:
            raise ConfigError(f"sweep: unknown protocols {unknown}; choose from {PROTOCOLS}.")

    @classmethod
    def for_device(cls, device: str, *, concurrencies: str | Sequence[int] = "", perf_ms: int = 3000,
                   **fields: Any) -> "SweepConfig":
        """The sweep for ``device``: ``concurrencies`` (``"1,8"`` or a sequence; empty: :data:`CONCURRENCIES`),
        perf_analyzer's window ``perf_ms``, other fields of the dataclass as given."""
        from .repository import parse_ints

        chosen = parse_ints(concurrencies, "concurrencies") if isinstance(concurrencies, str) else tuple(concurrencies)
        return cls(concurrencies=chosen or CONCURRENCIES[device], perf=PerfConfig(measurement_ms=perf_ms), **fields)

    def requests_at(self, concurrency: int) -> int:
        return max(self.requests, self.min_requests_per_client * concurrency)


def in_process_ceiling(classifier: Any, texts: Sequence[str], requests: int) -> dict[str, Any]:
    """The same model called in this process through the Classifier, one sentence per call: no server, no network."""
    if not texts or requests < 1:
        raise ConfigError("ceiling: give sentences and requests >= 1.")
    for text in texts[:5]:
        classifier.predict([text])  # warm-up
    samples = []
    for i in range(requests):
        t0 = time.perf_counter()
        classifier.predict([texts[i % len(texts)]])
        samples.append((time.perf_counter() - t0) * 1e3)
    stats = LatencyStats.from_samples(samples)
    batch = list(texts[: max(32, min(len(texts), 512))])
    runs = []
    for _ in range(3):  # the median of three whole-batch runs
        t0 = time.perf_counter()
        classifier.predict(batch)
        runs.append(time.perf_counter() - t0)
    batched = len(batch) / float(sorted(runs)[1])
    return {"requests": requests, "p50_ms": round(stats.median_ms, 3), "p90_ms": round(stats.p90_ms, 3),
            "p99_ms": round(stats.p99_ms, 3), "sentences_per_s_one_by_one": round(1000.0 / stats.median_ms, 2),
            "sentences_per_s_batched": round(batched, 2), "batched_sentences": len(batch),
            "backend": classifier.backend.describe()}


#: How far a served probability may stray from the in-process one on the same model file. Dynamic INT8 quantizes
#: each batch's activations with that batch's own range, so a sentence's probabilities depend a little on the
#: sentences batched with it, and the server forms other batches than the caller; float models differ by rounding.
SERVED_PROBABILITY_TOLERANCE = {"int8": 0.05, "float": 1e-3}


def compare_served(expected: Any, served: Sequence[Any], backend_kind: str) -> dict[str, Any]:
    """Served predictions (a list of per-request :class:`~helpers.backends.Prediction`) against the in-process one.

    A label may differ only for a sentence the model is on the fence about: one whose two highest in-process
    probabilities are closer than twice the largest probability difference seen. ``ok`` is False when the largest
    difference exceeds the backend's tolerance or when any label flips away from the fence."""
    import numpy as np

    labels = [label for p in served for label in p.labels]
    probs = np.concatenate([p.probabilities for p in served]) if served else np.zeros((0, 0))
    if len(labels) != len(expected.labels):
        raise ServingError(f"serving: {len(labels)} served answers for {len(expected.labels)} sentences.")
    diff = float(np.abs(probs - expected.probabilities).max()) if len(labels) else 0.0
    top2 = np.sort(expected.probabilities, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    flips = [i for i, (a, b) in enumerate(zip(labels, expected.labels)) if a != b]
    off_fence = [i for i in flips if margin[i] > 2 * diff]
    tolerance = SERVED_PROBABILITY_TOLERANCE["int8" if backend_kind.endswith("int8") else "float"]
    return {"sentences": len(labels), "agreement": 1.0 - len(flips) / max(len(labels), 1),
            "max_probability_diff": diff, "tolerance": tolerance, "flips": len(flips),
            "flips_off_the_fence": len(off_fence), "ok": diff <= tolerance and not off_fence}


def sweep(url_for: dict[str, str], texts: Sequence[str], config: SweepConfig = SweepConfig(),
          progress: bool = True) -> list[dict[str, Any]]:
    """Every (protocol, model, concurrency) case against the server whose ``url_for[protocol]`` are given."""
    from ..progress import tqdm

    cases = [(p, label, model, c) for p in config.protocols for label, model in config.models for c in config.concurrencies]
    rows = []
    for protocol, label, model, concurrency in tqdm(cases, desc="load cases", disable=not progress):
        url = url_for[protocol]
        run_load(LoadSpec(url, protocol, model, concurrency, config.warmup_requests, timeout_s=config.timeout_s), texts)
        client = make_client(protocol, url)
        try:
            before = wait_idle(client, protocol, model)
            run = run_load(LoadSpec(url, protocol, model, concurrency, config.requests_at(concurrency),
                                    timeout_s=config.timeout_s), texts)
            after = statistics_after(client, protocol, model, before, run.answered)
        finally:
            client.close()
        rows.append({**run.summary(), "batching": label, "server": stats_delta(before, after).to_dict()})
    return rows


def _row(rows: Sequence[dict[str, Any]], protocol: str, batching: str, concurrency: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["protocol"] == protocol and r["batching"] == batching
                 and r["concurrency"] == concurrency and "error" not in r), None)


def _goal(protocol: str, goal: str, measured: Any, met: bool | None, why: str = "") -> dict[str, Any]:
    verdict = {True: "met", False: "not met", None: f"not measured{': ' + why if why else ''}"}[met]
    return {"protocol": protocol, "goal": goal, "measured": measured, "met": met, "verdict": verdict}


def cpu_goals(rows: Sequence[dict[str, Any]], ceiling: dict[str, Any]) -> list[dict[str, Any]]:
    """The 2-core CPU's three goals per protocol, from the project's load tool (``met`` None where a case is
    missing)."""
    c = CPU_GOALS["at_concurrency"]
    goals = []
    for protocol in sorted({r["protocol"] for r in rows}):
        one, hi, hi_off = (_row(rows, protocol, "batching", 1), _row(rows, protocol, "batching", c),
                           _row(rows, protocol, "no batching", c))
        ratio1 = hi["sentences_per_s"] / one["sentences_per_s"] if one and hi and one["sentences_per_s"] else None
        ratio2 = hi["sentences_per_s"] / hi_off["sentences_per_s"] if hi and hi_off and hi_off["sentences_per_s"] else None
        # The server's own overhead is read on the model without dynamic batching: with batching, a lone request also
        # waits up to max_queue_delay for company, by design (that cost is visible in the batching row's latency).
        lone = _row(rows, protocol, "no batching", 1) or one
        overhead = lone["p50_ms"] - ceiling["p50_ms"] if lone and lone.get("p50_ms") is not None else None
        for goal, value, met in [
                (f"throughput at concurrency {c} with batching >= {CPU_GOALS['batching_vs_c1']}x concurrency 1",
                 ratio1, None if ratio1 is None else ratio1 >= CPU_GOALS["batching_vs_c1"]),
                (f"throughput at concurrency {c}: batching >= {CPU_GOALS['batching_vs_nobatch']}x no batching",
                 ratio2, None if ratio2 is None else ratio2 >= CPU_GOALS["batching_vs_nobatch"]),
                (f"server overhead per request at concurrency 1, no batching (p50 minus in-process p50) < "
                 f"{CPU_GOALS['overhead_ms']} ms", overhead, None if overhead is None else overhead < CPU_GOALS["overhead_ms"])]:
            goals.append(_goal(protocol, goal, None if value is None else round(value, 3), met,
                               "" if met is not None else "a case it needs did not run"))
    return goals


def gpu_goals(perf: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The GPU goals: the best gRPC throughput perf_analyzer measured on the batching model at a concurrency of at
    least ``GPU_GOALS['min_concurrency']``, with its p99 latency (not measured where perf_analyzer did not run)."""
    low = GPU_GOALS["min_concurrency"]
    names = [f"gRPC, 1 sentence per request, perf_analyzer, concurrency >= {low}: >= {GPU_GOALS['sentences_per_s']:,} "
             "sentences/s (p99 reported)",
             f"the same, moonshot: >= {GPU_GOALS['moonshot_sentences_per_s']:,} sentences/s"]
    targets = [GPU_GOALS["sentences_per_s"], GPU_GOALS["moonshot_sentences_per_s"]]
    if not perf or not perf.get("ran"):
        why = (perf or {}).get("skipped") or "perf_analyzer did not run"
        return [_goal("grpc", name, None, None, why) for name in names]
    cases = [r for r in perf["cases"] if r["protocol"] == "grpc" and r.get("batching") == "batching"
             and r["concurrency"] >= low and "error" not in r]
    if not cases:
        return [_goal("grpc", name, None, None, f"no gRPC case at concurrency >= {low} succeeded") for name in names]
    best = max(cases, key=lambda r: r["sentences_per_s"])
    measured = (f"{best['sentences_per_s']:,.0f} sentences/s at concurrency {best['concurrency']}, "
                f"p99 {best['p99_ms']:.1f} ms")
    return [_goal("grpc", name, measured, best["sentences_per_s"] >= target) for name, target in zip(names, targets)]


def judged(goals: list[dict[str, Any]], env: dict[str, Any]) -> list[dict[str, Any]]:
    """``goals`` with every verdict withheld, and the reason given, when the CPUs were busy (06's rule)."""
    busy = cpus_busy(env)
    if busy is None:
        return goals
    return [{**g, "met": None, "verdict": f"not judged: the CPUs were busy ({busy})"} if g["met"] is not None else g
            for g in goals]


def results_record(rows: list[dict[str, Any]], ceiling: dict[str, Any], *, config: SweepConfig, server: dict[str, Any],
                   repository: dict[str, Any], perf: dict[str, Any] | None = None, device: str = "cpu",
                   env: dict[str, Any] | None = None, note: str = "") -> dict[str, Any]:
    """The results JSON: cases of both load tools, ceiling, goals (judged only on a quiet machine), and the machine
    (with lscpu's model and flags) with the reason it was busy, if it was."""
    env = env if env is not None else capture_environment()
    busy = cpus_busy(env)
    goals = gpu_goals(perf) if device == "gpu" else cpu_goals(rows, ceiling)
    return {"kind": "serving-load", "device": device, "environment": env, "cpu": cpu_summary(), "busy_machine": busy,
            "reference": busy is None and not note, "note": note, "sweep": asdict(config), "server": server,
            "repository": repository, "ceiling": ceiling, "cases": rows,
            "perf_analyzer": perf if perf is not None else {"ran": False, "skipped": "not asked for", "cases": []},
            "goals": judged(goals, env)}


def plot_latency_throughput(record: dict[str, Any], ax: Any) -> None:
    """p50 latency against throughput on ``ax``: one line per protocol and batching mode of the project's load tool
    (whiskers to the p90), perf_analyzer's cases where it ran (whiskers to the p99), points labelled by concurrency;
    the in-process ceiling as reference lines."""
    series = [("load tool", r, ":" if r["batching"] == "no batching" else "-", "o", "p90_ms") for r in record["cases"]]
    series += [("perf_analyzer", r, "--", "s", "p99_ms") for r in record["perf_analyzer"]["cases"] if "error" not in r]
    for key in sorted({(tool, r["protocol"], r["batching"], style, marker, whisker)
                       for tool, r, style, marker, whisker in series}):
        tool, protocol, batching, style, marker, whisker = key
        rows = sorted((r for t, r, *_ in series if (t, r["protocol"], r["batching"]) == (tool, protocol, batching)
                       and r.get("p50_ms") is not None), key=lambda r: r["concurrency"])
        if not rows:
            continue
        x, y = [r["sentences_per_s"] for r in rows], [r["p50_ms"] for r in rows]
        err = [[0] * len(rows), [r[whisker] - r["p50_ms"] for r in rows]]
        line = ax.errorbar(x, y, yerr=err, linestyle=style, marker=marker, capsize=2,
                           label=f"{tool}: {protocol}, {batching}")
        for r, xi, yi in zip(rows, x, y):
            ax.annotate(str(r["concurrency"]), (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=7,
                        color=line[0].get_color())
    ceiling = record["ceiling"]
    ax.axhline(ceiling["p50_ms"], color="grey", linewidth=1, label=f"in-process p50 ({ceiling['p50_ms']:.1f} ms)")
    ax.axvline(ceiling["sentences_per_s_batched"], color="grey", linestyle="--", linewidth=1,
               label=f"in-process batched ({ceiling['sentences_per_s_batched']:.0f}/s)")
    ax.set_xlabel("throughput (sentences/s)")
    ax.set_ylabel("latency per request, p50 (ms; whisker to p90 or p99)")
    ax.set_yscale("log")
    gpu = (record["environment"].get("gpu") or {}).get("name") if record.get("device") == "gpu" else None
    title = f"Triton serving on {gpu or record['cpu']['model']}"
    if record.get("busy_machine") or record.get("note"):
        title += "\n(busy machine: not a reference measurement)"
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def save_results(record: dict[str, Any], folder: str | os.PathLike[str], name: str = "serving") -> dict[str, Path]:
    """``<name>.json`` and ``<name>_latency_throughput.png`` in ``folder`` (both written atomically)."""
    import matplotlib.pyplot as plt

    from ..bench.plots import save_figure

    folder = Path(folder)
    json_path = atomic_write_json(folder / f"{name}.json", record)
    fig, ax = plt.subplots(figsize=(8, 5))
    plot_latency_throughput(record, ax)
    fig.tight_layout()
    png = save_figure(fig, folder / f"{name}_latency_throughput.png")
    plt.close(fig)
    return {"json": json_path, "plot": png}


def serving_tables(record: dict[str, Any]) -> dict[str, tuple[list[str], list[tuple]]]:
    """``{title: (header, rows)}`` for a notebook: the load tool's cases (client and server side by side),
    perf_analyzer's cases (or why it was skipped), and the goals with their verdicts."""
    load = (["protocol", "batching", "conc.", "sent", "answered", "failed", "sentences/s", "p50 ms", "p90 ms", "p99 ms",
             "queue ms", "compute ms", "mean batch", "batch sizes formed"],
            [(r["protocol"], r["batching"], r["concurrency"], r["sent"], r["answered"], sum(r["failed"].values()),
              r["sentences_per_s"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["server"]["queue_ms_per_request"],
              r["server"]["compute_ms_per_request"], r["server"]["mean_batch"],
              ", ".join(f"{k}x{v}" for k, v in r["server"]["batch_sizes"].items())) for r in record["cases"]])
    perf = record["perf_analyzer"]
    if perf["ran"]:
        perf_table = (["protocol", "batching", "conc.", "sentences/s", "p50 ms", "p90 ms", "p99 ms", "queue ms",
                       "compute ms"],
                      [(r["protocol"], r["batching"], r["concurrency"], *(
                          [r["error"], "", "", "", "", ""] if "error" in r else
                          [r["sentences_per_s"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r.get("queue_ms"),
                           r.get("compute_ms")])) for r in perf["cases"]])
    else:
        perf_table = (["perf_analyzer"], [(perf["skipped"],)])
    goals = (["protocol", "goal", "measured", "verdict"],
             [(g["protocol"], g["goal"], g["measured"], g["verdict"]) for g in record["goals"]])
    return {"load tool": load, "perf_analyzer": perf_table, "goals": goals}


def test_sentences(paths: Any, limit: int = 0) -> list[str]:
    """01's test split (the real sentences the load runs send), ``limit`` of them (0: all)."""
    from ..data import load_split

    texts = list(load_split(paths.data).test.texts)
    return texts[:limit] if limit else texts


def measure_serving(server: Any, texts: Sequence[str], config: SweepConfig, *, reference: Any, out: str | os.PathLike[str],
                    note: str = "") -> dict[str, Any]:
    """Measure a running ``server``: the in-process ceiling of ``reference`` (a
    :class:`~helpers.serving.model.SentimentCore` on the served files and device), the project's load tool over
    every case, perf_analyzer where it runs (its input data and CSV reports in ``out/perf_analyzer``), the goals;
    ``serving.json`` and the plot are saved in ``out``. Returns the record (its ``files``: what was saved)."""
    env = capture_environment()  # before the load: whether other programs kept the CPUs busy
    ceiling = in_process_ceiling(reference.classifier, texts, config.ceiling_requests)
    urls = {"http": server.http_url, "grpc": server.grpc_url}
    rows = sweep(urls, texts, config)
    perf = perf_sweep({p: urls[p] for p in config.protocols}, texts, models=config.perf_models,
                      concurrencies=config.concurrencies, workdir=Path(out) / "perf_analyzer", config=config.perf)
    info = {**server.describe(), "runtime": server.runtime_report, "backends": server.backends()}
    folder = reference.folder
    repository = {"path": str(folder.parent.parent), "device": reference.device, "backend": reference.choice.describe(),
                  "sentiment_config": (folder.parent / "config.pbtxt").read_text(encoding="utf-8")}
    record = results_record(rows, ceiling, config=config, server=info, repository=repository, perf=perf,
                            device=reference.device, env=env, note=note)
    record["files"] = {k: str(v) for k, v in save_results(record, out).items()}
    return record


def run_measurement(paths: Any, repository: str | os.PathLike[str], config: SweepConfig,
                    out: str | os.PathLike[str], *, server_config: Any = None, note: str = "",
                    texts_limit: int = 0, device: str = "cpu") -> dict[str, Path]:
    """The whole measurement without a notebook, on a written ``repository`` for ``device``: start a server,
    :func:`measure_serving`, stop the server; returns the paths of ``serving.json`` and the plot in ``out``."""
    from .model import SentimentCore
    from .server import ServerConfig, TritonServer

    texts = test_sentences(paths, texts_limit)
    reference = SentimentCore(Path(repository) / "sentiment" / "1", device)
    try:
        with TritonServer(repository, server_config or ServerConfig()) as server:
            record = measure_serving(server, texts, config, reference=reference, out=out, note=note)
    finally:
        reference.close()
    return {k: Path(v) for k, v in record["files"].items()}
