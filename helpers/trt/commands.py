"""Command lines for NVIDIA's tools: ``trtexec`` (the builder's command-line twin) and Polygraphy.

Commands are built as argument lists (never shell strings): print them with ``shlex.join`` and run them
unchanged (:func:`run_command`). The trtexec line is the TensorRT 10/11 equivalent of the original article's::

    trtexec --onnx=bert_cls.onnx --saveEngine=bert_cls.trt --workspace=10000
            --minShapes=input_ids:1x1,segment_ids:1x1 --optShapes=input_ids:20x512,segment_ids:20x512
            --maxShapes=input_ids:20x512,segment_ids:20x512

with ``--workspace`` (removed in 10.x) replaced by ``--memPoolSize=workspace:<MiB>`` and ``--stronglyTyped``
(required on 10.x, accepted on 11.x, where every network is strongly typed): FP16 comes from 02's FP16 graph,
never from ``--fp16`` (deprecated in 10.12, removed in 11.x), as in the Python builder. One trtexec command
carries one profile, the envelope of the profile set; engines with several profiles come from the Python
builder. trtexec is full TensorRT's tool (TensorRT-RTX ships its own command-line builder).

``polygraphy run model.onnx --trt --onnxrt --strongly-typed`` builds its own engine from the same ONNX and
compares it with ONNX Runtime on generated inputs: an independent cross-check of this project's parity code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from ..config import INPUT_NAMES
from ..errors import BackendError, ConfigError, TensorRTUnavailableError
from ..io import atomic_write_text
from .profiles import ProfileSet


def _shape_arg(profile_shape: tuple[int, int], names: Sequence[str], sep: str = "x") -> str:
    dims = sep.join(str(d) for d in profile_shape)
    return ",".join(f"{name}:{dims}" for name in names)


def trtexec_command(onnx_path: str | os.PathLike[str], engine_path: str | os.PathLike[str], profile_set: ProfileSet,
                    workspace_mib: int, timing_cache: str | os.PathLike[str] | None = None,
                    trtexec: str = "trtexec", names: Sequence[str] = INPUT_NAMES) -> list[str]:
    """The trtexec argument list that builds ``onnx_path`` into ``engine_path``, strongly typed, with the one
    profile that spans ``profile_set`` (:meth:`~helpers.trt.profiles.ProfileSet.envelope`)."""
    if int(workspace_mib) < 1:
        raise ConfigError(f"workspace_mib must be >= 1, got {workspace_mib}.")
    envelope = profile_set.envelope()
    cmd = [
        trtexec,
        f"--onnx={onnx_path}",
        f"--saveEngine={engine_path}",
        f"--minShapes={_shape_arg(envelope.min_shape, names)}",
        f"--optShapes={_shape_arg(envelope.opt_shape, names)}",
        f"--maxShapes={_shape_arg(envelope.max_shape, names)}",
        f"--memPoolSize=workspace:{int(workspace_mib)}",
        "--stronglyTyped",
    ]
    if timing_cache is not None:
        cmd.append(f"--timingCacheFile={timing_cache}")
    return cmd


def polygraphy_command(onnx_path: str | os.PathLike[str], profile_set: ProfileSet,
                       input_shape: tuple[int, int], vocab_size: int, *, atol: float, rtol: float,
                       workspace_mib: int = 1024, names: Sequence[str] = INPUT_NAMES) -> list[str]:
    """``polygraphy run <onnx> --trt --onnxrt --strongly-typed`` with every profile of ``profile_set`` and valid
    token ids.

    Token ids are drawn from ``[0, vocab_size - 1]`` and segment ids are 0 (what the tokenizer makes), at
    ``input_shape``, which must lie inside the set; TensorRT runs it on the profile :meth:`ProfileSet.select`
    picks, as the project's runtime would.
    """
    profile_index = profile_set.select(*input_shape)  # raises InputError naming the allowed range
    if vocab_size < 2:
        raise ConfigError(f"vocab_size must be >= 2, got {vocab_size}.")
    cmd = ["polygraphy", "run", str(onnx_path), "--trt", "--onnxrt"]
    for shape_profile in profile_set.profiles:
        for flag, shape in (("--trt-min-shapes", shape_profile.min_shape), ("--trt-opt-shapes", shape_profile.opt_shape),
                            ("--trt-max-shapes", shape_profile.max_shape)):
            cmd.append(flag)
            cmd.extend(f"{name}:[{shape[0]},{shape[1]}]" for name in names)
    cmd += ["--optimization-profile", str(profile_index), "--input-shapes"]
    cmd.extend(f"{name}:[{input_shape[0]},{input_shape[1]}]" for name in names)
    cmd += ["--val-range", f"{names[0]}:[0,{vocab_size - 1}]"] + [f"{n}:[0,0]" for n in names[1:]]
    cmd += ["--pool-limit", f"workspace:{int(workspace_mib)}M", "--atol", f"{atol:g}", "--rtol", f"{rtol:g}"]
    return cmd + ["--strongly-typed"]


def run_command(cmd: Sequence[str], log_path: str | os.PathLike[str] | None = None, timeout_s: int = 3600) -> str:
    """Run a tool's argument list; return its output, or stop with the last lines of it when it fails."""
    exe = shutil.which(str(cmd[0]))
    if exe is None:
        raise TensorRTUnavailableError(f"{cmd[0]} is not on PATH (trtexec comes with NVIDIA's TensorRT container or "
                                       "tarball; Polygraphy with `pip install polygraphy`).")
    proc = subprocess.run([exe, *map(str, cmd[1:])], capture_output=True, text=True, timeout=timeout_s, check=False)
    output = proc.stdout + proc.stderr
    if log_path is not None:
        atomic_write_text(log_path, output)
    if proc.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-30:])
        raise BackendError(f"{Path(str(cmd[0])).name} failed with exit code {proc.returncode}:\n{tail}")
    return output
