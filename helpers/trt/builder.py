"""ONNX -> TensorRT engine through the Python builder API (TensorRT 10.x / 11.x and TensorRT-RTX).

:func:`engine_from_onnx` does what the original article's ``trtexec`` line did, on today's API:

* the network is created strongly typed (``builder.create_network(1 << STRONGLY_TYPED)`` where the release
  has the flag, see :func:`helpers.trt.compat.network_flags`; never the EXPLICIT_BATCH flag, ignored in 10.x
  and removed in 11.x) and filled by ``OnnxParser.parse_from_file``; when parsing fails, every parser error
  is reported in full (description, code, node index, name and operator) with TensorRT's log beside it;
* precision comes from the graph: FP32 from 02's ``model.onnx``, FP16 from 02's ``model.fp16.onnx`` on
  every release (:func:`helpers.trt.compat.precision_spec`); the weakly typed ``BuilderFlag.FP16`` is never
  set, so 02's FP16 safeguards (FP16-safe mask fill, LayerNorm and Softmax in FP32) always hold;
* one optimization profile per :class:`~helpers.trt.profiles.ShapeProfile`, each covering both inputs;
* the workspace limit with ``set_memory_pool_limit(MemoryPoolType.WORKSPACE, bytes)`` (not the removed
  ``max_workspace_size``), 4 GiB by default: BERT-base in FP32 at 64 x 512 asked for 1,414 MiB, more than
  the 1 GiB it once had; a build that runs out of workspace says which ``workspace_mib`` to use;
* with full TensorRT, a timing cache loaded before and saved after each build, so a second build skips
  kernel timing it has done before; whether TensorRT accepted the cache is recorded from its own log.
  TensorRT-RTX uses no timing cache (NVIDIA: it has no effect on TensorRT-RTX engines, is deprecated since
  TensorRT-RTX 1.2, and would force a GPU query during the CPU-only build);
* ``build_serialized_network`` (not the removed ``build_engine``), the bytes written atomically with the
  metadata sidecar of :mod:`helpers.trt.metadata`.

The same engine from NVIDIA's command-line builder: :func:`helpers.trt.commands.engine_from_trtexec`.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import INPUT_DTYPE, INPUT_NAMES, OUTPUT_NAME
from ..errors import BackendError, ConfigError, ExportError, MissingArtifactError
from ..export import ONNX_FILES
from ..io import atomic_write_bytes, sha256_file
from . import compat
from .metadata import EngineMetadata, RunningEnvironment, now_utc, timing_cache_path, write_engine
from .profiles import ProfileSet

#: The builder's workspace limit unless told otherwise (MiB). BERT-base FP32 at profiles up to 64 x 512
#: asked for 1,482,348,552 bytes (1,414 MiB) on an H200 and failed with the former 1,024.
DEFAULT_WORKSPACE_MIB = 4096

#: Why TensorRT-RTX builds get no timing cache.
RTX_TIMING_CACHE_NOTE = ("TensorRT-RTX uses no timing cache: NVIDIA documents that it has no effect on TensorRT-RTX "
                         "engines, deprecated it in TensorRT-RTX 1.2, and that it forces a GPU query during the "
                         "CPU-only ahead-of-time build")


@dataclass(frozen=True)
class BuildSettings:
    """How to build: precision, workspace limit (MiB) and where timing caches live (``None``: no cache)."""

    precision: str = "fp16"
    workspace_mib: int = DEFAULT_WORKSPACE_MIB
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.precision not in compat.PRECISIONS:
            raise ConfigError(f"precision must be one of {compat.PRECISIONS}, got {self.precision!r}.")
        if int(self.workspace_mib) < 1:
            raise ConfigError(f"workspace_mib must be >= 1, got {self.workspace_mib}.")

    @property
    def workspace_bytes(self) -> int:
        return int(self.workspace_mib) << 20


@dataclass(frozen=True)
class NetworkIO:
    """The parsed network's inputs and outputs: name -> (numpy dtype name, shape with -1 for dynamic axes)."""

    inputs: dict[str, tuple[str, tuple[int, ...]]]
    outputs: dict[str, tuple[str, tuple[int, ...]]]

    def dtypes(self, which: str) -> dict[str, str]:
        return {name: dtype for name, (dtype, _) in getattr(self, which).items()}


@dataclass(frozen=True)
class BuildResult:
    """What a build produced, how long it took, and what happened to the timing cache."""

    engine_path: Path
    metadata: EngineMetadata
    seconds: float
    timing_cache: Path | None
    timing_cache_reused: bool
    timing_cache_note: str = ""
    network_io: NetworkIO = field(default_factory=lambda: NetworkIO({}, {}))

    @property
    def engine_bytes(self) -> int:
        return self.engine_path.stat().st_size


def engine_name(precision: str) -> str:
    """File name of the engine for a precision: ``model.fp16.engine``."""
    return f"model.{precision}.engine"


def onnx_for(onnx_dir: str | os.PathLike[str], features: compat.TrtFeatures, precision: str) -> Path:
    """02's ONNX file that ``precision`` builds from (:func:`~helpers.trt.compat.precision_spec`);
    :class:`MissingArtifactError` naming 02 if absent."""
    spec = compat.precision_spec(features, precision)
    path = Path(onnx_dir) / ONNX_FILES[spec.onnx_key]
    if not path.is_file():
        raise MissingArtifactError(f"{path} is missing (precision {precision} builds {path.name}): "
                                   "run notebook 02_onnx_export first.")
    return path


def onnx_precision(path: str | os.PathLike[str]) -> str:
    """"fp16" if the ONNX graph holds FP16 weights, else "fp32" (weights are read without external data)."""
    import onnx

    from ..export import load_onnx

    proto = load_onnx(path, load_external_data=False)
    return "fp16" if any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer) else "fp32"


def check_onnx_precision(path: Path, spec: compat.PrecisionSpec) -> None:
    """Stop when the ONNX file is not the graph ``spec`` needs (e.g. the FP32 graph for FP16)."""
    found = onnx_precision(path)
    if found != spec.onnx_variant:
        raise ConfigError(
            f"{path.name} is an {found.upper()} graph but precision {spec.precision!r} needs the "
            f"{spec.onnx_variant.upper()} graph ({ONNX_FILES[spec.onnx_key]}): {spec.explanation}")


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


def network_io(network: Any, trt: Any) -> NetworkIO:
    """The parsed network's I/O tensors, dtypes as numpy names."""
    def describe(network_tensor: Any) -> tuple[str, tuple[str, tuple[int, ...]]]:
        dtype = compat.numpy_dtype(trt, network_tensor.dtype).name
        return network_tensor.name, (dtype, tuple(int(d) for d in network_tensor.shape))

    return NetworkIO(dict(describe(network.get_input(i)) for i in range(network.num_inputs)),
                     dict(describe(network.get_output(i)) for i in range(network.num_outputs)))


def check_network_io(io: NetworkIO) -> None:
    """Stop unless the network has this project's I/O: int32 ``[batch, seq_len]`` inputs, one logits output."""
    if sorted(io.inputs) != sorted(INPUT_NAMES) or list(io.outputs) != [OUTPUT_NAME]:
        raise ExportError(f"the ONNX graph has inputs {sorted(io.inputs)} and outputs {list(io.outputs)}; expected "
                          f"{list(INPUT_NAMES)} and ['{OUTPUT_NAME}']. Re-export with 02_onnx_export.")
    for name, (dtype, shape) in io.inputs.items():
        if dtype != INPUT_DTYPE.name or len(shape) != 2:
            raise ExportError(f"ONNX input {name} is {dtype} {list(shape)}; expected {INPUT_DTYPE.name} [batch, seq_len]. "
                              "Re-export with 02_onnx_export.")


def workspace_advice(errors: list[str], workspace_mib: int) -> str:
    """A sentence naming ``workspace_mib`` when TensorRT's errors say the workspace was too small, else ""."""
    text = "\n".join(errors)
    requested = re.search(r"OutOfMemory.*?Requested size was (\d+) bytes", text, re.S)
    if requested:
        need = math.ceil(int(requested.group(1)) / 2**20)
        if need > workspace_mib:
            return (f"The builder asked for {need:,} MiB of workspace but workspace_mib is {workspace_mib:,}: build "
                    f"again with workspace_mib >= {math.ceil(need / 256) * 256:,} (BuildSettings(workspace_mib=...), "
                    "or 04_build_engine's workspace_mib parameter).")
        return (f"The builder asked for {need:,} MiB, within workspace_mib={workspace_mib:,}: the GPU itself ran out of "
                "memory. Free GPU memory (other processes) or build with smaller profile maxima.")
    if "workspace" in text.lower() and ("limit" in text.lower() or "insufficient" in text.lower()):
        return (f"No kernel fits in the workspace limit of {workspace_mib:,} MiB: build again with a larger "
                f"workspace_mib (e.g. {max(2 * workspace_mib, DEFAULT_WORKSPACE_MIB):,}).")
    return ""


def _new_messages(logger: Any, start: int) -> list[str]:
    return [m for _, m in logger.messages[start:]]


# --------------------------------------------------------------------------------------------- building
def engine_from_onnx(onnx_path: str | os.PathLike[str], engine_path: str | os.PathLike[str],
                     profile_set: ProfileSet, settings: BuildSettings, running: RunningEnvironment,
                     trt: Any = None) -> BuildResult:
    """Build an engine from ``onnx_path`` for the profiles of ``profile_set`` and save it with its metadata sidecar.

    ``running`` says what the engine is built for (:func:`helpers.trt.metadata.build_environment`); it must
    be of the same flavour as ``trt``.
    """
    trt = trt if trt is not None else compat.import_tensorrt()
    compat.require_builder(trt)
    features = compat.features_of(trt)
    if running.flavour != features.flavour:
        raise ConfigError(f"the build environment is for {running.flavour} but the module is {features.flavour}: "
                          "pass build_environment(trt) for the module you build with.")
    precision = compat.precision_spec(features, settings.precision)
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise MissingArtifactError(f"no ONNX model at {onnx_path}; run notebook 02_onnx_export first.")
    check_onnx_precision(onnx_path, precision)

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

    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    for profile in profile_set.profiles:
        trt_profile = builder.create_optimization_profile()
        for name, (low, opt, high) in profile.shapes().items():
            trt_profile.set_shape(name, low, opt, high)
        if builder_config.add_optimization_profile(trt_profile) < 0:
            raise BackendError(f"{features.label} refused optimization profile {profile.label()}: "
                               + " | ".join(logger.errors()))

    cache_path, reused, note = None, False, ""
    if settings.cache_dir is not None and features.flavour == "tensorrt-rtx":
        note = RTX_TIMING_CACHE_NOTE
    elif settings.cache_dir is not None:
        cache_path = timing_cache_path(settings.cache_dir, features.version, running.compute_capability)
        offered = cache_path.read_bytes() if cache_path.is_file() else b""
        start = len(logger.messages)
        timing_cache = builder_config.create_timing_cache(offered)
        refused = [m for m in _new_messages(logger, start) if "timing cache" in m.lower()]
        if not builder_config.set_timing_cache(timing_cache, ignore_mismatch=False):
            raise BackendError(f"TensorRT rejected the timing cache {cache_path}; delete it and build again.")
        reused = bool(offered) and not refused
        if reused:
            note = f"reused {cache_path.name} ({len(offered):,} bytes)"
        elif offered:
            note = f"{cache_path.name} was offered but TensorRT did not load it: " + " | ".join(refused)
        else:
            note = f"no timing cache yet: {cache_path.name} is written after this build"

    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, builder_config)
    seconds = time.perf_counter() - start
    if serialized is None:
        errors = logger.errors()
        advice = workspace_advice(errors, settings.workspace_mib)
        raise BackendError(f"{features.label} could not build {engine_path.name} from {onnx_path.name}:\n"
                           + ("\n".join(errors) or "no error message (run with a VERBOSE logger)")
                           + (f"\n{advice}" if advice else ""))
    if cache_path is not None:
        timing_cache = builder_config.get_timing_cache()
        atomic_write_bytes(cache_path, memoryview(timing_cache.serialize()).tobytes())

    meta = EngineMetadata(
        tensorrt_version=features.version, gpu_name=running.gpu_name,
        compute_capability=running.compute_capability, onnx_file=onnx_path.name,
        onnx_sha256=sha256_file(onnx_path), precision=settings.precision, profiles=tuple(profile_set.to_dicts()),
        input_dtypes=io.dtypes("inputs"), flavour=features.flavour, output_dtypes=io.dtypes("outputs"),
        workspace_bytes=settings.workspace_bytes, builder="python-api", build_seconds=round(seconds, 2),
        created=now_utc())
    write_engine(engine_path, memoryview(serialized).tobytes(), meta)
    return BuildResult(engine_path, meta, seconds, cache_path, reused, note, io)
