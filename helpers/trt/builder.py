"""ONNX -> TensorRT engine with the Python builder API, and the one way to get an engine that is up to date.

04_build_engine writes the build out in its own cells: a strongly typed network, ``OnnxParser``, one
optimization profile per range, the workspace limit, ``build_serialized_network``, the engine written
atomically. :func:`ensure_engine` is that same build for everyone else (03's smoke test, 04's
engine, the GPU scripts), with what a tutorial should not re-type:

* it builds only when needed: an engine on disk is kept when its metadata sidecar (:mod:`helpers.trt.metadata`)
  says it fits (same flavour and release, the GPU or TensorRT-RTX targets it is built for, the same ONNX bytes,
  the same profiles); the sidecar is read once and the ONNX hashed once;
* the precision is the graph's own (FP16 from 02's ``model.fp16.onnx``, FP32 from ``model.onnx``), read from
  its weights and recorded; the weakly typed ``BuilderFlag.FP16`` is never set, so 02's FP16 safeguards
  (FP16-safe mask fill, LayerNorm and Softmax in FP32) always hold;
* every parser error is reported in full (description, code, node, operator) with TensorRT's log beside it, and
  a build that runs out of workspace says which ``workspace_mib`` to use;
* with full TensorRT, a timing cache beside the engine, loaded before and saved after each build, so a second
  build skips kernel timing it has done before; whether TensorRT accepted it is recorded from its own log.
  TensorRT-RTX uses no timing cache (NVIDIA: it has no effect on TensorRT-RTX engines, is deprecated since
  TensorRT-RTX 1.2, and would force a GPU query during the CPU-only build);
* the engine and then its sidecar are written atomically.

tests/test_trt_notebook_cells.py runs 04's build cells and this builder on the same ONNX with TensorRT-RTX and checks
that both give the same engine.
"""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path
from typing import Any, Sequence

from ..config import INPUT_DTYPE, INPUT_NAMES, OUTPUT_NAME, ArtifactPaths
from ..errors import BackendError, ConfigError, EngineMismatchError, ExportError, MissingArtifactError
from ..export import ONNX_FILES, TensorSpec
from ..io import atomic_write_bytes, sha256_file
from . import compat
from .metadata import (EngineMetadata, EngineTarget, build_target, mismatches, now_utc, read_metadata,
                       timing_cache_path, write_engine)
from .profiles import ProfileSet

#: The builder's workspace limit unless told otherwise (MiB). BERT-base FP32 at profiles up to 64 x 512
#: asked for 1,482,348,552 bytes (1,414 MiB) on an H200 and failed with the former 1,024.
DEFAULT_WORKSPACE_MIB = 4096
#: When :func:`ensure_engine` builds: never (stop with the reason), when the engine on disk is stale, always.
REBUILD: tuple[str, ...] = ("never", "stale", "always")
#: The key in :data:`helpers.export.ONNX_FILES` of 02's graph each precision builds from.
PRECISION_ONNX: dict[str, str] = {"fp32": "plain", "fp16": "fp16"}

#: Why TensorRT-RTX builds get no timing cache.
RTX_TIMING_CACHE_NOTE = ("TensorRT-RTX uses no timing cache: NVIDIA documents that it has no effect on TensorRT-RTX "
                         "engines, deprecated it in TensorRT-RTX 1.2, and that it forces a GPU query during the "
                         "CPU-only ahead-of-time build")


def engine_name(precision: str) -> str:
    """File name of the engine for a precision: ``model.fp16.engine``."""
    return f"model.{precision}.engine"


def engine_files(paths: ArtifactPaths, precision: str) -> tuple[Path, Path]:
    """02's ONNX file that ``precision`` builds from and the engine it builds into, below ``paths``;
    :class:`MissingArtifactError` naming 02 when the ONNX file is absent."""
    if precision not in compat.PRECISIONS:
        raise ConfigError(f"precision must be one of {compat.PRECISIONS}, got {precision!r}.")
    onnx_path = paths.onnx / ONNX_FILES[PRECISION_ONNX[precision]]
    if not onnx_path.is_file():
        raise MissingArtifactError(f"{onnx_path} is missing (precision {precision} builds {onnx_path.name}): "
                                   "run notebook 02_onnx_export first.")
    return onnx_path, paths.trt / engine_name(precision)


def onnx_precision(path: str | os.PathLike[str]) -> str:
    """"fp16" if the ONNX graph holds FP16 weights, else "fp32" (weights are read without external data)."""
    import onnx

    from ..export import load_onnx

    proto = load_onnx(path, load_external_data=False)
    return "fp16" if any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer) else "fp32"


# ----------------------------------------------------------------------------------------- parse / check
def parser_errors(parser: Any) -> list[str]:
    """Every error the ONNX parser recorded, one readable line each."""
    lines = []
    for i in range(parser.num_errors):
        parser_error = parser.get_error(i)
        code = parser_error.code()
        lines.append(f"#{i}: {parser_error.desc()} [code {getattr(code, 'name', code)}, node {parser_error.node()} "
                     f"{parser_error.node_name()!r}, op {parser_error.node_operator()!r}]")
    return lines


def network_io(network: Any, trt: Any) -> tuple[TensorSpec, ...]:
    """The parsed network's inputs, then outputs (shape -1 on dynamic axes, dtypes as numpy dtypes)."""
    def spec(network_tensor: Any, is_input: bool) -> TensorSpec:
        return TensorSpec(network_tensor.name, is_input, compat.numpy_dtype(trt, network_tensor.dtype),
                          tuple(int(d) for d in network_tensor.shape))

    return (tuple(spec(network.get_input(i), True) for i in range(network.num_inputs))
            + tuple(spec(network.get_output(i), False) for i in range(network.num_outputs)))


def check_network_io(specs: Sequence[TensorSpec]) -> None:
    """Stop unless the network has this project's I/O: int32 ``[batch, seq_len]`` inputs, one logits output."""
    inputs = {s.name: s for s in specs if s.is_input}
    outputs = [s.name for s in specs if not s.is_input]
    if sorted(inputs) != sorted(INPUT_NAMES) or outputs != [OUTPUT_NAME]:
        raise ExportError(f"the ONNX graph has inputs {sorted(inputs)} and outputs {outputs}; expected "
                          f"{list(INPUT_NAMES)} and ['{OUTPUT_NAME}']. Re-export with 02_onnx_export.")
    for spec in inputs.values():
        if spec.dtype != INPUT_DTYPE or len(spec.shape) != 2:
            raise ExportError(f"ONNX input {spec.name} is {spec.dtype} {list(spec.shape)}; expected "
                              f"{INPUT_DTYPE.name} [batch, seq_len]. Re-export with 02_onnx_export.")


def workspace_advice(errors: list[str], workspace_mib: int) -> str:
    """A sentence naming ``workspace_mib`` when TensorRT's errors say the workspace was too small, else ""."""
    text = "\n".join(errors)
    requested = re.search(r"OutOfMemory.*?Requested size was (\d+) bytes", text, re.S)
    if requested:
        need = math.ceil(int(requested.group(1)) / 2**20)
        if need > workspace_mib:
            return (f"The builder asked for {need:,} MiB of workspace but workspace_mib is {workspace_mib:,}: build "
                    f"again with workspace_mib >= {math.ceil(need / 256) * 256:,} (ensure_engine(workspace_mib=...), "
                    "or 04_build_engine's workspace_mib parameter).")
        return (f"The builder asked for {need:,} MiB, within workspace_mib={workspace_mib:,}: the GPU itself ran out of "
                "memory. Free GPU memory (other processes) or build with smaller profile maxima.")
    if "workspace" in text.lower() and ("limit" in text.lower() or "insufficient" in text.lower()):
        return (f"No kernel fits in the workspace limit of {workspace_mib:,} MiB: build again with a larger "
                f"workspace_mib (e.g. {max(2 * workspace_mib, DEFAULT_WORKSPACE_MIB):,}).")
    return ""


# ------------------------------------------------------------------------------------- the one entry point
def ensure_engine(onnx_path: str | os.PathLike[str], engine_path: str | os.PathLike[str], profile_set: ProfileSet, *,
                  workspace_mib: int = DEFAULT_WORKSPACE_MIB, rebuild: str = "stale", trt: Any = None,
                  device: int = 0, target: EngineTarget | None = None) -> EngineMetadata:
    """An engine at ``engine_path``, built from ``onnx_path`` with the profiles of ``profile_set``, that fits
    what it is built for; returns its metadata.

    ``rebuild``: ``"stale"`` (default) keeps an engine whose sidecar fits and builds otherwise; ``"never"`` stops
    with the reason instead of building (:class:`MissingArtifactError` or :class:`EngineMismatchError`);
    ``"always"`` builds. ``trt`` is the TensorRT module (default :func:`~helpers.trt.compat.import_tensorrt`);
    the engine is built for GPU ``device`` with full TensorRT, for TensorRT-RTX's portable targets with
    TensorRT-RTX (:func:`~helpers.trt.metadata.build_target`), or for ``target`` when given.
    """
    if rebuild not in REBUILD:
        raise ConfigError(f"rebuild must be one of {REBUILD}, got {rebuild!r}.")
    if int(workspace_mib) < 1:
        raise ConfigError(f"workspace_mib must be >= 1, got {workspace_mib}.")
    trt = trt if trt is not None else compat.import_tensorrt()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise MissingArtifactError(f"no ONNX model at {onnx_path}; run notebook 02_onnx_export first.")
    target = target if target is not None else build_target(trt, device)
    flavour = compat.flavour_of(trt)
    if target.flavour != flavour:
        raise ConfigError(f"the engine is to be built for {target.flavour} but the module is {flavour}: build with "
                          "the module of the flavour that will run it.")
    digest = sha256_file(onnx_path)
    reason = "rebuild='always'"
    if rebuild == "stale" and not engine_path.is_file():
        reason = "no engine there yet"
    elif rebuild != "always":
        try:
            meta = read_metadata(engine_path)
            problems = mismatches(meta, target, onnx_path, digest)
            if meta.profile_set().profiles != profile_set.profiles:
                problems.append(f"built for the profiles {_labels(meta.profile_set())}, asked for {_labels(profile_set)}")
        except (MissingArtifactError, EngineMismatchError) as exc:
            if rebuild == "never":
                raise
            problems = [str(exc)]
        if not problems:
            print(f"kept {engine_path.name}: it fits {target.flavour} {target.tensorrt_version}, "
                  f"{onnx_path.name} and the profiles")
            return meta
        if rebuild == "never":
            raise EngineMismatchError(f"TensorRT engine {engine_path.name} does not fit: " + "; ".join(problems) +
                                      ". Rebuild it with 04_build_engine.")
        reason = "; ".join(problems)
    print(f"building {engine_path.name} from {onnx_path.name}: {reason}")
    return _build(onnx_path, engine_path, profile_set, target, trt, int(workspace_mib), digest)


def _labels(profile_set: ProfileSet) -> str:
    return "; ".join(p.label() for p in profile_set.profiles)


def _build(onnx_path: Path, engine_path: Path, profile_set: ProfileSet, target: EngineTarget, trt: Any,
           workspace_mib: int, onnx_sha256: str) -> EngineMetadata:
    """The build itself (the steps 04 shows cell by cell), then the engine and its sidecar written."""
    compat.require_builder(trt)
    features = compat.features_of(trt)
    precision = onnx_precision(onnx_path)

    logger = compat.capturing_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(compat.network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        log = logger.errors()
        raise BackendError(f"{features.label}'s ONNX parser rejected {onnx_path.name} with {parser.num_errors} "
                           "error(s):\n" + "\n".join(parser_errors(parser))
                           + ("\nTensorRT's log:\n" + "\n".join(log) if log else ""))
    io = network_io(network, trt)
    check_network_io(io)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    for shape_profile in profile_set.profiles:
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in shape_profile.shapes().items():
            profile.set_shape(name, low, opt, high)
        if config.add_optimization_profile(profile) < 0:
            raise BackendError(f"{features.label} refused optimization profile {shape_profile.label()}: "
                               + " | ".join(logger.errors()))

    cache_path, cache_note = None, RTX_TIMING_CACHE_NOTE
    if features.flavour == "tensorrt":
        cache_path = timing_cache_path(engine_path.parent, features.version, target.compute_capability)
        cache_note = _offer_timing_cache(config, cache_path, logger)

    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        errors = logger.errors()
        advice = workspace_advice(errors, workspace_mib)
        raise BackendError(f"{features.label} could not build {engine_path.name} from {onnx_path.name}:\n"
                           + ("\n".join(errors) or "no error message (run with a VERBOSE logger)")
                           + (f"\n{advice}" if advice else ""))
    if cache_path is not None:
        timing_cache = config.get_timing_cache()
        atomic_write_bytes(cache_path, memoryview(timing_cache.serialize()).tobytes())

    meta = EngineMetadata(
        tensorrt_version=features.version, gpu_name=target.gpu_name, compute_capability=target.compute_capability,
        onnx_file=onnx_path.name, onnx_sha256=onnx_sha256, precision=precision, profiles=tuple(profile_set.to_dicts()),
        input_dtypes={s.name: s.dtype.name for s in io if s.is_input}, flavour=features.flavour,
        output_dtypes={s.name: s.dtype.name for s in io if not s.is_input}, workspace_bytes=workspace_mib << 20,
        builder="python-api", build_seconds=round(seconds, 2), created=now_utc(), timing_cache=cache_note)
    write_engine(engine_path, memoryview(serialized).tobytes(), meta)
    return meta


def _offer_timing_cache(config: Any, cache_path: Path, logger: Any) -> str:
    """Give the builder the timing cache at ``cache_path`` (or an empty one); say whether TensorRT took it."""
    offered = cache_path.read_bytes() if cache_path.is_file() else b""
    start = len(logger.messages)
    timing_cache = config.create_timing_cache(offered)
    refused = [m for _, m in logger.messages[start:] if "timing cache" in m.lower()]
    if not config.set_timing_cache(timing_cache, ignore_mismatch=False):
        raise BackendError(f"TensorRT rejected the timing cache {cache_path}; delete it and build again.")
    if offered and not refused:
        return f"reused {cache_path.name} ({len(offered):,} bytes)"
    if offered:
        return f"{cache_path.name} was offered but TensorRT did not load it: " + " | ".join(refused)
    return f"no timing cache yet: {cache_path.name} is written after this build"
