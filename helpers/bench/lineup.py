"""Which backends a benchmark compares on this machine, and why the others were skipped.

The names and the way each backend is opened come from :mod:`helpers.backends.registry`; this module only
decides which names run here (CPU backends always, GPU backends where PyTorch sees a GPU), records a
:class:`~helpers.bench.harness.Skip` with its reason for each one that cannot, and holds the rules for shapes
a backend sits out (CPU backends above a token budget, ``torch.compile`` beyond its few shapes).

A backend that cannot be opened here (no GPU, no onnxruntime-gpu, no TensorRT, a missing file) is not an
error: it becomes a skip whose reason the notebook shows. For TensorRT that is only a missing TensorRT (or a
runtime that refuses this GPU) or a missing engine: an engine whose sidecar does not fit (built from another
ONNX, TensorRT or GPU) or a runtime that fails stops the run, because benchmarking a stale engine or hiding a
failure behind "not available" would publish numbers that mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..backends.base import Backend
from ..backends.registry import BACKENDS, open_backend
from ..errors import BackendError, EngineMismatchError, ExportError, MissingArtifactError, TensorRTUnavailableError
from ..machine import usable_cpus
from .harness import Measurement, Shape, Skip, SkipRule, TimingConfig, device_kind, parse_shapes, time_side_by_side
from .results import AccuracyRecord, BenchResult

CPU_BACKENDS: tuple[str, ...] = ("pytorch", "onnxruntime", "onnxruntime-fused", "onnxruntime-int8")
GPU_BACKENDS: tuple[str, ...] = ("pytorch-cuda", "torch-cuda-fp16", "torch-cuda-fp16-graph", "torch-compile-fp16-max-autotune",
                                 "ort-cuda-fp16-graph", "ort-cuda-fused-fp16-graph", "ort-cuda-fused-fp16-rightpad-graph",
                                 "tensorrt-fp32", "tensorrt-fp16")
#: Speedups are reported over PyTorch fp32 eager on the same kind of device.
BASELINES = {"cpu": "pytorch", "cuda": "pytorch-cuda"}
#: Reference backends for logits and predictions, in order of preference (both PyTorch fp32 eager).
REFERENCES = ("pytorch-cuda", "pytorch")
#: Errors that mean "this backend is not available here", recorded as skips rather than raised.
UNAVAILABLE = (BackendError, MissingArtifactError, TensorRTUnavailableError, EngineMismatchError, ExportError)
#: The same for TensorRT: no TensorRT here (or none that runs on this GPU), or no engine file.
TENSORRT_UNAVAILABLE = (TensorRTUnavailableError, MissingArtifactError)


@dataclass
class Lineup:
    """Backends of one model by name, the skipped ones with reasons, and the shapes each one sits out.

    :meth:`time` times them at shapes, :meth:`classify` runs texts through each one's
    :class:`~helpers.backends.Classifier`; both add to a :class:`~helpers.bench.BenchResult`. Close the
    line-up (or use it in a ``with`` block) to free sessions and GPU memory.
    """

    model: str
    vocab_size: int
    backends: dict[str, Backend] = field(default_factory=dict)
    skipped: list[Skip] = field(default_factory=list)
    skip_rule: SkipRule | None = None

    @property
    def reference(self) -> str | None:
        """The fp32 PyTorch backend others are compared with: on the GPU where there is one (it runs every
        shape quickly), else on the CPU; None when neither was built."""
        return next((n for n in REFERENCES if n in self.backends), None)

    def _record_skips(self, result: BenchResult) -> None:
        result.add(skipped=[s for s in self.skipped if s not in result.skipped])

    def time(self, result: BenchResult, shapes: str | Sequence[str | Shape],
             log: Callable[[str], None] | None = print) -> list[Measurement]:
        """Time every backend at ``shapes`` (``"1x200, 8x128"``, or a list of such texts or :class:`Shape` s) side
        by side with the result's timing settings; add the measurements and skips to ``result``; return the
        measurements."""
        shapes = parse_shapes(shapes) if isinstance(shapes, str) else \
            [Shape.parse(s) if isinstance(s, str) else s for s in shapes]
        timing = TimingConfig(**result.timing)
        measured, skipped = time_side_by_side(self.backends, shapes, timing, model=self.model,
                                              vocab_size=self.vocab_size, reference=self.reference,
                                              skip_rule=self.skip_rule, log=log)
        self._record_skips(result)
        result.add(measured, skipped)
        return measured

    def classify(self, result: BenchResult, tokenizer: Any, labels: Sequence[str], texts: Sequence[str],
                 targets: Any, *, dataset: str, rounds: int = 3, only: str = "all",
                 log: Callable[[str], None] | None = print) -> list[AccuracyRecord]:
        """Classify ``texts`` with every backend's :class:`~helpers.backends.Classifier` and time it beside the
        same backend on the same batches alone (:func:`~helpers.bench.texts.time_texts`); add to ``result``.
        ``rounds`` timed rounds per backend and bucketing setting, fewer for a backend whose rounds outlast the
        result's ``time_budget_s``.

        ``only``: ``all``, or comma-separated backend names (the others are recorded as skipped).
        ``torch.compile`` backends sit this out: every new batch shape would compile anew."""
        from .texts import time_texts

        wanted = None if only == "all" else {n.strip() for n in only.split(",") if n.strip()}

        def leave_out(name: str) -> str | None:
            if name.startswith("torch-compile"):
                return "compiles every new batch shape"
            if wanted is not None and name not in wanted:
                return "not among the backends asked for (bench_text_backends)"
            return None

        records, skipped = time_texts(self.backends, tokenizer, labels, texts, targets, model=self.model,
                                      dataset=dataset, reference=self.reference, rounds=rounds, exclude=leave_out,
                                      time_budget_s=float(result.timing.get("time_budget_s", 0.0)), log=log)
        self._record_skips(result)
        result.add(accuracy=records, skipped=skipped)
        return records

    def close(self) -> None:
        for b in self.backends.values():
            b.close()
        self.backends.clear()

    def __enter__(self) -> "Lineup":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_lineup(model: Any, files: Mapping[str, Path], *, name: str, names: Sequence[str] | None = None,
                 threads: int = 0, device_id: int = 0, cpu_max_tokens: int = 0, compile_shapes: str = "1x200",
                 compile_mode: str = "max-autotune", cuda: bool | None = None) -> Lineup:
    """Open the backends ``names`` (default: every CPU backend and :data:`GPU_BACKENDS` with ``compile_mode``)
    for ``model`` (a SentimentClassifier on the CPU) and its model ``files`` (:func:`~helpers.backends.model_files`).

    ``threads``: CPU threads of every CPU backend (0: every usable CPU, as
    :func:`~helpers.bench.system.fix_cpu_threads` gives PyTorch). ``cpu_max_tokens``: CPU backends sit out
    shapes of more tokens per call (0: never). ``torch.compile`` backends run only at ``compile_shapes``.
    ``cuda=None`` asks PyTorch whether a GPU is there. Unknown names are refused before anything opens.
    """
    import torch

    if names is None:
        names = CPU_BACKENDS + tuple(n.replace("max-autotune", compile_mode) if n.startswith("torch-compile") else n
                                     for n in GPU_BACKENDS)
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise BackendError(f"unknown backends {unknown}; the known backends are {', '.join(BACKENDS)}.")
    lineup = Lineup(name, int(model.config["vocab_size"]),
                    skip_rule=combine(cpu_token_rule(cpu_max_tokens),
                                      only_at("torch-compile", {(s.batch, s.seq_len) for s in parse_shapes(compile_shapes)})))
    has_cuda = torch.cuda.is_available() if cuda is None else cuda
    n_threads = int(threads) or usable_cpus()
    for key in names:
        if BACKENDS[key].device == "gpu" and not has_cuda:
            lineup.skipped.append(Skip(name, key, "*", f"no CUDA GPU here (PyTorch {torch.__version__} sees none)."))
            continue
        unavailable = TENSORRT_UNAVAILABLE if key.startswith("tensorrt-") else UNAVAILABLE
        try:
            lineup.backends[key] = open_backend(key, files, device_id=device_id, threads=n_threads, model=model)
        except unavailable as exc:
            lineup.skipped.append(Skip(name, key, "*", str(exc)))
    return lineup


def cpu_token_rule(max_tokens: int) -> SkipRule:
    """A skip rule: CPU backends skip shapes of more than ``max_tokens`` tokens (0: never)."""
    def rule(name: str, backend: Backend, shape: Shape) -> str | None:
        if max_tokens and device_kind(backend.device) == "cpu" and shape.tokens > max_tokens:
            return f"CPU backends are timed up to {max_tokens} tokens per call (bench_cpu_max_tokens)"
        return None
    return rule


def only_at(names_prefix: str, shapes: set[tuple[int, int]]) -> SkipRule:
    """A skip rule: backends whose name starts with ``names_prefix`` run only at ``shapes``."""
    def rule(name: str, backend: Backend, shape: Shape) -> str | None:
        if name.startswith(names_prefix) and (shape.batch, shape.seq_len) not in shapes:
            return f"{names_prefix} compiles every new shape; timed only at {sorted(shapes)} (bench_compile_shapes)"
        return None
    return rule


def combine(*rules: SkipRule) -> SkipRule:
    """A skip rule giving the first reason of ``rules``."""
    def rule(name: str, backend: Backend, shape: Shape) -> str | None:
        for r in rules:
            reason = r(name, backend, shape)
            if reason:
                return reason
        return None
    return rule
