"""Every difference between TensorRT 10.x and 11.x, found by feature detection, in one place.

The rest of :mod:`helpers.trt` never compares version numbers; it asks this module what the installed
``tensorrt`` offers:

* ``BuilderFlag.FP16`` exists in 10.x (deprecated from 10.12) and is gone in 11.x, where every network is
  strongly typed: FP16 then comes from the graph itself (02's ``model.fp16.onnx``), not from a flag.
* ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH`` is ignored in 10.x and removed in 11.x, so networks are
  created with ``builder.create_network()`` and no flags in both.
* Using TensorRT objects as context managers is deprecated in 11.x: objects are released by dropping the
  last reference, never with ``with``.

A feature that is missing raises :class:`~helpers.errors.TensorRTUnavailableError` with one uniform
sentence: ``"<feature> is not available in TensorRT <version>; <what to do instead>"``.

The names helpers calls on TensorRT objects are listed once, below, per class. The test suite checks the
runtime-side lists against NVIDIA's real TensorRT 11 lean runtime module (``tensorrt_lean_bindings``) and
scans helpers' source so that no call escapes the lists.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import BackendError, ConfigError, TensorRTUnavailableError

#: How a reader gets TensorRT (03_trt_setup prints the exact command for their driver).
INSTALL_HINT = (
    "install it with `pip install tensorrt-cu12` or `pip install tensorrt-cu13` (matching the CUDA version "
    "your NVIDIA driver supports; notebook 03_trt_setup tells you which), or use environment/Dockerfile"
)

# ---------------------------------------------------------------------------------------------------- names
#: Runtime-side names helpers uses, per TensorRT class ("module" = attributes of the ``tensorrt`` module).
#: All of them exist in the lean runtime, so CI checks them against the real TensorRT 11 classes.
RUNTIME_API: dict[str, tuple[str, ...]] = {
    "module": ("__version__", "ILogger", "Runtime", "DataType", "TensorIOMode", "nptype", "MemoryPoolType",
               "BuilderFlag"),
    "ILogger": ("__init__",),
    "Runtime": ("deserialize_cuda_engine",),
    "ICudaEngine": ("num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_dtype",
                    "get_tensor_shape", "num_optimization_profiles", "get_tensor_profile_shape",
                    "create_execution_context", "create_runtime_config"),
    "IExecutionContext": ("set_optimization_profile_async", "set_input_shape", "infer_shapes",
                          "set_tensor_address", "execute_async_v3", "get_tensor_shape"),
    "DataType": ("INT32",),
    "TensorIOMode": ("INPUT",),
    # Builder-side classes that the lean runtime module exposes too (so CI checks them there as well).
    "MemoryPoolType": ("WORKSPACE",),
    "IOptimizationProfile": ("set_shape",),
    "ITimingCache": ("serialize",),
}

#: Builder-side names: not part of the lean runtime, so they are checked against NVIDIA's documentation.
BUILDER_API: dict[str, tuple[str, ...]] = {
    "module": ("Builder", "OnnxParser"),
    "Builder": ("create_network", "create_builder_config", "create_optimization_profile",
                "build_serialized_network"),
    "IBuilderConfig": ("set_memory_pool_limit", "set_flag", "add_optimization_profile", "create_timing_cache",
                       "set_timing_cache", "get_timing_cache"),
    "INetworkDefinition": ("num_inputs", "get_input", "num_outputs", "get_output"),
    "ITensor": ("name", "dtype", "shape"),
    "OnnxParser": ("parse_from_file", "num_errors", "get_error"),
    "ParserError": ("code", "desc", "node", "node_name", "node_operator"),
}

#: Names present in some releases only; helpers reaches them through feature detection alone.
OPTIONAL_API: dict[str, tuple[str, ...]] = {
    "BuilderFlag": ("FP16",),  # 10.x only (removed in 11.x)
    "module": ("CudaGraphStrategy", "DynamicShapesKernelSpecializationStrategy"),  # TensorRT-RTX only (trt/rtx.py)
}

#: The variable names that hold TensorRT objects in helpers' source, and the class each one holds.
#: (``self._engine`` counts as ``engine``.) The source scan in the tests relies on this convention.
OBJECT_NAMES: dict[str, str] = {
    "trt": "module",
    "runtime": "Runtime",
    "engine": "ICudaEngine",
    "context": "IExecutionContext",
    "builder": "Builder",
    "builder_config": "IBuilderConfig",
    "network": "INetworkDefinition",
    "network_tensor": "ITensor",
    "parser": "OnnxParser",
    "parser_error": "ParserError",
    "trt_profile": "IOptimizationProfile",
    "timing_cache": "ITimingCache",
}


def api_names() -> dict[str, tuple[str, ...]]:
    """Every TensorRT name helpers may use (runtime, builder and optional), per class."""
    merged: dict[str, tuple[str, ...]] = {}
    for table in (RUNTIME_API, BUILDER_API, OPTIONAL_API):
        for cls, names in table.items():
            merged[cls] = tuple(dict.fromkeys(merged.get(cls, ()) + names))
    return merged


# ---------------------------------------------------------------------------------------------- the module
def import_tensorrt() -> ModuleType:
    """Import the ``tensorrt`` module or stop with install instructions."""
    try:
        return importlib.import_module("tensorrt")
    except ImportError as exc:
        raise TensorRTUnavailableError(f"TensorRT is not installed in this Python ({exc}); {INSTALL_HINT}.") from None


def tensorrt_available() -> bool:
    """True when ``import tensorrt`` works here."""
    try:
        import_tensorrt()
    except TensorRTUnavailableError:
        return False
    return True


@dataclass(frozen=True)
class TrtFeatures:
    """What an installed TensorRT module offers, by detection (or stated, to show another version's commands)."""

    version: str
    fp16_builder_flag: bool
    has_builder: bool = True

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def unavailable(self, feature: str, instead: str) -> TensorRTUnavailableError:
        """The uniform error for a missing feature."""
        return TensorRTUnavailableError(f"{feature} is not available in TensorRT {self.version}; {instead}")


def features_of(trt: Any) -> TrtFeatures:
    """Detect what the given ``tensorrt`` module (or a lean runtime module) offers."""
    flags = getattr(trt, "BuilderFlag", None)
    return TrtFeatures(
        version=str(getattr(trt, "__version__", "unknown")),
        fp16_builder_flag=flags is not None and hasattr(flags, "FP16"),
        has_builder=hasattr(trt, "Builder") and hasattr(trt, "OnnxParser"),
    )


def fp16_builder_flag(trt: Any) -> Any:
    """``trt.BuilderFlag.FP16`` where the module has it (10.x)."""
    if not features_of(trt).fp16_builder_flag:
        raise features_of(trt).unavailable(
            "BuilderFlag.FP16", "TensorRT 11 builds every network strongly typed: build 02's FP16 ONNX "
            "(model.fp16.onnx) instead, which is what precision='fp16' does there.")
    return trt.BuilderFlag.FP16


def require_builder(trt: Any) -> None:
    """Stop when the module cannot build engines (a lean or dispatch runtime only deserializes them)."""
    features = features_of(trt)
    if not features.has_builder:
        raise features.unavailable(
            "The engine builder (Builder, OnnxParser)", f"this is a runtime-only module; {INSTALL_HINT}.")


# ------------------------------------------------------------------------------------------------ precision
PRECISIONS: tuple[str, ...] = ("fp32", "fp16")


@dataclass(frozen=True)
class PrecisionPlan:
    """How one precision is obtained with one TensorRT release."""

    precision: str
    onnx_variant: str  # "fp32": 02's model.onnx; "fp16": 02's model.fp16.onnx
    use_fp16_flag: bool  # set BuilderFlag.FP16 on the builder config (10.x weak typing)
    trtexec_args: tuple[str, ...]
    polygraphy_args: tuple[str, ...]
    explanation: str


def precision_plan(features: TrtFeatures, precision: str) -> PrecisionPlan:
    """Which ONNX file and which flags give ``precision`` with the TensorRT described by ``features``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if precision == "fp32":
        return PrecisionPlan("fp32", "fp32", False, (), (),
                             "FP32 graph, no precision flags: every layer runs in FP32 (TF32 math where allowed).")
    if features.fp16_builder_flag:
        return PrecisionPlan(
            "fp16", "fp32", True, ("--fp16",), ("--fp16",),
            f"TensorRT {features.version} still has BuilderFlag.FP16: the FP32 graph is built weakly typed "
            "and TensorRT may pick FP16 kernels layer by layer.")
    return PrecisionPlan(
        "fp16", "fp16", False, (), (),
        f"TensorRT {features.version} has no FP16 builder flag (networks are always strongly typed): "
        "the FP16 graph from 02 is built as it is, each tensor in the type the graph gives it.")


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
