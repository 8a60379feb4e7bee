"""NVIDIA's ``perf_analyzer`` (Triton's C++ load generator) beside the project's own load tool.

``perf_analyzer`` is the tool Triton users know: a closed loop of ``concurrency`` synchronous C++ clients that
measures in time windows until throughput and latency are stable. Unlike the project's load tool
(:mod:`helpers.serving.load`, Python threads), it does not share a Python interpreter with anything, so at
thousands of requests per second it measures the server rather than the client.

It comes from PyPI (``perf-analyzer``, pinned in ``environment/requirements-triton.txt``): one 20 MB binary in a
``manylinux_2_38`` wheel, linked against glibc 2.38 and libstdc++ of GCC 13. It runs on Ubuntu 24.04 (the GPU
machine), not on Debian 12 (glibc 2.36). :func:`why_not_perf_analyzer` says in one sentence why it cannot run
on a machine; there the project's load tool measures alone. ``environment/gpu/fetch_wheels.sh`` downloads the
wheel for the GPU machine (``--platform manylinux_2_38_x86_64``).

What is measured: one sentence per request (``-b 1``), real test sentences (``--input-data``, a JSON file written
by :func:`write_input_data`, sent round-robin), one run per protocol and concurrency, each writing its CSV report
(``-f``), parsed by :func:`parse_report` (latencies there are in microseconds).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError
from ..io import atomic_write_json
from .model import TEXT

#: The glibc the wheel's binary was linked against (``GLIBC_2.38`` symbols).
NEEDS_GLIBC: tuple[int, int] = (2, 38)
#: What to install, and where it runs.
INSTALL_HINT = ("pip install perf-analyzer==2.60.0 on a machine with glibc >= 2.38, such as Ubuntu 24.04; "
                "environment/gpu/fetch_wheels.sh brings the wheel to the GPU machine")


def glibc_version() -> tuple[int, int] | None:
    """This machine's glibc version (``(2, 36)`` on Debian 12), or None on a C library that is not glibc."""
    name, version = platform.libc_ver()
    if name != "glibc" or not version:
        return None
    major, minor = (int(x) for x in version.split(".")[:2])
    return major, minor


def find_perf_analyzer() -> Path | None:
    """The ``perf_analyzer`` binary: inside an installed ``perf_analyzer`` package, else on ``PATH``.

    The package's own console script runs the binary without passing its exit status on, so the binary is
    called directly."""
    spec = importlib.util.find_spec("perf_analyzer")
    if spec is not None and spec.submodule_search_locations:
        binary = Path(list(spec.submodule_search_locations)[0]) / "bin" / "perf_analyzer"
        if binary.is_file():
            return binary
    found = shutil.which("perf_analyzer")
    return Path(found) if found else None


def why_not_perf_analyzer(binary: Path | None = None, glibc: tuple[int, int] | None = None) -> str | None:
    """One sentence saying why perf_analyzer cannot run here, or None when it can."""
    glibc = glibc if glibc is not None else glibc_version()
    if glibc is not None and glibc < NEEDS_GLIBC:
        return (f"perf_analyzer is skipped: its binary needs glibc >= {NEEDS_GLIBC[0]}.{NEEDS_GLIBC[1]} and this "
                f"machine has glibc {glibc[0]}.{glibc[1]}, so the project's load tool measures alone.")
    binary = binary if binary is not None else find_perf_analyzer()
    if binary is None:
        return f"perf_analyzer is skipped: it is not installed ({INSTALL_HINT})."
    if not os.access(binary, os.X_OK):
        return f"perf_analyzer is skipped: {binary} is not executable (chmod +x it)."
    return None


def write_input_data(texts: Sequence[str], path: str | os.PathLike[str], name: str = TEXT) -> Path:
    """``--input-data`` file: one entry per sentence, each a batch-1 request of ``name`` (BYTES, dims ``[1]``).

    perf_analyzer sends the entries round-robin, so every request carries one real sentence."""
    sentences = [t for t in texts if t.strip()]
    if not sentences:
        raise ConfigError("perf_analyzer: no sentences to write into its input data.")
    return atomic_write_json(path, {"data": [{name: [text]} for text in sentences]})


@dataclass(frozen=True)
class PerfConfig:
    """How perf_analyzer measures each case.

    ``measurement_ms`` is one time window; a case ends once 3 windows in a row agree within
    ``stability_percent`` on throughput and average latency (perf_analyzer's defaults: 10 % and at most
    ``max_trials`` 10 windows; a case that never settles is recorded with perf_analyzer's reason). Its report
    always holds the p50, p90, p95 and p99 latencies. ``timeout_s`` bounds one perf_analyzer process."""

    measurement_ms: int = 3000
    max_trials: int = 10
    stability_percent: int = 10
    warmup_requests: int = 0
    timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if self.measurement_ms < 100 or self.max_trials < 3 or self.stability_percent < 1:
            raise ConfigError(f"perf_analyzer: measurement_ms >= 100, max_trials >= 3 and stability_percent >= 1 "
                              f"are needed, got {self}.")


def perf_analyzer_command(binary: str | os.PathLike[str], *, model: str, url: str, protocol: str, concurrency: int,
                          input_data: str | os.PathLike[str], report: str | os.PathLike[str],
                          config: PerfConfig = PerfConfig()) -> list[str]:
    """The command line of one case: ``model`` at ``url`` over ``protocol``, ``concurrency`` synchronous clients,
    one sentence per request from ``input_data``, the CSV report written to ``report``."""
    if protocol not in ("http", "grpc"):
        raise ConfigError(f"perf_analyzer: protocol must be 'http' or 'grpc', got {protocol!r}.")
    if concurrency < 1:
        raise ConfigError(f"perf_analyzer: concurrency must be >= 1, got {concurrency}.")
    command = [str(binary), "-m", model, "-u", url, "-i", protocol, "-b", "1",
               f"--concurrency-range={concurrency}:{concurrency}", f"--input-data={input_data}",
               f"--measurement-interval={config.measurement_ms}", f"--max-trials={config.max_trials}",
               f"--stability-percentage={config.stability_percent}", "-f", str(report)]
    if config.warmup_requests:
        command.append(f"--warmup-request-count={config.warmup_requests}")
    return command


#: CSV columns (microseconds) -> record keys (milliseconds).
_LATENCY_COLUMNS = {"p50 latency": "p50_ms", "p90 latency": "p90_ms", "p95 latency": "p95_ms",
                    "p99 latency": "p99_ms", "Server Queue": "queue_ms", "Client Send": "client_send_ms",
                    "Client Recv": "client_recv_ms", "Network+Server Send/Recv": "network_ms"}
_COMPUTE_COLUMNS = ("Server Compute Input", "Server Compute Infer", "Server Compute Output")


def parse_report(text: str) -> list[dict[str, Any]]:
    """perf_analyzer's CSV report (``-f``) as records, ordered by concurrency.

    Each record: ``concurrency``, ``sentences_per_s`` (its Inferences/Second: one sentence per request),
    ``p50_ms`` ... ``p99_ms``, ``queue_ms``, ``compute_ms`` (input + infer + output on the server) and the
    client's send/receive times. :class:`ConfigError` names what is missing from a report that lacks them."""
    rows = list(csv.DictReader(io.StringIO(text.strip())))
    if not rows:
        raise ConfigError("perf_analyzer: its report holds no measurement (an empty CSV); see its output.")
    needed = ["Concurrency", "Inferences/Second", "p50 latency", "p99 latency"]
    missing = [c for c in needed if c not in rows[0]]
    if missing:
        raise ConfigError(f"perf_analyzer: its report lacks the columns {missing} (it has {list(rows[0])}); "
                          "was it run with a request rate instead of a concurrency?")
    records = []
    for row in rows:
        record: dict[str, Any] = {"concurrency": int(row["Concurrency"]),
                                  "sentences_per_s": round(float(row["Inferences/Second"]), 2)}
        for column, key in _LATENCY_COLUMNS.items():
            if column in row:
                record[key] = round(float(row[column]) / 1000.0, 3)
        if all(c in row for c in _COMPUTE_COLUMNS):
            record["compute_ms"] = round(sum(float(row[c]) for c in _COMPUTE_COLUMNS) / 1000.0, 3)
        records.append(record)
    return sorted(records, key=lambda r: r["concurrency"])


def run_case(binary: Path, *, model: str, url: str, protocol: str, concurrency: int, input_data: Path,
             workdir: Path, config: PerfConfig = PerfConfig()) -> dict[str, Any]:
    """Run one case and return its record (``tool: perf_analyzer``), or a record whose ``error`` says why it
    failed (perf_analyzer's exit status and last output lines): one failed case never ends a sweep."""
    report = workdir / f"perf_{protocol}_{model}_c{concurrency}.csv"
    report.unlink(missing_ok=True)
    command = perf_analyzer_command(binary, model=model, url=url, protocol=protocol, concurrency=concurrency,
                                    input_data=input_data, report=report, config=config)
    shown = " ".join(["perf_analyzer", *command[1:]]).replace(f"{workdir}{os.sep}", "")  # no machine paths kept
    base = {"tool": "perf_analyzer", "protocol": protocol, "model": model, "concurrency": concurrency,
            "sentences_per_request": 1, "command": shown}
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=config.timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {**base, "error": f"no result within {config.timeout_s:.0f} s"}
    output = (proc.stdout + proc.stderr).strip().splitlines()
    if proc.returncode != 0 or not report.is_file():
        return {**base, "error": f"exit status {proc.returncode}: {' / '.join(output[-3:])[:400]}"}
    records = [r for r in parse_report(report.read_text(encoding="utf-8")) if r["concurrency"] == concurrency]
    if not records:
        return {**base, "error": f"its report has no row for concurrency {concurrency}"}
    return {**base, **records[0]}


def perf_sweep(url_for: dict[str, str], texts: Sequence[str], *, models: Sequence[tuple[str, str]],
               concurrencies: Sequence[int], workdir: str | os.PathLike[str], config: PerfConfig = PerfConfig(),
               binary: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Every (protocol, model, concurrency) case with perf_analyzer, or the sentence saying why it was skipped.

    Returns ``{"ran": bool, "skipped": reason or None, "cases": [...], "config": ...}``; ``models`` are
    ``(label, model name)`` pairs as in :class:`~helpers.serving.measure.SweepConfig`."""
    from dataclasses import asdict

    from ..progress import tqdm

    binary = binary or find_perf_analyzer()
    reason = why_not_perf_analyzer(binary)
    out: dict[str, Any] = {"ran": False, "skipped": reason, "cases": [], "config": asdict(config)}
    if reason is not None:
        return out
    assert binary is not None
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    input_data = write_input_data(texts, workdir / "perf_input_data.json")
    cases = [(p, label, model, c) for p in url_for for label, model in models for c in concurrencies]
    for protocol, label, model, concurrency in tqdm(cases, desc="perf_analyzer cases", disable=not progress):
        record = run_case(binary, model=model, url=url_for[protocol], protocol=protocol, concurrency=concurrency,
                          input_data=input_data, workdir=workdir, config=config)
        out["cases"].append({**record, "batching": label})
    out["ran"] = True
    out["version"] = _version(binary)
    return out


def _version(binary: Path) -> str:
    """The installed perf-analyzer package's version (the binary itself prints none)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("perf-analyzer")
    except PackageNotFoundError:
        return f"unknown ({binary})"
