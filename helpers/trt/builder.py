"""ONNX -> TensorRT engine through the Python builder API (TensorRT 10.x and 11.x).

:func:`engine_from_onnx` does what the original article's ``trtexec`` line did, on today's API:

* the network is created with ``builder.create_network()`` (no EXPLICIT_BATCH flag: ignored in 10.x,
  removed in 11.x) and filled by ``OnnxParser.parse_from_file``; when parsing fails, every parser error
  is reported in full (description, code, node index, name and operator);
* one optimization profile per :class:`~helpers.trt.profiles.ShapeProfile`, each covering both inputs;
* precision from :func:`helpers.trt.compat.precision_plan`: FP32, or FP16 as ``BuilderFlag.FP16`` on
  10.x and as a strongly typed build of 02's FP16 ONNX on 11.x;
* the workspace limit with ``set_memory_pool_limit(MemoryPoolType.WORKSPACE, bytes)`` (not the removed
  ``max_workspace_size``);
* a timing cache loaded before and saved after each build, so a second build skips kernel timing it has
  done before;
* ``build_serialized_network`` (not the removed ``build_engine``), the bytes written atomically with the
  metadata sidecar of :mod:`helpers.trt.metadata`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import INPUT_DTYPE, INPUT_NAMES, OUTPUT_NAME
from ..errors import BackendError, ConfigError, ExportError, MissingArtifactError
from ..export import ONNX_FILES as EXPORTED_ONNX
from ..io import atomic_write_bytes, sha256_file
from . import compat
from .commands import run_command, trtexec_command
from .metadata import EngineMetadata, RunningEnvironment, now_utc, timing_cache_path, write_engine
from .profiles import ProfilePlan

#: 02's ONNX files, by the variant a precision plan asks for.
ONNX_FILES: dict[str, str] = {"fp32": EXPORTED_ONNX["plain"], "fp16": EXPORTED_ONNX["fp16"]}


@dataclass(frozen=True)
class BuildSettings:
    """How to build: precision, workspace limit (MiB) and where timing caches live (``None``: no cache)."""

    precision: str = "fp16"
    workspace_mib: int = 1024
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
class BuildResult:
    """What a build produced and how long it took."""

    engine_path: Path
    metadata: EngineMetadata
    seconds: float
    timing_cache: Path | None
    timing_cache_reused: bool


def engine_name(precision: str) -> str:
    """File name of the engine for a precision: ``model.fp16.plan``."""
    return f"model.{precision}.plan"


def onnx_for(onnx_dir: str | os.PathLike[str], features: compat.TrtFeatures, precision: str) -> Path:
    """02's ONNX file that the precision plan needs; :class:`MissingArtifactError` naming 02 if absent."""
    plan = compat.precision_plan(features, precision)
    path = Path(onnx_dir) / ONNX_FILES[plan.onnx_variant]
    if not path.is_file():
        raise MissingArtifactError(
            f"{path} is missing (precision {precision} on TensorRT {features.version} builds {path.name}): "
            "run notebook 02_onnx_export first.")
    return path


def onnx_precision(path: str | os.PathLike[str]) -> str:
    """"fp16" if the ONNX graph holds FP16 weights, else "fp32" (weights are read without external data)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return "fp16" if any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer) else "fp32"


def check_onnx_precision(path: Path, plan: compat.PrecisionPlan) -> None:
    """Stop when the ONNX file is not the variant the precision plan needs (e.g. FP32 graph on 11.x FP16)."""
    found = onnx_precision(path)
    if found != plan.onnx_variant:
        raise ConfigError(
            f"{path.name} is an {found.upper()} graph but precision {plan.precision!r} needs the "
            f"{plan.onnx_variant.upper()} graph ({ONNX_FILES[plan.onnx_variant]}): {plan.explanation}")


# ----------------------------------------------------------------------------------------- parse / check
def parser_errors(parser: Any) -> list[str]:
    """Every error the ONNX parser recorded, one readable line each."""
    lines = []
    for i in range(parser.num_errors):
        parser_error = parser.get_error(i)
        lines.append(f"#{i}: {parser_error.desc()} [code {parser_error.code()}, node {parser_error.node()} "
                     f"{parser_error.node_name()!r}, op {parser_error.node_operator()!r}]")
    return lines


def check_network_io(network: Any, trt: Any) -> tuple[dict[str, str], dict[str, str]]:
    """Check the parsed network has this project's I/O (int32 ``[batch, seq_len]`` inputs, one logits
    output) and return ``(input dtypes, output dtypes)`` as numpy dtype names."""
    inputs, outputs = {}, {}
    for i in range(network.num_inputs):
        network_tensor = network.get_input(i)
        inputs[network_tensor.name] = (network_tensor.dtype, tuple(network_tensor.shape))
    for i in range(network.num_outputs):
        network_tensor = network.get_output(i)
        outputs[network_tensor.name] = network_tensor.dtype
    if sorted(inputs) != sorted(INPUT_NAMES) or list(outputs) != [OUTPUT_NAME]:
        raise ExportError(f"the ONNX graph has inputs {sorted(inputs)} and outputs {list(outputs)}; expected "
                          f"{list(INPUT_NAMES)} and ['{OUTPUT_NAME}']. Re-export with 02_onnx_export.")
    for name, (dtype, shape) in inputs.items():
        if dtype != trt.DataType.INT32 or len(shape) != 2:
            raise ExportError(f"ONNX input {name} is {dtype} {shape}; expected {INPUT_DTYPE.name} [batch, seq_len]. "
                              "Re-export with 02_onnx_export.")
    return ({name: compat.numpy_dtype(trt, dtype).name for name, (dtype, _) in inputs.items()},
            {name: compat.numpy_dtype(trt, dtype).name for name, dtype in outputs.items()})


# --------------------------------------------------------------------------------------------- building
def engine_from_onnx(onnx_path: str | os.PathLike[str], engine_path: str | os.PathLike[str], plan: ProfilePlan,
                     settings: BuildSettings, running: RunningEnvironment, trt: Any = None) -> BuildResult:
    """Build an engine from ``onnx_path`` for ``plan``'s profiles and save it with its metadata sidecar."""
    trt = trt if trt is not None else compat.import_tensorrt()
    compat.require_builder(trt)
    features = compat.features_of(trt)
    precision = compat.precision_plan(features, settings.precision)
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise MissingArtifactError(f"no ONNX model at {onnx_path}; run notebook 02_onnx_export first.")
    check_onnx_precision(onnx_path, precision)

    logger = compat.capturing_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network()
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise BackendError(f"TensorRT's ONNX parser rejected {onnx_path.name} with {parser.num_errors} error(s):\n"
                           + "\n".join(parser_errors(parser)))
    input_dtypes, output_dtypes = check_network_io(network, trt)

    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    if precision.use_fp16_flag:
        builder_config.set_flag(compat.fp16_builder_flag(trt))
    for profile in plan.profiles:
        trt_profile = builder.create_optimization_profile()
        for name, (low, opt, high) in profile.shapes().items():
            trt_profile.set_shape(name, low, opt, high)
        if builder_config.add_optimization_profile(trt_profile) < 0:
            raise BackendError(f"TensorRT refused optimization profile {profile.label()}: "
                               + " | ".join(logger.errors()))

    cache_path = None
    reused = False
    if settings.cache_dir is not None:
        cache_path = timing_cache_path(settings.cache_dir, features.version, running.compute_capability)
        reused = cache_path.is_file()
        timing_cache = builder_config.create_timing_cache(cache_path.read_bytes() if reused else b"")
        if not builder_config.set_timing_cache(timing_cache, ignore_mismatch=False):
            raise BackendError(f"TensorRT rejected the timing cache {cache_path}; delete it and build again.")

    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, builder_config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise BackendError(f"TensorRT could not build {engine_path.name} from {onnx_path.name}:\n"
                           + ("\n".join(logger.errors()) or "no error message (run with a VERBOSE logger)"))
    if cache_path is not None:
        timing_cache = builder_config.get_timing_cache()
        atomic_write_bytes(cache_path, memoryview(timing_cache.serialize()).tobytes())

    meta = EngineMetadata(
        tensorrt_version=features.version, gpu_name=running.gpu_name,
        compute_capability=running.compute_capability, onnx_file=onnx_path.name,
        onnx_sha256=sha256_file(onnx_path), precision=settings.precision, profiles=tuple(plan.to_dicts()),
        input_dtypes=input_dtypes, output_dtypes=output_dtypes, workspace_bytes=settings.workspace_bytes,
        builder="python-api", build_seconds=round(seconds, 2), created=now_utc())
    write_engine(engine_path, memoryview(serialized).tobytes(), meta)
    return BuildResult(engine_path, meta, seconds, cache_path, reused)


def engine_from_trtexec(onnx_path: str | os.PathLike[str], engine_path: str | os.PathLike[str], plan: ProfilePlan,
                        settings: BuildSettings, running: RunningEnvironment, features: compat.TrtFeatures,
                        trtexec: str = "trtexec") -> BuildResult:
    """Build the same engine with NVIDIA's ``trtexec`` (one profile: ``plan.envelope()``), log beside it.

    trtexec writes to a temporary name in the engine's folder; the engine is moved into place and its
    metadata sidecar written only when trtexec succeeded.
    """
    from ..export import io_specs_from_onnx

    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    precision = compat.precision_plan(features, settings.precision)
    check_onnx_precision(onnx_path, precision)
    cache = timing_cache_path(settings.cache_dir, features.version, running.compute_capability) if settings.cache_dir else None
    reused = cache is not None and cache.is_file()
    tmp = engine_path.with_name(f".{engine_path.name}.trtexec-tmp")
    envelope = plan.envelope()
    cmd = trtexec_command(onnx_path, tmp, envelope, precision, settings.workspace_mib, cache, trtexec=trtexec)
    start = time.perf_counter()
    try:
        run_command(cmd, log_path=engine_path.with_name(engine_path.name + ".trtexec.log"))
        seconds = time.perf_counter() - start
        specs = io_specs_from_onnx(onnx_path)
        meta = EngineMetadata(
            tensorrt_version=features.version, gpu_name=running.gpu_name,
            compute_capability=running.compute_capability, onnx_file=onnx_path.name,
            onnx_sha256=sha256_file(onnx_path), precision=settings.precision, profiles=(envelope.to_dict(),),
            input_dtypes={s.name: s.dtype.name for s in specs if s.is_input},
            output_dtypes={s.name: s.dtype.name for s in specs if not s.is_input},
            workspace_bytes=settings.workspace_bytes, builder="trtexec", build_seconds=round(seconds, 2),
            created=now_utc())
        write_engine(engine_path, tmp.read_bytes(), meta)
    finally:
        tmp.unlink(missing_ok=True)
    return BuildResult(engine_path, meta, seconds, cache, reused)
