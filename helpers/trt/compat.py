"""Every difference between TensorRT flavours and releases, found by feature detection, in one place.

Two flavours of NVIDIA's inference library build and run this project's engines:

* ``tensorrt`` - TensorRT 10.x / 11.x (module ``tensorrt``): data-centre GPUs (A100, H100, H200, L4, L40S...)
  and every architecture its support matrix lists. Engines are tuned for the GPU they were built on.
* ``tensorrt-rtx`` - TensorRT for RTX (module ``tensorrt_rtx_bindings``): GeForce RTX and RTX PRO GPUs. Its
  builder compiles ahead of time **without a GPU**, and the engine is portable across compute capability
  8.0, 8.6, 8.9 and 12.x (kernels are finished just in time on the device); its runtime refuses other GPUs,
  e.g. an H200 (compute capability 9.0).

:func:`import_tensorrt` picks one (``tensorrt`` first, else ``tensorrt_rtx_bindings``, or the one asked for)
and :func:`flavour_of` tells which one a module is. Both flavours share the TensorRT 11 Python API for
everything helpers calls. What differs, by release:

* Strong typing: the network is created with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` wherever the
  enum has it (10.x needs it; 11.x and TensorRT-RTX accept and ignore it, since every network is strongly
  typed there). Every tensor keeps the type the ONNX graph gives it, so FP16 comes from 02's FP16 graph
  (``model.fp16.onnx``, with its FP16 safeguards: the mask fill made FP16-safe, LayerNorm and Softmax in
  FP32) on every release: the weakly typed ``BuilderFlag.FP16`` (deprecated in 10.12, removed in 11.x) is
  never used.
* ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH`` is ignored in 10.x and removed in 11.x: never passed.
* Using TensorRT objects as context managers is deprecated in 11.x: objects are released by dropping the
  last reference, never with ``with``.

A feature that is missing raises :class:`~helpers.errors.TensorRTUnavailableError` with one uniform
sentence: ``"<feature> is not available in TensorRT <version>; <what to do instead>"``.

Every TensorRT name that helpers and notebooks 03-05 use is checked by the test suite against NVIDIA's real
classes (tests/trt_api.py lists them: the TensorRT 11 lean runtime for the runtime side, TensorRT-RTX for the
builder side).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import BackendError, ConfigError, TensorRTUnavailableError

# ------------------------------------------------------------------------------------------------ flavours
#: The two flavours, in the order :func:`import_tensorrt` tries them.
FLAVOURS: tuple[str, ...] = ("tensorrt", "tensorrt-rtx")
#: The Python module of each flavour.
FLAVOUR_MODULES: dict[str, str] = {"tensorrt": "tensorrt", "tensorrt-rtx": "tensorrt_rtx_bindings"}
#: The TensorRT-RTX release this project was built and tested with (its wheels are real ones on PyPI).
RTX_RELEASE = "1.7.1.116"
#: Which flavour fits which GPUs, in a few words.
FLAVOUR_FOR: dict[str, str] = {"tensorrt": "data-centre GPUs (TensorRT)",
                               "tensorrt-rtx": "GeForce RTX / RTX PRO GPUs (TensorRT-RTX)"}
#: The compute capabilities a TensorRT-RTX engine built with the default targets runs on (NVIDIA's
#: TensorRT-RTX documentation, "CPU-Only AOT and TensorRT-RTX Engines"; the 1.7 runtime's own refusal
#: message lists "8.0 8.6 8.9 12.0 12.1 >12.0"). "12.0+" means 12.0 and later.
RTX_PORTABLE_TARGETS = "8.0 8.6 8.9 12.0+"


def check_flavour(flavour: str) -> str:
    """``flavour`` if it is one of :data:`FLAVOURS`, else a :class:`ConfigError` naming them."""
    if flavour not in FLAVOURS:
        raise ConfigError(f"TensorRT flavour must be one of {FLAVOURS}, got {flavour!r}.")
    return flavour


def install_command(flavour: str, cuda_major: int = 13) -> str:
    """The exact pip command that installs ``flavour`` for a driver supporting CUDA ``cuda_major`` (12 or 13)."""
    check_flavour(flavour)
    if cuda_major not in (12, 13):
        raise ConfigError(f"TensorRT wheels exist for CUDA 12 and 13 drivers, got CUDA {cuda_major}: update the driver.")
    if flavour == "tensorrt":
        return f"pip install tensorrt-cu{cuda_major}"
    return (f"pip install tensorrt-rtx-cu{cuda_major}-libs=={RTX_RELEASE} "
            f"tensorrt-rtx-cu{cuda_major}-bindings=={RTX_RELEASE}")


#: How a reader gets TensorRT (03_trt_setup prints the exact command for their driver).
INSTALL_HINT = (
    f"install full TensorRT with `{install_command('tensorrt', 13)}` (or `{install_command('tensorrt', 12)}` for a "
    f"CUDA 12 driver; 03_trt_setup tells you which), or use environment/Dockerfile; on a GeForce RTX / RTX PRO GPU, "
    f"TensorRT-RTX works too: `{install_command('tensorrt-rtx', 13)}`"
)


def import_tensorrt(flavour: str | None = None) -> ModuleType:
    """The TensorRT module of ``flavour``; ``None``: ``tensorrt`` if installed, else ``tensorrt_rtx_bindings``.

    Stops with :class:`TensorRTUnavailableError` giving the exact install command of each flavour.
    """
    wanted = FLAVOURS if flavour is None else (check_flavour(flavour),)
    failures = []
    for name in wanted:
        try:
            return importlib.import_module(FLAVOUR_MODULES[name])
        except ImportError as exc:
            failures.append(f"{FLAVOUR_MODULES[name]}: {exc}")
    commands = "; ".join(f"for {FLAVOUR_FOR[name]}: `{install_command(name, 13)}` (or `{install_command(name, 12)}` for "
                         "a CUDA 12 driver)" for name in wanted)
    what = "TensorRT" if flavour is None else f"TensorRT flavour {flavour!r}"
    raise TensorRTUnavailableError(f"{what} is not installed in this Python ({'; '.join(failures)}). Install it: "
                                   f"{commands}.") from None


def flavour_of(trt: Any) -> str:
    """``"tensorrt-rtx"`` for NVIDIA's TensorRT-RTX modules, ``"tensorrt"`` for TensorRT's (full, lean or
    dispatch runtime), told by the module's name. An object under another name that offers TensorRT's
    ``Runtime`` or ``Builder`` (a stand-in in tests) is told by a feature only TensorRT-RTX has, its
    ``ComputeCapability`` targets; anything else is a :class:`ConfigError`."""
    name = str(getattr(trt, "__name__", ""))
    if name.startswith("tensorrt_rtx"):
        return "tensorrt-rtx"
    if name.startswith("tensorrt"):
        return "tensorrt"
    if hasattr(trt, "Runtime") or hasattr(trt, "Builder"):
        return "tensorrt-rtx" if hasattr(trt, "ComputeCapability") else "tensorrt"
    raise ConfigError(f"cannot tell which TensorRT flavour module {name or type(trt).__name__!r} is; pass the "
                      f"module that import_tensorrt() returns ({' or '.join(FLAVOUR_MODULES.values())}).")


# ------------------------------------------------------------------------------------------------ features
@dataclass(frozen=True)
class TrtFeatures:
    """What an installed TensorRT module offers, by detection.

    ``strongly_typed_flag``: whether networks are created with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``
    (10.x needs it; 11.x and TensorRT-RTX accept it). ``has_builder``: whether the module can build engines (a
    lean or dispatch runtime only deserializes them).
    """

    version: str
    has_builder: bool = True
    flavour: str = "tensorrt"
    strongly_typed_flag: bool = True

    def __post_init__(self) -> None:
        check_flavour(self.flavour)

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def label(self) -> str:
        """``TensorRT 10.13.0.35`` or ``TensorRT-RTX 1.7.1.116``."""
        return f"{'TensorRT-RTX' if self.flavour == 'tensorrt-rtx' else 'TensorRT'} {self.version}"

    def unavailable(self, feature: str, instead: str) -> TensorRTUnavailableError:
        """The uniform error for a missing feature."""
        return TensorRTUnavailableError(f"{feature} is not available in {self.label}; {instead}")


def features_of(trt: Any) -> TrtFeatures:
    """Detect what the given TensorRT module (full, lean runtime or TensorRT-RTX) offers."""
    return TrtFeatures(
        version=str(getattr(trt, "__version__", "unknown")),
        has_builder=hasattr(trt, "Builder") and hasattr(trt, "OnnxParser"),
        flavour=flavour_of(trt),
        strongly_typed_flag=(hasattr(trt, "NetworkDefinitionCreationFlag")
                             and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")),
    )


def require_builder(trt: Any) -> None:
    """Stop when the module cannot build engines (a lean or dispatch runtime only deserializes them)."""
    features = features_of(trt)
    if not features.has_builder:
        raise features.unavailable(
            "The engine builder (Builder, OnnxParser)", f"this is a runtime-only module; {INSTALL_HINT}.")


def network_flags(trt: Any) -> int:
    """The ``create_network`` flags: ``1 << STRONGLY_TYPED`` where the release has the flag, else 0 (a release
    without it builds every network strongly typed)."""
    if not features_of(trt).strongly_typed_flag:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


# ------------------------------------------------------------------------------------------------ precision
#: An engine's precision is its ONNX graph's: FP32 from 02's ``model.onnx``, FP16 from 02's ``model.fp16.onnx``.
PRECISIONS: tuple[str, ...] = ("fp32", "fp16")


# -------------------------------------------------------------------------------------------------- dtypes
def numpy_dtype(trt: Any, trt_dtype: Any) -> np.dtype:
    """The numpy dtype of a TensorRT ``DataType`` (via ``trt.nptype``), or a clear error for BF16/FP8/INT4."""
    try:
        return np.dtype(trt.nptype(trt_dtype))
    except TypeError:
        raise BackendError(
            f"TensorRT tensor type {trt_dtype} has no numpy equivalent, so host buffers cannot hold it; "
            "export the model with int32 inputs and float32/float16 outputs (02_onnx_export does)."
        ) from None


# -------------------------------------------------------------------------------------------------- logging
SEVERITY_ORDER: tuple[str, ...] = ("INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE")


def capturing_logger(trt: Any, min_severity: str = "WARNING", echo: bool = True) -> Any:
    """A ``trt.ILogger`` that keeps every message at ``min_severity`` or worse (and prints it if ``echo``).

    Build and deserialization failures are then reported with TensorRT's own messages in full instead of
    a bare ``None``. Messages are in ``logger.messages`` as ``(severity name, text)`` pairs.
    """
    if min_severity not in SEVERITY_ORDER:
        raise ConfigError(f"min_severity must be one of {SEVERITY_ORDER}, got {min_severity!r}.")
    limit = SEVERITY_ORDER.index(min_severity)

    class CapturingLogger(trt.ILogger):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[tuple[str, str]] = []

        def log(self, severity: Any, msg: str) -> None:
            name = getattr(severity, "name", str(severity)).split(".")[-1]
            rank = SEVERITY_ORDER.index(name) if name in SEVERITY_ORDER else 0
            if rank <= limit:
                self.messages.append((name, str(msg)))
                if echo:
                    print(f"[TensorRT {name}] {msg}")

        def errors(self) -> list[str]:
            return [m for s, m in self.messages if s in ("INTERNAL_ERROR", "ERROR")]

    return CapturingLogger()


def compute_capabilities(spec: str) -> tuple[str, ...]:
    """``"8.0 8.6 12.0+"`` -> ``("8.0", "8.6", "12.0+")`` (a single ``"9.0"`` is one target)."""
    parts = tuple(p for p in re.split(r"[\s,]+", spec.strip()) if p)
    if not parts or not all(re.fullmatch(r"\d+\.\d+\+?", p) for p in parts):
        raise ConfigError(f"compute capabilities must look like '9.0' or '8.6 8.9 12.0+', got {spec!r}.")
    return parts


def runs_on(targets: str, compute_capability: str) -> bool:
    """Whether an engine built for ``targets`` (e.g. ``"9.0"`` or :data:`RTX_PORTABLE_TARGETS`) runs on a GPU of
    ``compute_capability``."""
    have = tuple(int(x) for x in compute_capabilities(compute_capability)[0].rstrip("+").split("."))
    for target in compute_capabilities(targets):
        want = tuple(int(x) for x in target.rstrip("+").split("."))
        if have == want or (target.endswith("+") and have >= want):
            return True
    return False


def runtime_refusal(flavour: str, compute_capability: str) -> str | None:
    """Why the runtime of ``flavour`` cannot run engines on a GPU of ``compute_capability`` (one sentence), or None.

    Full TensorRT runs on every GPU its release supports. TensorRT-RTX's runtime runs only its portable targets
    (:data:`RTX_PORTABLE_TARGETS`) and refuses e.g. the data-centre Hopper GPUs (compute capability 9.0)."""
    if check_flavour(flavour) == "tensorrt-rtx" and not runs_on(RTX_PORTABLE_TARGETS, compute_capability):
        return (f"TensorRT-RTX's runtime does not run on compute capability {compute_capability} (it runs "
                f"{RTX_PORTABLE_TARGETS}); install full TensorRT ({install_command('tensorrt')}) to run engines on "
                "this GPU.")
    return None
