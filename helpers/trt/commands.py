"""Command lines for NVIDIA's tools: ``trtexec`` (the builder's command-line twin) and Polygraphy.

Commands are built as argument lists (never shell strings) so they can be printed for the reader and
run with :func:`run_command` unchanged. The trtexec line is the TensorRT 10/11 equivalent of the
original article's::

    trtexec --onnx=bert_cls.onnx --saveEngine=bert_cls.trt --workspace=10000
            --minShapes=input_ids:1x1,segment_ids:1x1 --optShapes=input_ids:20x512,segment_ids:20x512
            --maxShapes=input_ids:20x512,segment_ids:20x512

with ``--workspace`` (removed in 10.x) replaced by ``--memPoolSize=workspace:<MiB>``, a timing cache file,
and ``--stronglyTyped`` (required on 10.x, accepted and ignored on 11.x, where every network is strongly
typed): FP16 comes from 02's FP16 graph, never from ``--fp16`` (deprecated in 10.12, removed in 11.x), as
in the Python builder. One trtexec command carries one profile; engines with several profiles come from
the Python builder (:func:`helpers.trt.builder.engine_from_onnx`). trtexec is full TensorRT's tool
(TensorRT-RTX ships its own command-line builder, which this project does not drive).
:func:`engine_from_trtexec` runs the line and saves the engine with the same metadata sidecar.

``polygraphy run model.onnx --trt --onnxrt --strongly-typed`` builds its own engine from the same ONNX
and compares it with ONNX Runtime on generated inputs: an independent cross-check of this project's
parity code.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Sequence

from ..config import INPUT_NAMES
from ..errors import BackendError, ConfigError, TensorRTUnavailableError
from ..io import atomic_write_text, sha256_file
from . import compat
from .builder import BuildResult, BuildSettings, check_onnx_precision
from .compat import PrecisionSpec
from .metadata import EngineMetadata, RunningEnvironment, now_utc, timing_cache_path, write_engine
from .profiles import ProfileSet, ShapeProfile


def _shape_arg(profile_shape: tuple[int, int], names: Sequence[str], sep: str = "x") -> str:
    dims = sep.join(str(d) for d in profile_shape)
    return ",".join(f"{name}:{dims}" for name in names)


def trtexec_command(onnx_path: str | os.PathLike[str], engine_path: str | os.PathLike[str], profile: ShapeProfile,
                    precision: PrecisionSpec, workspace_mib: int,
                    timing_cache: str | os.PathLike[str] | None = None, trtexec: str = "trtexec",
                    names: Sequence[str] = INPUT_NAMES) -> list[str]:
    """The trtexec argument list that builds ``onnx_path`` into ``engine_path`` with one profile (strongly
    typed where the release has the flag: ``precision.trtexec_args``)."""
    if int(workspace_mib) < 1:
        raise ConfigError(f"workspace_mib must be >= 1, got {workspace_mib}.")
    cmd = [
        trtexec,
        f"--onnx={onnx_path}",
        f"--saveEngine={engine_path}",
        f"--minShapes={_shape_arg(profile.min_shape, names)}",
        f"--optShapes={_shape_arg(profile.opt_shape, names)}",
        f"--maxShapes={_shape_arg(profile.max_shape, names)}",
        f"--memPoolSize=workspace:{int(workspace_mib)}",
    ]
    if timing_cache is not None:
        cmd.append(f"--timingCacheFile={timing_cache}")
    cmd.extend(precision.trtexec_args)
    return cmd


def polygraphy_command(onnx_path: str | os.PathLike[str], profile_set: ProfileSet, precision: PrecisionSpec,
                       input_shape: tuple[int, int], vocab_size: int, *, atol: float, rtol: float,
                       workspace_mib: int = 1024, names: Sequence[str] = INPUT_NAMES) -> list[str]:
    """``polygraphy run <onnx> --trt --onnxrt`` with every profile of ``profile_set`` and valid token ids.

    Token ids are drawn from ``[0, vocab_size - 1]`` and segment ids are 0 (what the tokenizer makes), at
    ``input_shape``, which must lie inside the set; TensorRT runs it on the profile :meth:`ProfileSet.select`
    picks, as the project's runtime would.
    """
    profile_index = profile_set.select(*input_shape)  # raises InputError naming the allowed range
    if vocab_size < 2:
        raise ConfigError(f"vocab_size must be >= 2, got {vocab_size}.")
    cmd = ["polygraphy", "run", str(onnx_path), "--trt", "--onnxrt"]
    for profile in profile_set.profiles:
        for flag, shape in (("--trt-min-shapes", profile.min_shape), ("--trt-opt-shapes", profile.opt_shape),
                            ("--trt-max-shapes", profile.max_shape)):
            cmd.append(flag)
            cmd.extend(f"{name}:[{shape[0]},{shape[1]}]" for name in names)
    cmd += ["--optimization-profile", str(profile_index), "--input-shapes"]
    cmd.extend(f"{name}:[{input_shape[0]},{input_shape[1]}]" for name in names)
    cmd += ["--val-range", f"{names[0]}:[0,{vocab_size - 1}]"] + [f"{n}:[0,0]" for n in names[1:]]
    cmd += ["--pool-limit", f"workspace:{int(workspace_mib)}M", "--atol", f"{atol:g}", "--rtol", f"{rtol:g}"]
    cmd.extend(precision.polygraphy_args)
    return cmd


def shell_line(cmd: Sequence[str]) -> str:
    """The command as one copy-pasteable shell line."""
    return " ".join(shlex.quote(str(part)) for part in cmd)


def tool_available(name: str) -> bool:
    """True when ``name`` (trtexec, polygraphy) is on PATH."""
    return shutil.which(name) is not None


def run_command(cmd: Sequence[str], log_path: str | os.PathLike[str] | None = None, timeout_s: int = 3600) -> str:
    """Run a tool's argument list; return its output, or stop with the last lines of it when it fails."""
    exe = shutil.which(str(cmd[0]))
    if exe is None:
        raise TensorRTUnavailableError(f"{cmd[0]} is not on PATH; it comes with TensorRT's container or tarball.")
    proc = subprocess.run([exe, *map(str, cmd[1:])], capture_output=True, text=True, timeout=timeout_s, check=False)
    output = proc.stdout + proc.stderr
    if log_path is not None:
        atomic_write_text(log_path, output)
    if proc.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-30:])
        raise BackendError(f"{Path(str(cmd[0])).name} failed with exit code {proc.returncode}:\n{tail}")
    return output


def engine_from_trtexec(onnx_path: str | os.PathLike[str], engine_path: str | os.PathLike[str],
                        profile_set: ProfileSet, settings: BuildSettings, running: RunningEnvironment,
                        features: compat.TrtFeatures, trtexec: str = "trtexec") -> BuildResult:
    """Build the same engine with NVIDIA's ``trtexec`` (one profile: ``profile_set.envelope()``), log beside it.

    trtexec writes to a temporary name in the engine's folder; the engine is moved into place and its
    metadata sidecar written only when trtexec succeeded.
    """
    from ..export import io_specs_from_onnx

    if features.flavour != "tensorrt" or running.flavour != "tensorrt":
        raise features.unavailable("trtexec", "it is full TensorRT's tool; build with engine_from_onnx instead.")
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    precision = compat.precision_spec(features, settings.precision)
    check_onnx_precision(onnx_path, precision)
    cache = timing_cache_path(settings.cache_dir, features.version, running.compute_capability) if settings.cache_dir else None
    reused = cache is not None and cache.is_file()
    tmp = engine_path.with_name(f".{engine_path.name}.trtexec-tmp")
    envelope = profile_set.envelope()
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
            input_dtypes={s.name: s.dtype.name for s in specs if s.is_input}, flavour=features.flavour,
            output_dtypes={s.name: s.dtype.name for s in specs if not s.is_input},
            workspace_bytes=settings.workspace_bytes, builder="trtexec", build_seconds=round(seconds, 2),
            created=now_utc())
        write_engine(engine_path, tmp.read_bytes(), meta)
    finally:
        tmp.unlink(missing_ok=True)
    note = f"trtexec was given --timingCacheFile={cache.name}" if cache is not None else ""
    return BuildResult(engine_path, meta, seconds, cache, reused, note)
