"""The TensorRT names helpers and notebooks 03-05 use, per TensorRT class, and how to read a real signature.

tests/test_trt_api_names.py checks the runtime-side lists against NVIDIA's real TensorRT 11 lean runtime
(``tensorrt_lean_bindings``) and the builder-side lists against the real TensorRT-RTX builder
(``tensorrt_rtx_bindings``), and scans the source so that no call escapes the lists and no list holds a name
nothing uses. tests/test_trt_doubles.py holds the doubles to the same real signatures.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

#: Runtime-side names, per TensorRT class ("module" = attributes of the ``tensorrt`` module). All of them exist
#: in the lean runtime, so CI checks them against the real TensorRT 11 classes.
RUNTIME_API: dict[str, tuple[str, ...]] = {
    "module": ("__name__", "__version__", "ILogger", "Logger", "Runtime", "TensorIOMode", "nptype",
               "MemoryPoolType", "BuilderFlag"),
    "Runtime": ("deserialize_cuda_engine",),
    "ICudaEngine": ("num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_dtype",
                    "get_tensor_shape", "num_optimization_profiles", "get_tensor_profile_shape",
                    "create_execution_context", "create_runtime_config"),
    "IExecutionContext": ("active_optimization_profile", "set_optimization_profile_async", "set_input_shape",
                          "set_tensor_address", "execute_async_v3", "get_tensor_shape"),
    "TensorIOMode": ("INPUT",),
    # Builder-side classes that the lean runtime module exposes too (so CI checks them there as well).
    "MemoryPoolType": ("WORKSPACE",),
    "IOptimizationProfile": ("set_shape",),
    "ITimingCache": ("serialize",),
}

#: Builder-side names: not in the lean runtime; CI checks them against the real TensorRT-RTX builder.
BUILDER_API: dict[str, tuple[str, ...]] = {
    "module": ("Builder", "OnnxParser", "NetworkDefinitionCreationFlag"),
    "Builder": ("create_network", "create_builder_config", "create_optimization_profile",
                "build_serialized_network"),
    "IBuilderConfig": ("set_memory_pool_limit", "add_optimization_profile", "create_timing_cache",
                       "set_timing_cache", "get_timing_cache"),
    "INetworkDefinition": ("num_inputs", "get_input", "num_outputs", "get_output"),
    "ITensor": ("name", "dtype", "shape"),
    "OnnxParser": ("parse_from_file", "num_errors", "get_error"),
    "ParserError": ("code", "desc", "node", "node_name", "node_operator"),
    "NetworkDefinitionCreationFlag": ("STRONGLY_TYPED",),
}

#: Names of TensorRT-RTX only: its check of a serialized engine, and its runtime settings (helpers/trt/rtx.py).
RTX_API: dict[str, tuple[str, ...]] = {
    "module": ("EngineInvalidityDiagnostics", "ComputeCapability", "CudaGraphStrategy",
               "DynamicShapesKernelSpecializationStrategy"),
    "Runtime": ("get_engine_validity",),
    "EngineInvalidityDiagnostics": ("__members__",),
    "IRuntimeConfig": ("dynamic_shapes_kernel_specialization_strategy", "create_runtime_cache",
                       "set_runtime_cache"),
    "IRuntimeCache": ("serialize", "deserialize"),
}

#: Names present in some releases only; reached through feature detection alone (``hasattr``), never called.
OPTIONAL_API: dict[str, tuple[str, ...]] = {
    "BuilderFlag": ("FP16",),  # 10.x only (removed in 11.x): 03 shows whether it exists; it is never set
}

#: The variable names that hold TensorRT objects in helpers' TensorRT code and in notebooks 03-05, and the class
#: each one holds (``self._engine`` counts as ``engine``). The source scan relies on this convention.
OBJECT_NAMES: dict[str, str] = {
    "trt": "module",
    "runtime": "Runtime",
    "engine": "ICudaEngine",
    "context": "IExecutionContext",
    "builder": "Builder",
    "config": "IBuilderConfig",
    "network": "INetworkDefinition",
    "network_tensor": "ITensor",
    "parser": "OnnxParser",
    "parser_error": "ParserError",
    "profile": "IOptimizationProfile",
    "timing_cache": "ITimingCache",
    "runtime_config": "IRuntimeConfig",
    "runtime_cache": "IRuntimeCache",
}


def api_names() -> dict[str, tuple[str, ...]]:
    """Every TensorRT name helpers and the notebooks may use (runtime, builder, TensorRT-RTX, optional), per class."""
    merged: dict[str, tuple[str, ...]] = {}
    for table in (RUNTIME_API, BUILDER_API, RTX_API, OPTIONAL_API):
        for cls, names in table.items():
            merged[cls] = tuple(dict.fromkeys(merged.get(cls, ()) + names))
    return merged


def _split_params(text: str) -> list[str]:
    depth, part, parts = 0, "", []
    for ch in text:
        depth += ch in "[(<{"
        depth -= ch in "])>}"
        if ch == "," and depth == 0:
            parts.append(part.strip())
            part = ""
        else:
            part += ch
    return parts + ([part.strip()] if part.strip() else [])


def real_signatures(obj: Any, name: str) -> list[list[tuple[str, bool]]]:
    """Parameter lists ``[(name, has default)]`` of a real TensorRT callable, one per overload, ``self`` removed:
    from ``inspect`` where it can, else from the signature lines of its docstring (pybind11 builtins)."""
    try:
        sig = inspect.signature(obj)
        return [[(p.name, p.default is not inspect.Parameter.empty) for p in sig.parameters.values()
                 if p.name != "self"]]
    except (TypeError, ValueError):
        pass
    out = []
    for line in (obj.__doc__ or "").splitlines():
        m = re.match(rf"^\s*(?:\d+\.\s+)?{re.escape(name)}\((.*)\)\s*->", line)
        if m:
            params = [(p.split(":")[0].strip(), "=" in p) for p in _split_params(m.group(1))]
            out.append([p for p in params if p[0] != "self"])
    return out
