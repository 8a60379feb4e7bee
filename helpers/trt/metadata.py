"""The metadata sidecar of a TensorRT engine, and the check that an engine still fits where it is loaded.

A serialized engine is only valid for the TensorRT flavour and release that built it and for the GPUs it
was built for: with full TensorRT, the GPU model it was built on (its kernels were timed there); with
TensorRT-RTX, which compiles ahead of time without a GPU, the compute capabilities of its portable targets
(:data:`~helpers.trt.compat.RTX_PORTABLE_TARGETS`). It also silently goes stale when the ONNX it came from
is re-exported. So every engine ``X.engine`` is written together with ``X.engine.json``::

    {"flavour": "tensorrt", "tensorrt_version": "10.13.0.35", "gpu_name": "NVIDIA H100 80GB HBM3",
     "compute_capability": "9.0", "onnx_file": "model.fp16.onnx", "onnx_sha256": "...", "precision": "fp16",
     "profiles": [...], "input_dtypes": {"input_ids": "int32", ...}, ...}

and :func:`check_engine` compares it with the running flavour, release, GPU and the ONNX file before the
engine is deserialized: a mismatch stops with :class:`~helpers.errors.EngineMismatchError` listing every
difference (:func:`helpers.trt.builder.ensure_engine` rebuilds instead, when asked). Sidecars written before
the flavour was recorded (format 1) are refused with the advice to rebuild.

The timing cache (full TensorRT only: TensorRT-RTX does not use one) is keyed the same way: its file name
carries the TensorRT version and compute capability (:func:`timing_cache_path`), so a cache from another
release or GPU is never offered to the builder.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from ..errors import BackendError, EngineMismatchError, MissingArtifactError
from ..io import atomic_write_bytes, atomic_write_json, read_json, sha256_file
from ..machine import gpu_identity
from . import compat
from .profiles import ProfileSet

#: Sidecar format: 2 records the flavour (format 1 did not and is refused with "rebuild").
FORMAT = 2
SIDECAR_SUFFIX = ".json"
#: ``gpu_name`` of a TensorRT-RTX engine built on a machine without a GPU.
NO_GPU = "none (built ahead of time without a GPU)"


@dataclass(frozen=True)
class EngineTarget:
    """What an engine must match where it is loaded (or, for a build, what it is built for).

    ``compute_capability`` is the GPU's (``"9.0"``); for a build with TensorRT-RTX it is the engine's
    portable targets (:data:`~helpers.trt.compat.RTX_PORTABLE_TARGETS`).
    """

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    flavour: str

    def __post_init__(self) -> None:
        compat.check_flavour(self.flavour)


def running_target(trt: Any, device: int = 0) -> EngineTarget:
    """The flavour and release of module ``trt`` and the name/compute capability of CUDA device ``device``."""
    features = compat.features_of(trt)
    gpu = gpu_identity(device)
    return EngineTarget(features.version, gpu.name, gpu.compute_capability, features.flavour)


def build_target(trt: Any, device: int = 0) -> EngineTarget:
    """What an engine built with module ``trt`` is built for.

    Full TensorRT times kernels on GPU ``device``: the engine is for that GPU (:func:`running_target`).
    TensorRT-RTX compiles ahead of time for its portable targets, with or without a GPU here.
    """
    features = compat.features_of(trt)
    if features.flavour == "tensorrt":
        return running_target(trt, device)
    try:
        gpu_name = gpu_identity(device).name
    except BackendError:
        gpu_name = NO_GPU
    return EngineTarget(features.version, gpu_name, compat.RTX_PORTABLE_TARGETS, features.flavour)


@dataclass(frozen=True)
class EngineMetadata:
    """Everything recorded beside an engine file."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    onnx_file: str
    onnx_sha256: str
    precision: str
    profiles: tuple[dict[str, int], ...]
    input_dtypes: dict[str, str]
    flavour: str
    output_dtypes: dict[str, str] = field(default_factory=dict)
    workspace_bytes: int = 0
    builder: str = "python-api"
    build_seconds: float = 0.0
    created: str = ""
    timing_cache: str = ""  # what happened to the timing cache during the build (full TensorRT only)
    format: int = FORMAT

    def profile_set(self) -> ProfileSet:
        return ProfileSet.from_dicts(self.profiles, reason="as recorded in the engine's metadata")

    @property
    def built_for(self) -> EngineTarget:
        """The flavour, release and GPU (or TensorRT-RTX targets) this engine was built for."""
        return EngineTarget(self.tensorrt_version, self.gpu_name, self.compute_capability, self.flavour)

    def mismatches(self, onnx_path: str | os.PathLike[str] | None = None, **elsewhere: str) -> list[str]:
        """Every reason :func:`check_engine` would refuse this engine if it were loaded where ``elsewhere``
        differs from what it was built for (keys: ``tensorrt_version``, ``gpu_name``, ``compute_capability``,
        ``flavour``), next to ``onnx_path``. No keywords: where it was built for (an empty list, unless the ONNX
        changed)."""
        unknown = sorted(set(elsewhere) - set(EngineTarget.__dataclass_fields__))
        if unknown:
            raise TypeError(f"EngineMetadata.mismatches: unknown keywords {unknown}; use "
                            f"{sorted(EngineTarget.__dataclass_fields__)}.")
        return mismatches(self, replace(self.built_for, **elsewhere), onnx_path)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["profiles"] = [dict(p) for p in self.profiles]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EngineMetadata":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        missing = [k for k in ("tensorrt_version", "gpu_name", "compute_capability", "onnx_file", "onnx_sha256",
                               "precision", "profiles", "input_dtypes", "flavour") if k not in known]
        if missing:
            why = (" (written before the TensorRT flavour was recorded)" if missing == ["flavour"] else "")
            raise EngineMismatchError(f"engine metadata lacks {missing}{why}; rebuild the engine with 04_build_engine.")
        known["profiles"] = tuple(dict(p) for p in known["profiles"])
        return cls(**known)


def sidecar_path(engine_path: str | os.PathLike[str]) -> Path:
    """``model.fp16.engine`` -> ``model.fp16.engine.json``."""
    p = Path(engine_path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_engine(engine_path: str | os.PathLike[str], engine_bytes: bytes, metadata: EngineMetadata) -> Path:
    """Write the engine and then its sidecar, each atomically (a reader never sees a half-written pair
    with a valid sidecar: the sidecar is written last and names the ONNX hash it was built from)."""
    path = Path(engine_path)
    sidecar_path(path).unlink(missing_ok=True)
    atomic_write_bytes(path, engine_bytes)
    atomic_write_json(sidecar_path(path), metadata.to_dict())
    return path


def read_metadata(engine_path: str | os.PathLike[str]) -> EngineMetadata:
    """Read an engine's sidecar; clear errors when the engine or sidecar is missing or unreadable."""
    path = Path(engine_path)
    if not path.is_file():
        raise MissingArtifactError(f"no TensorRT engine at {path}; run notebook 04_build_engine first.")
    side = sidecar_path(path)
    if not side.is_file():
        raise EngineMismatchError(
            f"engine {path.name} has no metadata sidecar {side.name}, so nothing says which TensorRT, GPU and "
            "ONNX it belongs to; rebuild it with 04_build_engine.")
    try:
        return EngineMetadata.from_dict(read_json(side))
    except (ValueError, TypeError) as exc:
        raise EngineMismatchError(f"engine metadata {side} is unreadable ({exc}); rebuild the engine with 04_build_engine.") from None


def mismatches(meta: EngineMetadata, running: EngineTarget, onnx_path: str | os.PathLike[str] | None,
               onnx_sha256: str | None = None) -> list[str]:
    """Every reason the engine described by ``meta`` must not be used on ``running`` (empty list: it fits).

    ``onnx_sha256`` is ``onnx_path``'s digest when the caller has it already (it is computed otherwise)."""
    problems = []
    if meta.format != FORMAT:
        problems.append(f"metadata format {meta.format}, this code reads format {FORMAT}")
    if meta.flavour != running.flavour:
        problems.append(f"built with {meta.flavour}, running {running.flavour} (an engine loads only in the flavour "
                        "that built it: rebuild it, or install the other flavour)")
    elif meta.tensorrt_version != running.tensorrt_version:
        problems.append(f"built with {_label(meta.flavour)} {meta.tensorrt_version}, running {_label(running.flavour)} "
                        f"{running.tensorrt_version} (serialized engines only load in the release that built them)")
    targets = compat.compute_capabilities(running.compute_capability)
    if len(targets) > 1:  # ``running`` describes a TensorRT-RTX build: the same targets fit
        fits = compat.compute_capabilities(meta.compute_capability) == targets
    else:
        fits = compat.runs_on(meta.compute_capability, running.compute_capability)
    if not fits:
        problems.append(f"built for compute capability {meta.compute_capability}, this GPU has "
                        f"{running.compute_capability}")
    elif meta.flavour == "tensorrt" and meta.gpu_name != running.gpu_name:
        problems.append(f"built on {meta.gpu_name!r}, running on {running.gpu_name!r} (kernels were timed on "
                        "the other GPU)")
    if onnx_path is not None:
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            problems.append(f"its source ONNX {onnx_path} is gone (re-run 02_onnx_export)")
        else:
            digest = onnx_sha256 or sha256_file(onnx_path)
            if digest != meta.onnx_sha256:
                problems.append(f"its source ONNX {onnx_path.name} changed since the build "
                                f"(sha256 {meta.onnx_sha256[:12]}... then, {digest[:12]}... now)")
    return problems


def _label(flavour: str) -> str:
    return "TensorRT-RTX" if flavour == "tensorrt-rtx" else "TensorRT"


def check_engine(engine_path: str | os.PathLike[str], onnx_path: str | os.PathLike[str] | None = None, *,
                 trt: Any = None, gpu: int = 0, target: EngineTarget | None = None) -> EngineMetadata:
    """Return the engine's metadata if it fits where it is about to run (and was built from ``onnx_path``); else
    stop with :class:`EngineMismatchError` listing every reason.

    "Where it runs" is the TensorRT module ``trt`` (default: :func:`~helpers.trt.compat.import_tensorrt`) on CUDA
    device ``gpu``, or ``target`` when given.
    """
    if target is None:
        target = running_target(trt if trt is not None else compat.import_tensorrt(), gpu)
    meta = read_metadata(engine_path)
    problems = mismatches(meta, target, onnx_path)
    if problems:
        raise EngineMismatchError(
            f"TensorRT engine {Path(engine_path).name} does not fit here: " + "; ".join(problems) +
            ". Rebuild it with 04_build_engine.")
    return meta


@dataclass(frozen=True)
class EngineValidity:
    """TensorRT-RTX's own verdict on a serialized engine for this machine (read from its header only)."""

    validity: str  # VALID, SUBOPTIMAL or INVALID
    diagnostics: tuple[str, ...]  # EngineInvalidityDiagnostics flags set, e.g. ("UNSUPPORTED_CC",)
    messages: tuple[str, ...]  # what TensorRT logged meanwhile (warnings and errors)


def engine_validity(engine_path: str | os.PathLike[str], trt: Any) -> EngineValidity:
    """Ask TensorRT-RTX's ``Runtime.get_engine_validity`` whether the engine at ``engine_path`` can run here.

    It reads the engine header only and needs no GPU to answer (without one it answers INVALID, and says
    why in its log). Full TensorRT has no such call: :class:`TensorRTUnavailableError` there.
    """
    features = compat.features_of(trt)
    if not hasattr(trt.Runtime, "get_engine_validity"):
        raise features.unavailable("Runtime.get_engine_validity", "check_engine (the metadata sidecar) is the check there.")
    path = Path(engine_path)
    if not path.is_file():
        raise MissingArtifactError(f"no TensorRT engine at {path}; run notebook 04_build_engine first.")
    logger = compat.capturing_logger(trt, "WARNING", echo=False)
    runtime = trt.Runtime(logger)
    validity, bits = runtime.get_engine_validity(path.read_bytes())
    flags = tuple(name for name, value in trt.EngineInvalidityDiagnostics.__members__.items() if int(bits) & int(value))
    return EngineValidity(validity.name, flags, tuple(m for _, m in logger.messages))


def timing_cache_path(folder: str | os.PathLike[str], tensorrt_version: str, compute_capability: str) -> Path:
    """Where the timing cache for one TensorRT release and one GPU architecture lives."""
    cc = compute_capability.replace(".", "")
    return Path(folder) / f"timing-trt{tensorrt_version}-sm{cc}.cache"
