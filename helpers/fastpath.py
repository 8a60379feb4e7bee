"""The ONNX Runtime CPU fast path: measure which graph recipe is fastest on this machine, then keep it.

A *recipe* is a graph (the plain export, or the optimizer-fused graph with ``Attention`` on every layer),
whether SkipLayerNormalization fusion is on (in the optimizer and in the session), and the precision
(fp32 or dynamic INT8). :func:`speed_study` builds every recipe for a model architecture (random weights:
speed does not depend on weight values) and times them side by side with PyTorch fp32 eager at one shape
(the original article's 1 x 200), with the benchmark harness of :mod:`helpers.bench.harness`.
:meth:`SpeedStudy.fast_path` picks the recipes 02 then writes for the trained model with its own
``optimize_model`` and ``quantize_dynamic`` calls (:meth:`Recipe.keep` records how a session must run each).
:func:`write_gpu_graphs` writes the FP16 graphs for GPUs beside them.

Which recipe wins, and by how much, depends on the CPU: dynamic INT8 gains most where the CPU has int8
dot-product instructions (AVX-512 VNNI, AVX-VNNI, AMX). :meth:`SpeedStudy.int8_sentence` states what this
run measured on this CPU, so that no notebook text claims one machine's result for another. On the ``tiny``
architecture a ratio to PyTorch measures per-call overheads, not BERT's arithmetic, so none is shown for it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .backends.onnxruntime import OrtBackend, OrtConfig
from .backends.torch_backend import TorchBackend
from .bench.harness import Measurement, Shape, TimingConfig, time_shape
from .bench.system import busy_cpu_warning
from .config import resolve_model_size
from .errors import ConfigError
from .export import ONNX_FILES, onnx_from_classifier, onnx_metadata
from .io import atomic_write_json
from .machine import cpu_int8_instructions
from .onnx_variants import (RIGHT_PADDED_GPU_FUSION, SKIP_LAYER_NORM_OPTIMIZER, FusionConfig, VariantReport,
                            fp16_onnx_from_plain, fused_fp16_onnx_from_plain, fused_onnx_from_plain, int8_onnx_from,
                            keep_fused, keep_int8)

#: Name of PyTorch fp32 eager, the baseline of every speed-up.
PYTORCH = "pytorch fp32 eager"
#: The architecture whose ratios to PyTorch say nothing about BERT (2 layers x 64: per-call overheads dominate).
NO_RATIO_SIZES = ("tiny",)


@dataclass(frozen=True)
class Recipe:
    """One way to run the model with ONNX Runtime on a CPU."""

    graph: str  # "plain" or "fused"
    skip_layer_norm: bool
    int8: bool

    @property
    def name(self) -> str:
        sln = "SkipLayerNorm on" if self.skip_layer_norm else "SkipLayerNorm off"
        return f"ort {'int8' if self.int8 else 'fp32'} {self.graph} ({sln})"

    @property
    def disabled_optimizers(self) -> tuple[str, ...]:
        """Session optimizers to disable: SkipLayerNormalization fusion when it is off."""
        return () if self.skip_layer_norm else (SKIP_LAYER_NORM_OPTIMIZER,)

    @property
    def file_name(self) -> str:
        stem = "model" if self.graph == "plain" else f"model.fused-sln-{'on' if self.skip_layer_norm else 'off'}"
        return f"{stem}{'.int8' if self.int8 else ''}.onnx"

    @property
    def fusion(self) -> FusionConfig:
        """The optimizer options of a fused recipe (raw 2-D mask, SkipLayerNorm as the recipe says)."""
        return FusionConfig(skip_layer_norm=self.skip_layer_norm)

    def keep(self, made: Any, path: str | os.PathLike[str], *, source: str | os.PathLike[str]) -> VariantReport:
        """Check and write what 02 made for this recipe from ``source``: the optimizer's result of a fused fp32
        recipe (:func:`~helpers.onnx_variants.keep_fused`) or the file ``quantize_dynamic`` wrote for an INT8
        one (:func:`~helpers.onnx_variants.keep_int8`), with the session optimizers to leave off."""
        if self.int8:
            return keep_int8(made, path, source=source, disabled_optimizers=list(self.disabled_optimizers))
        if self.graph != "fused":
            raise ConfigError(f"{self.name} is the plain export itself: there is nothing to keep.")
        return keep_fused(made, path, source=source, config=self.fusion)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "name": self.name, "disabled_optimizers": list(self.disabled_optimizers)}


@dataclass(frozen=True)
class FastPath:
    """The recipes 02 keeps: ``fused`` becomes ``model.fused.onnx``, ``int8`` becomes ``model.int8.onnx``.

    When the INT8 recipe quantizes a fused graph, ``fused`` shares its SkipLayerNorm setting, so that
    ``model.int8.onnx`` is quantized from ``model.fused.onnx`` itself."""

    fused: Recipe
    int8: Recipe

    def to_dict(self) -> dict[str, Any]:
        return {"fused": self.fused.to_dict(), "int8": self.int8.to_dict()}


#: Every recipe the study measures; the plain fp32 graph with the session's defaults is ONNX Runtime "as is".
RECIPES: tuple[Recipe, ...] = tuple(Recipe(g, sln, q) for q in (False, True) for g in ("plain", "fused")
                                    for sln in (True, False))


#: Relative difference of medians below which two recipes count as equally fast: two runs of the study on
#: the development machine swapped the two best INT8 recipes, 65.6 vs 68.9 ms and then 69.5 vs 66.3 ms.
TIE_MARGIN = 0.06
#: Order of preference among tied recipes: the fused graph (one Attention kernel per layer) first, and
#: SkipLayerNorm fusion off first (its kernel was the slower one where this was measured).
PREFERENCE: tuple[tuple[str, bool], ...] = (("fused", False), ("fused", True), ("plain", False), ("plain", True))


@dataclass(frozen=True)
class SpeedConfig:
    """The shape and model architecture of the speed study, and how long to measure.

    ``rounds`` interleaved rounds time every candidate once each, in an order that rotates, after
    ``warmup`` untimed calls; the study takes about (8 recipe builds) + (9 candidates x (rounds + warmup + 1)
    calls), so for BERT-base at 1 x 200 on two CPU cores most of a minute or more, for ``tiny`` seconds.
    """

    model_size: str
    batch: int = 1
    seq_len: int = 200
    rounds: int = 20
    warmup: int = 3
    threads: int = 0  # 0: every usable CPU, for PyTorch and ONNX Runtime alike
    vocab_size: int = 21128  # Chinese BERT-base's vocabulary


@dataclass(frozen=True)
class SpeedStudy:
    """PyTorch and every recipe, measured side by side in one process (one harness Measurement each)."""

    config: SpeedConfig
    measurements: dict[str, Measurement]
    environment: dict[str, Any] = field(default_factory=dict)
    #: the CPU's int8 dot-product instruction sets (see :func:`cpu_int8_instructions`)
    int8_instructions: tuple[str, ...] | None = None
    #: wall time of the study's parts: building the recipes and timing them
    seconds: dict[str, float] = field(default_factory=dict)

    def median_ms(self, name: str) -> float:
        return self.measurements[name].latency.median_ms

    def speedup(self, name: str) -> float:
        """How many times faster than PyTorch fp32 eager (ratio of medians)."""
        return self.median_ms(PYTORCH) / self.median_ms(name)

    def fastest(self, *, int8: bool, graph: str | None = None, margin: float = TIE_MARGIN) -> Recipe:
        """The fastest recipe of the given precision (and graph). Recipes within ``margin`` (relative) of the
        lowest median count as tied, and a tie goes to the earliest in :data:`PREFERENCE`, so that run-to-run
        noise does not flip the artifacts from one run to the next."""
        pool = [r for r in RECIPES if r.int8 == int8 and (graph is None or r.graph == graph)]
        best = min(self.median_ms(r.name) for r in pool)
        tied = [r for r in pool if self.median_ms(r.name) <= best * (1.0 + margin)]
        return min(tied, key=lambda r: PREFERENCE.index((r.graph, r.skip_layer_norm)))

    def fast_path(self) -> FastPath:
        """The fastest INT8 recipe, and the fused fp32 recipe kept beside it (see :class:`FastPath`)."""
        int8 = self.fastest(int8=True)
        if int8.graph == "fused":
            return FastPath(Recipe("fused", int8.skip_layer_norm, False), int8)
        return FastPath(self.fastest(int8=False, graph="fused"), int8)

    @property
    def shows_ratios(self) -> bool:
        """False for an architecture whose ratio to PyTorch says nothing about BERT (:data:`NO_RATIO_SIZES`)."""
        return self.config.model_size not in NO_RATIO_SIZES

    def rows(self) -> list[dict[str, Any]]:
        """One row per candidate for a table: name, median, p90, speed-up."""
        return [{"candidate": n, "median_ms": round(m.latency.median_ms, 2), "p90_ms": round(m.latency.p90_ms, 2),
                 "speedup_vs_pytorch": round(self.speedup(n), 2)} for n, m in self.measurements.items()]

    def table(self) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Header and rows for 02's table, fastest first; the ratio column only where it means something."""
        rows = sorted(self.rows(), key=lambda r: r["median_ms"])
        if not self.shows_ratios:
            return ["candidate", "median ms", "p90 ms"], [(r["candidate"], r["median_ms"], r["p90_ms"]) for r in rows]
        return (["candidate", "median ms", "p90 ms", "x PyTorch"],
                [(r["candidate"], r["median_ms"], r["p90_ms"], f"{r['speedup_vs_pytorch']:.2f}x") for r in rows])

    def int8_sentence(self) -> str:
        """What this run says about INT8 on this CPU: the measured ratio and the CPU's int8 instructions."""
        best = self.fastest(int8=True)
        cpu = self.environment.get("host", {}).get("cpu_model", "this CPU")
        threads = (self.environment.get("threads") or {}).get("ort_intra_op")
        where = f"{cpu}{f', {threads} threads' if threads else ''}"
        if self.int8_instructions is None:
            has = "whose int8 instructions could not be read here"
        elif self.int8_instructions:
            names = list(self.int8_instructions)
            has = "which has " + (f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0])
        else:
            has = "which has no int8 dot-product instructions (no VNNI or AMX)"
        shape = f"{self.config.batch} x {self.config.seq_len}"
        if self.shows_ratios:
            sentence = (f"On this CPU ({where}), {has}, the fastest INT8 recipe, {best.name}, ran "
                        f"{self.speedup(best.name):.1f}x PyTorch fp32 eager on the {self.config.model_size} "
                        f"architecture at {shape}; the fastest fp32 recipe ran "
                        f"{self.speedup(self.fastest(int8=False).name):.1f}x.")
        else:
            sentence = (f"On this CPU ({where}), {has}, the fastest INT8 recipe was {best.name} "
                        f"({self.median_ms(best.name):.2f} ms at {shape}). The {self.config.model_size} architecture "
                        "is too small for its ratio to PyTorch to say anything about BERT (per-call overheads "
                        "dominate), so none is shown; speed_model_size base times the BERT-base architecture.")
        busy = busy_cpu_warning(self.environment) if self.environment else None
        return sentence if busy is None else f"{sentence} But {busy}"

    def save(self, path: str | os.PathLike[str], **extra: Any) -> Path:
        """Write :meth:`to_dict` (and ``extra`` entries) as JSON, atomically."""
        return atomic_write_json(path, {**self.to_dict(), **extra})

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "shape": [self.config.batch, self.config.seq_len],
            "baseline": PYTORCH,
            "candidates": {n: {**m.to_dict(), "median_ms": m.latency.median_ms, "speedup_vs_pytorch": self.speedup(n)}
                           for n, m in self.measurements.items()},
            "recipes": {r.name: r.to_dict() for r in RECIPES},
            "tie_margin": TIE_MARGIN,
            "fastest": {"fp32_fused": self.fastest(int8=False, graph="fused").name,
                        "fp32_any": self.fastest(int8=False).name, "int8": self.fastest(int8=True).name},
            "kept": self.fast_path().to_dict(),
            "ratios_mean_something": self.shows_ratios,
            "int8_instructions": None if self.int8_instructions is None else list(self.int8_instructions),
            "seconds": dict(self.seconds),
            "environment": self.environment,
        }


def build_recipe_files(plain: str | os.PathLike[str], folder: str | os.PathLike[str]) -> dict[Recipe, Path]:
    """Write the fused (SkipLayerNorm on/off) and INT8 graphs of every recipe next to ``plain``."""
    plain, folder = Path(plain), Path(folder)
    paths: dict[Recipe, Path] = {}
    for recipe in sorted(RECIPES, key=lambda r: (r.int8, r.graph == "plain")):  # fused fp32 first: INT8 needs it
        path = folder / recipe.file_name
        if recipe.graph == "plain" and not recipe.int8:
            path = plain
        elif not recipe.int8:
            fused_onnx_from_plain(plain, path, FusionConfig(skip_layer_norm=recipe.skip_layer_norm))
        else:
            source = plain if recipe.graph == "plain" else paths[Recipe("fused", recipe.skip_layer_norm, False)]
            int8_onnx_from(source, path, disabled_optimizers=list(recipe.disabled_optimizers))
        paths[recipe] = path
    return paths


def speed_study(model_size: str, *, batch: int = 1, seq_len: int = 200, rounds: int = 20, warmup: int = 3,
                threads: int = 0, log: Callable[[str], Any] | None = print) -> SpeedStudy:
    """Export ``model_size``'s architecture (random weights), build every recipe in a temporary folder and time
    them with PyTorch fp32 eager, side by side, at ``batch x seq_len`` (:func:`helpers.bench.harness.time_shape`):
    ``warmup`` untimed calls each, then ``rounds`` interleaved rounds of one call per candidate (see
    :class:`SpeedConfig`); ``threads`` 0 uses every usable CPU."""
    from .bench.models import architecture_model
    from .bench.system import capture_environment, fix_cpu_threads

    config = SpeedConfig(resolve_model_size(model_size).name, batch=batch, seq_len=seq_len, rounds=rounds,
                         warmup=warmup, threads=threads)
    if config.rounds < 1 or config.warmup < 0 or config.batch < 1 or config.seq_len < 1:
        raise ConfigError(f"speed study: rounds, batch and seq_len must be >= 1 and warmup >= 0, got {config}.")
    threads = fix_cpu_threads(config.threads or None)
    arch = architecture_model(config.model_size, config.vocab_size)
    if config.seq_len > arch.max_len:
        raise ConfigError(f"speed study: seq_len {config.seq_len} is above the model's {arch.max_len} positions.")
    # one call per candidate per round, in a rotating order: the harness's rounds are the study's rounds
    timing = TimingConfig(warmup=config.warmup, iters=config.rounds, rounds=config.rounds)
    environment = capture_environment(threads)  # before the run: whether other work keeps the CPUs busy now
    if log and busy_cpu_warning(environment):
        log(f"note: {busy_cpu_warning(environment)}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fastpath-") as tmp:
        if log:
            log(f"exporting the {arch.model_size} architecture and building {len(RECIPES)} recipes ...")
        plain = onnx_from_classifier(arch.model, Path(tmp) / "model.onnx", labels=list(arch.labels),
                                     max_len=arch.max_len, model_size=arch.model_size).path
        files = build_recipe_files(plain, tmp)
        built = time.perf_counter()
        # Spinning ONNX Runtime workers would steal the cores from the next candidate (seen on a 2-core VM:
        # PyTorch 231 -> 288 ms at 1 x 200 beside spinning sessions), so every session sleeps when idle.
        ort_config = {r: OrtConfig(intra_op_threads=threads.ort_intra_op, disabled_optimizers=r.disabled_optimizers,
                                   allow_spinning=False) for r in RECIPES}
        with contextlib.ExitStack() as stack:
            backends = {PYTORCH: TorchBackend(arch.model)}
            backends.update({r.name: stack.enter_context(OrtBackend(files[r], ort_config[r])) for r in RECIPES})
            if log:
                log(f"timing {len(backends)} candidates at {config.batch} x {config.seq_len}: "
                    f"{config.warmup} warm-up + {config.rounds} interleaved rounds ...")
            measured = time_shape(backends, Shape(config.batch, config.seq_len), timing,
                                  model=f"{arch.model_size}-architecture", vocab_size=config.vocab_size, reference=PYTORCH)
    seconds = {"build": built - start, "timing": time.perf_counter() - built}
    return SpeedStudy(config, {m.backend: m for m in measured}, environment, cpu_int8_instructions(), seconds)


#: What each GPU graph is for, in words (02's table).
GPU_GRAPH_USES = {"fp16": "TensorRT (04), standard ops", "fused-fp16": "ONNX Runtime CUDA (06), any padding",
                  "fused-fp16-rightpad": "ONNX Runtime CUDA (06), right-padded batches"}


@dataclass(frozen=True)
class GpuGraphs:
    """The FP16 graphs :func:`write_gpu_graphs` wrote, and its check of the right-padding router."""

    files: dict[str, VariantReport]
    router: dict[str, Any]

    def rows(self) -> list[tuple[Any, ...]]:
        """One table row per file: name, what it is for, Attention nodes, mask values made FP16-safe."""
        return [(r.path.name, GPU_GRAPH_USES[k], r.count("Attention"),
                 r.notes.get("mask_values_replaced", r.notes.get("mask_constants_replaced")))
                for k, r in self.files.items()]


def write_gpu_graphs(plain: str | os.PathLike[str], folder: str | os.PathLike[str]) -> GpuGraphs:
    """Write the FP16 graphs for GPUs from the plain export into ``folder`` and check the routed pair on ONNX
    Runtime's CPU kernels: ``model.fp16.onnx`` (standard ops, for TensorRT), ``model.fused.fp16.onnx`` (fused
    for ONNX Runtime CUDA, any padding) and ``model.fused.fp16.rightpad.onnx`` (the 1-D mask index: right-padded
    batches only). Returns their reports and the check of :func:`helpers.parity.padding_route_parity`
    (right-padded rows agree with the exact graph; rows with id 0 inside are routed to the exact graph, bit for
    bit). Raises :class:`ExportError` when the router chose wrongly or the two graphs disagree."""
    from .backends.padding import RightPaddingRouter
    from .errors import ExportError
    from .parity import FP16_MIN_AGREEMENT, padding_route_parity

    plain, folder = Path(plain), Path(folder)
    out = {
        "fp16": fp16_onnx_from_plain(plain, folder / ONNX_FILES["fp16"]),
        "fused-fp16": fused_fp16_onnx_from_plain(plain, folder / ONNX_FILES["fused-fp16"]),
        "fused-fp16-rightpad": fused_fp16_onnx_from_plain(plain, folder / ONNX_FILES["fused-fp16-rightpad"],
                                                          RIGHT_PADDED_GPU_FUSION)}
    vocab = int(onnx_metadata(plain)["vocab_size"])
    exact, fast = OrtBackend(out["fused-fp16"].path), OrtBackend(out["fused-fp16-rightpad"].path)
    with RightPaddingRouter(exact, fast) as router:
        check = padding_route_parity(router, vocab)
    if not check["passed"] or check["right_padded"]["argmax_agreement"] < FP16_MIN_AGREEMENT:
        raise ExportError(f"the right-padding router sent a batch to the wrong graph, or the graphs disagree: {check}")
    return GpuGraphs(out, check)
