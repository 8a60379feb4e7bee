"""Serving measurements: throughput and latency against concurrency, the server's statistics beside the
client's, the in-process Classifier as the ceiling, the issue's goals, a results JSON and a plot.

For each protocol (HTTP, gRPC), each model (dynamic batching on: ``sentiment``; off: ``sentiment_nobatch``)
and each concurrency, one closed-loop run of :func:`~helpers.serving.load.run_load` is made after a short
warm-up, with Triton's statistics read before and after it. The cases run one after another on one server;
a busy machine inflates every case, so each results file records whether the CPUs were busy when it started.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from ..bench.stats import LatencyStats
from ..bench.system import busy_cpu_warning, capture_environment
from ..errors import ConfigError, ServingError
from ..io import atomic_write_json
from ..machine import cpu_summary
from .client import PROTOCOLS, make_client, statistics_after, stats_delta, wait_idle
from .load import LoadSpec, run_load

#: The issue's goals on a 2-core CPU with the small model and ONNX Runtime INT8.
GOALS = {"batching_vs_c1": 2.0, "batching_vs_nobatch": 1.5, "overhead_ms": 2.0, "at_concurrency": 16}


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

    def __post_init__(self) -> None:
        if not self.concurrencies or min(self.concurrencies) < 1 or self.requests < 1:
            raise ConfigError(f"sweep: concurrencies and requests must be >= 1, got {self}.")
        unknown = [p for p in self.protocols if p not in PROTOCOLS]
        if unknown:
            raise ConfigError(f"sweep: unknown protocols {unknown}; choose from {PROTOCOLS}.")

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
                 and r["concurrency"] == concurrency), None)


def compare_goals(rows: Sequence[dict[str, Any]], ceiling: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's three goals, per protocol, with what was measured (``met`` None where a case is missing)."""
    c = GOALS["at_concurrency"]
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
        goals += [
            {"protocol": protocol, "goal": f"throughput at concurrency {c} with batching >= {GOALS['batching_vs_c1']}x concurrency 1",
             "measured": None if ratio1 is None else round(ratio1, 2), "met": None if ratio1 is None else ratio1 >= GOALS["batching_vs_c1"]},
            {"protocol": protocol, "goal": f"throughput at concurrency {c}: batching >= {GOALS['batching_vs_nobatch']}x no batching",
             "measured": None if ratio2 is None else round(ratio2, 2), "met": None if ratio2 is None else ratio2 >= GOALS["batching_vs_nobatch"]},
            {"protocol": protocol, "goal": f"server overhead per request at concurrency 1, no batching (p50 minus in-process p50) < {GOALS['overhead_ms']} ms",
             "measured": None if overhead is None else round(overhead, 3), "met": None if overhead is None else overhead < GOALS["overhead_ms"]},
        ]
    return goals


def results_record(rows: list[dict[str, Any]], ceiling: dict[str, Any], *, config: SweepConfig, server: dict[str, Any],
                   repository: dict[str, Any], env: dict[str, Any] | None = None, note: str = "") -> dict[str, Any]:
    """The results JSON: cases, ceiling, goals, and the machine (with lscpu's model and flags) and whether it was busy."""
    env = env if env is not None else capture_environment()
    busy = busy_cpu_warning(env)
    return {"kind": "serving-load", "environment": env, "cpu": cpu_summary(), "busy_machine": busy,
            "reference": busy is None and not note, "note": note, "sweep": asdict(config), "server": server,
            "repository": repository, "ceiling": ceiling, "cases": rows, "goals": compare_goals(rows, ceiling)}


def plot_latency_throughput(record: dict[str, Any]) -> Any:
    """p50 latency against throughput, one line per protocol and batching mode, points labelled by concurrency;
    the in-process ceiling as a reference line. Whiskers reach the p90."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    styles = {"batching": "-", "no batching": ":"}
    for protocol in sorted({r["protocol"] for r in record["cases"]}):
        for batching, style in styles.items():
            rows = sorted((r for r in record["cases"] if r["protocol"] == protocol and r["batching"] == batching
                           and r["p50_ms"] is not None), key=lambda r: r["concurrency"])
            if not rows:
                continue
            x = [r["sentences_per_s"] for r in rows]
            y = [r["p50_ms"] for r in rows]
            err = [[0] * len(rows), [r["p90_ms"] - r["p50_ms"] for r in rows]]
            line = ax.errorbar(x, y, yerr=err, linestyle=style, marker="o", capsize=2, label=f"{protocol}, {batching}")
            for r, xi, yi in zip(rows, x, y):
                ax.annotate(str(r["concurrency"]), (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=7,
                            color=line[0].get_color())
    ceiling = record["ceiling"]
    ax.axhline(ceiling["p50_ms"], color="grey", linewidth=1, label=f"in-process p50 ({ceiling['p50_ms']:.1f} ms)")
    ax.axvline(ceiling["sentences_per_s_batched"], color="grey", linestyle="--", linewidth=1,
               label=f"in-process batched ({ceiling['sentences_per_s_batched']:.0f}/s)")
    ax.set_xlabel("throughput (sentences/s)")
    ax.set_ylabel("latency per request, p50 (ms; whisker to p90)")
    ax.set_yscale("log")
    title = f"Triton serving on {record['cpu']['model']}"
    if record.get("busy_machine") or record.get("note"):
        title += "\n(busy machine: not a reference measurement)"
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save_results(record: dict[str, Any], folder: str | os.PathLike[str], name: str = "serving") -> dict[str, Path]:
    """``<name>.json`` and ``<name>_latency_throughput.png`` in ``folder`` (both written atomically)."""
    from ..bench.plots import save_figure
    import matplotlib.pyplot as plt

    folder = Path(folder)
    json_path = atomic_write_json(folder / f"{name}.json", record)
    fig = plot_latency_throughput(record)
    png = save_figure(fig, folder / f"{name}_latency_throughput.png")
    plt.close(fig)
    return {"json": json_path, "plot": png}


def cases_table(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[tuple]]:
    """Header and rows for a notebook table of the cases, client and server side by side."""
    header = ["protocol", "batching", "conc.", "sent", "answered", "failed", "sentences/s", "p50 ms", "p90 ms", "p99 ms",
              "queue ms", "compute ms", "mean batch", "batch sizes formed"]
    out = []
    for r in rows:
        s = r["server"]
        out.append((r["protocol"], r["batching"], r["concurrency"], r["sent"], r["answered"], sum(r["failed"].values()),
                    r["sentences_per_s"], r["p50_ms"], r["p90_ms"], r["p99_ms"], s["queue_ms_per_request"],
                    s["compute_ms_per_request"], s["mean_batch"],
                    ", ".join(f"{k}x{v}" for k, v in s["batch_sizes"].items())))
    return header, out


def test_sentences(paths: Any, limit: int = 0) -> list[str]:
    """01's test split (the real sentences the load runs send), ``limit`` of them (0: all)."""
    from ..data import load_split

    texts = list(load_split(paths.data).test.texts)
    return texts[:limit] if limit else texts


def run_measurement(paths: Any, repository: str | os.PathLike[str], config: SweepConfig,
                    out: str | os.PathLike[str], *, server_config: Any = None, note: str = "",
                    texts_limit: int = 0, device: str = "cpu") -> dict[str, Path]:
    """The whole measurement without a notebook, on a written ``repository`` for ``device``: start a server,
    measure the in-process ceiling (same files, same device) and every case, stop the server, save
    ``serving.json`` and the plot in ``out``."""
    from .model import SentimentCore
    from .repository import LOADABLE_HERE
    from .server import ServerConfig, TritonServer

    texts = test_sentences(paths, texts_limit)
    env = capture_environment()
    core = SentimentCore(Path(repository) / "sentiment" / "1", device)
    try:
        ceiling = in_process_ceiling(core.classifier, texts, config.ceiling_requests)
    finally:
        core.close()
    with TritonServer(repository, server_config or ServerConfig(models=LOADABLE_HERE)) as server:
        rows = sweep({"http": server.http_url, "grpc": server.grpc_url}, texts, config)
        info = {**server.describe(), "runtime": server.runtime_report, "backends": server.backends()}
    from .repository import check_repository

    configs = check_repository(repository)
    repo_info = {"path": str(repository), "device": device, "backend": core.choice.describe(),
                 "sentiment_config": (Path(repository) / "sentiment" / "config.pbtxt").read_text(encoding="utf-8"),
                 "models": sorted(configs)}
    record = results_record(rows, ceiling, config=config, server=info, repository=repo_info, env=env, note=note)
    return save_results(record, out)
