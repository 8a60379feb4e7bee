"""The ONNX Runtime CPU fast path: measure which graph recipe is fastest on this machine, then build it.

A *recipe* is a graph (the plain export, or the optimizer-fused graph with ``Attention`` on every layer),
whether SkipLayerNormalization fusion is on (in the optimizer and in the session), and the precision
(fp32 or dynamic INT8). :func:`speed_study` builds every recipe for a model architecture (the trained
model's size unless told otherwise, random weights: speed does not depend on weight values) and times
them side by side with PyTorch fp32 eager at one shape (the original article's 1 x 200), with the
benchmark harness of :mod:`helpers.bench.harness` (the series' one way to time backends).
:func:`write_fast_path` then writes the winning fused and INT8 recipes, plus the FP16 graph for GPUs, for
the trained model.

Which recipe wins, and by how much, depends on the CPU: dynamic INT8 gains most where the CPU has int8
dot-product instructions (AVX-512 VNNI, AVX-VNNI, AMX). :meth:`SpeedStudy.int8_sentence` states what this
run measured on this CPU, so that no notebook text claims one machine's result for another.
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
from .export import ONNX_FILES, onnx_from_classifier
from .machine import cpu_int8_instructions
from .onnx_variants import (RIGHT_PADDED_GPU_FUSION, SKIP_LAYER_NORM_OPTIMIZER, FusionConfig, VariantReport,
                            fp16_onnx_from_plain, fused_fp16_onnx_from_plain, fused_onnx_from_plain, int8_onnx_from)

#: Name of PyTorch fp32 eager, the baseline of every speed-up.
PYTORCH = "pytorch fp32 eager"
#: File names notebook 02 writes in ``artifacts/onnx``.


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

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "name": self.name, "disabled_optimizers": list(self.disabled_optimizers)}


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


def speed_config(trained_model_size: str, speed_model_size: str = "", **settings: Any) -> SpeedConfig:
    """Notebook 02's study settings: the architecture of the trained model's size, unless ``speed_model_size``
    names another (``base``: the original article's BERT-base case). ``settings``: other SpeedConfig fields."""
    size = resolve_model_size(str(speed_model_size).strip() or trained_model_size)
    return SpeedConfig(model_size=size.name, **settings)


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

    def rows(self) -> list[dict[str, Any]]:
        """One row per candidate for a table: name, median, p90, speed-up."""
        return [{"candidate": n, "median_ms": round(m.latency.median_ms, 2), "p90_ms": round(m.latency.p90_ms, 2),
                 "speedup_vs_pytorch": round(self.speedup(n), 2)} for n, m in self.measurements.items()]

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
        sentence = (f"On this CPU ({where}), {has}, the fastest INT8 recipe, {best.name}, ran "
                    f"{self.speedup(best.name):.1f}x PyTorch fp32 eager on the {self.config.model_size} architecture at "
                    f"{self.config.batch} x {self.config.seq_len}; the fastest fp32 recipe ran "
                    f"{self.speedup(self.fastest(int8=False).name):.1f}x.")
        busy = busy_cpu_warning(self.environment) if self.environment else None
        return sentence if busy is None else f"{sentence} But {busy}"

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


def speed_study(config: SpeedConfig, log: Callable[[str], Any] | None = print) -> SpeedStudy:
    """Export ``config.model_size``'s architecture (random weights), build every recipe in a temporary folder
    and time them with PyTorch fp32 eager, side by side, at ``batch x seq_len`` (:func:`helpers.bench.harness.time_shape`)."""
    from .bench.models import architecture_model
    from .bench.system import capture_environment, fix_cpu_threads

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


def write_fast_path(plain: str | os.PathLike[str], folder: str | os.PathLike[str], *, fused: Recipe,
                    int8: Recipe) -> dict[str, VariantReport]:
    """Write ``model.fused.onnx`` (recipe ``fused``), ``model.int8.onnx`` (recipe ``int8``),
    ``model.fp16.onnx`` (from the plain export, for TensorRT) and ``model.fused.fp16.onnx`` (fused for a GPU,
    for ONNX Runtime CUDA) into ``folder``; return a report per variant."""
    if fused.graph != "fused" or fused.int8 or not int8.int8:
        raise ConfigError(f"write_fast_path: need a fused fp32 recipe and an int8 recipe, got {fused.name} and {int8.name}.")
    plain, folder = Path(plain), Path(folder)
    out = {"fused": fused_onnx_from_plain(plain, folder / ONNX_FILES["fused"],
                                          FusionConfig(skip_layer_norm=fused.skip_layer_norm))}
    disabled = list(int8.disabled_optimizers)
    if int8.graph == "plain":
        out["int8"] = int8_onnx_from(plain, folder / ONNX_FILES["int8"], disabled_optimizers=disabled)
    elif int8.skip_layer_norm == fused.skip_layer_norm:
        out["int8"] = int8_onnx_from(out["fused"].path, folder / ONNX_FILES["int8"], disabled_optimizers=disabled)
    else:
        with tempfile.TemporaryDirectory(prefix="fused-") as tmp:
            source = fused_onnx_from_plain(plain, Path(tmp) / "fused.onnx", FusionConfig(skip_layer_norm=int8.skip_layer_norm))
            out["int8"] = int8_onnx_from(source.path, folder / ONNX_FILES["int8"], disabled_optimizers=disabled)
    out["fp16"] = fp16_onnx_from_plain(plain, folder / ONNX_FILES["fp16"])
    out["fused-fp16"] = fused_fp16_onnx_from_plain(plain, folder / ONNX_FILES["fused-fp16"])
    out["fused-fp16-rightpad"] = fused_fp16_onnx_from_plain(plain, folder / ONNX_FILES["fused-fp16-rightpad"],
                                                            RIGHT_PADDED_GPU_FUSION)
    return out


def plot_speed_study(study: SpeedStudy) -> Any:
    """Horizontal bars of median latency per candidate (fastest on top), PyTorch in red, speed-ups as labels."""
    import matplotlib.pyplot as plt

    rows = sorted(study.rows(), key=lambda r: r["median_ms"])
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1))
    ax.barh([r["candidate"] for r in rows], [r["median_ms"] for r in rows],
            color=["tab:red" if r["candidate"] == PYTORCH else "tab:blue" for r in rows])
    ax.invert_yaxis()
    ax.set(xlabel="median latency (ms), lower is better",
           title=f"{study.config.model_size} architecture, batch {study.config.batch} x {study.config.seq_len}, CPU")
    for i, r in enumerate(rows):
        ax.text(r["median_ms"], i, f" {r['speedup_vs_pytorch']:.1f}x", va="center")
    fig.tight_layout()
    return fig
