"""Every TensorRT name helpers uses exists in NVIDIA's real modules, and no removed TensorRT API is called.

NVIDIA's full TensorRT builder cannot be installed on CI machines, but two real modules can:

* the TensorRT 11 lean runtime (``tensorrt-lean-cu13-libs`` + ``-bindings``: ``tensorrt_lean_bindings``) with
  the real ``Runtime``, ``ICudaEngine``, ``IExecutionContext``, ``DataType``, ``TensorIOMode``, ``nptype``...;
* TensorRT-RTX (``tensorrt-rtx-cu13-libs`` + ``-bindings``: ``tensorrt_rtx_bindings``), whose builder side
  (``Builder``, ``IBuilderConfig``, ``INetworkDefinition``, ``OnnxParser``, ``ParserError``...) has the
  TensorRT 11 API; tests/test_trt_builder.py builds real engines with it.

These tests

1. check every runtime-side name listed in tests/trt_api.py on the lean runtime's classes, every
   builder-side name on TensorRT-RTX's, and that each call in helpers' source and in notebooks 03-05 passes
   arguments the real method's signature accepts;
2. scan the source of helpers' TensorRT code and notebooks 03-05 so that no call on a TensorRT object
   escapes the lists, and check that the lists hold nothing the source does not use;
3. scan ALL of helpers, the GPU scripts and every notebook for any attribute named in TensorRT's removed-API
   lists (8.x -> 10.x and 10.x -> 11.x), whatever the variable is called.

Nothing here constructs a TensorRT object that needs a GPU (the lean ``Runtime`` crashes without CUDA).
"""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import numpy as np
import pytest

from helpers.errors import BackendError
from helpers.trt import compat

from trt_api import BUILDER_API, OBJECT_NAMES, RTX_API, RUNTIME_API, api_names, real_signatures

lean = pytest.importorskip(
    "tensorrt_lean_bindings",
    reason="NVIDIA's TensorRT lean runtime is not installed: pip install -r environment/requirements-trt-check.txt",
)
rtx = compat.import_tensorrt("tensorrt-rtx")  # the test environment installs it; fails with the install command if not

ROOT = Path(__file__).resolve().parents[1]
SCANNED = sorted((ROOT / "helpers" / "trt").glob("*.py")) + [ROOT / "helpers" / "backends" / "tensorrt.py"]
NOTEBOOKS = [ROOT / "notebooks" / f for f in ("03_trt_setup.ipynb", "04_build_engine.ipynb", "05_infer.ipynb")]
EVERYWHERE = (sorted((ROOT / "helpers").rglob("*.py")) + sorted((ROOT / "environment").rglob("*.py"))
              + sorted((ROOT / "notebooks").glob("*.ipynb")))
LEAN_MAJOR = int(lean.__version__.split(".")[0])
API = api_names()
BUILDER_SIDE = {cls: BUILDER_API.get(cls, ()) + RTX_API.get(cls, ()) for cls in {*BUILDER_API, *RTX_API}}

#: Python APIs NVIDIA removed (TensorRT migration guides: "Removed Python APIs" 8.x -> 10.x and 10.x -> 11.x),
#: name -> what replaced it. Only names that no class of the real 11.x modules still has (checked below), so
#: that any attribute of that name, on any variable, is a call of a removed API.
REMOVED_NAMES: dict[str, str] = {
    # 8.x -> 10.0: bindings became named I/O tensors, implicit batch and build_engine went
    "num_bindings": "num_io_tensors", "get_binding_name": "get_tensor_name(i)",
    "get_binding_index": "tensor names", "binding_is_input": "get_tensor_mode(name) == TensorIOMode.INPUT",
    "get_binding_shape": "get_tensor_shape(name)", "set_binding_shape": "set_input_shape(name, shape)",
    "get_binding_dtype": "get_tensor_dtype(name)", "get_binding_format": "get_tensor_format(name)",
    "get_binding_format_desc": "get_tensor_format_desc(name)",
    "get_binding_bytes_per_component": "get_tensor_bytes_per_component(name)",
    "get_binding_components_per_element": "get_tensor_components_per_element(name)",
    "get_binding_vectorized_dim": "get_tensor_vectorized_dim(name)", "get_location": "get_tensor_location(name)",
    "get_profile_shape": "get_tensor_profile_shape(name, profile)",
    "get_profile_shape_input": "get_tensor_profile_values(profile, name)",
    "is_execution_binding": "is_shape_inference_io(name)", "is_shape_binding": "is_shape_inference_io(name)",
    "has_implicit_batch_dimension": "nothing: networks are always explicit batch",
    "all_shape_inputs_specified": "infer_shapes()",
    "execute_async_v2": "set_tensor_address for every I/O tensor, then execute_async_v3(stream)",
    "execute": "execute_v2 / execute_async_v3", "get_strides": "get_tensor_strides(name)",
    "build_engine": "build_serialized_network + Runtime.deserialize_cuda_engine",
    "build_cuda_engine": "build_serialized_network + Runtime.deserialize_cuda_engine",
    "max_workspace_size": "set_memory_pool_limit(MemoryPoolType.WORKSPACE, bytes)",
    "max_batch_size": "optimization profiles", "min_timing_iterations": "avg_timing_iterations",
    "add_fully_connected": "add_matrix_multiply", "add_convolution": "add_convolution_nd",
    "add_deconvolution": "add_deconvolution_nd", "add_pooling": "add_pooling_nd", "add_padding": "add_padding_nd",
    "add_rnn_v2": "ILoop", "has_explicit_precision": "nothing: Q/DQ nodes",
    # 10.x -> 11.x: weak typing and implicit quantization went
    "platform_has_fast_fp16": "strongly typed networks", "platform_has_fast_int8": "explicit quantization (Q/DQ)",
    "int8_calibrator": "explicit quantization (Q/DQ)", "set_calibration_profile": "explicit quantization (Q/DQ)",
    "get_calibration_profile": "explicit quantization (Q/DQ)", "set_quantization_flag": "explicit quantization (Q/DQ)",
    "get_quantization_flag": "explicit quantization (Q/DQ)", "clear_quantization_flag": "explicit quantization (Q/DQ)",
    "quantization_flags": "explicit quantization (Q/DQ)", "device_memory_size": "device_memory_size_v2",
    "get_device_memory_size_for_profile": "get_device_memory_size_for_profile_v2",
}
#: Enum members NVIDIA removed: ``<Enum>.<member>`` wherever it is written.
REMOVED_MEMBERS: dict[str, dict[str, str]] = {
    "BuilderFlag": {m: "a strongly typed graph of that precision" for m in
                    ("FP16", "INT8", "FP8", "BF16", "INT4", "FP4", "OBEY_PRECISION_CONSTRAINTS",
                     "PREFER_PRECISION_CONSTRAINTS", "STRICT_TYPES")},
    "NetworkDefinitionCreationFlag": {"EXPLICIT_BATCH": "no flag (always explicit batch)",
                                      "EXPLICIT_PRECISION": "no flag"},
}


# ------------------------------------------------------------------------------------------------ scanner
def _role(node: ast.AST) -> str | None:
    """Which TensorRT class the expression ``node`` holds, by OBJECT_NAMES (``trt.X`` -> class X)."""
    if isinstance(node, ast.Name):
        return OBJECT_NAMES.get(node.id.lstrip("_"))
    if isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id == "trt" and node.attr in API:
            return node.attr
        return OBJECT_NAMES.get(node.attr.lstrip("_"))
    return None


def scan(source: str, where: str) -> tuple[list[str], list[tuple[str, str, ast.Call | None]]]:
    """(violations, uses): every ``<trt object>.<name>`` and ``getattr/hasattr(<trt object>, "name")``."""
    violations, uses = [], []
    for node in ast.walk(ast.parse(source)):
        target = name = None
        if isinstance(node, ast.Attribute):
            target, name = node.value, node.attr
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            target, name = node.args[0], node.args[1].value
        role = _role(target) if target is not None else None
        if role is None:
            continue
        uses.append((role, name, None))
        if name not in API.get(role, ()):
            violations.append(f"{where}:{node.lineno}: {role}.{name} is not listed in tests/trt_api.py")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            role = _role(node.func.value)
            if role is not None:
                uses.append((role, node.func.attr, node))
    return violations, uses


def removed_api_uses(source: str, where: str, other_meaning: frozenset[str] = frozenset()) -> list[str]:
    """Every use of a removed TensorRT API, whatever the object is called: ``x.<removed name>``,
    ``getattr(x, "<removed name>")``, ``<Enum>.<removed member>``, and assignments to the read-only
    ``active_optimization_profile``. ``hasattr`` is feature detection, not use, and is allowed. Names in
    ``other_meaning`` belong to another library in this source and are not flagged."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        name = None
        if isinstance(node, ast.Attribute):
            name = node.attr
            owner = node.value.attr if isinstance(node.value, ast.Attribute) else getattr(node.value, "id", None)
            if name in REMOVED_MEMBERS.get(owner, {}):
                found.append((node.lineno, f"{where}:{node.lineno}: {owner}.{name} was removed from TensorRT; use "
                                           f"{REMOVED_MEMBERS[owner][name]}"))
                continue
            if name == "active_optimization_profile" and isinstance(node.ctx, ast.Store):
                found.append((node.lineno, f"{where}:{node.lineno}: active_optimization_profile is read-only since "
                                           "TensorRT 10; use set_optimization_profile_async(index, stream)"))
                continue
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)):
            name = node.args[1].value
        if name in REMOVED_NAMES and name not in other_meaning:
            found.append((node.lineno, f"{where}:{node.lineno}: {name} was removed from TensorRT; use {REMOVED_NAMES[name]}"))
    return [text for _, text in sorted(found, key=lambda item: item[0])]


def _notebook_code(nb: Path) -> str:
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return "\n".join(l for l in code.splitlines() if not l.lstrip().startswith(("%", "!")))


def _read(path: Path) -> tuple[str, str]:
    text = _notebook_code(path) if path.suffix == ".ipynb" else path.read_text(encoding="utf-8")
    return text, path.relative_to(ROOT).as_posix()


def _sources() -> list[tuple[str, str]]:
    return [_read(p) for p in SCANNED] + [_read(nb) for nb in NOTEBOOKS if nb.is_file()]


def _lean_target(role: str):
    return lean if role == "module" else getattr(lean, role)


def _real_target(role: str, name: str):
    """Where a listed name is checked: the lean runtime for runtime-side classes, TensorRT-RTX for the rest."""
    if role in RUNTIME_API and name in RUNTIME_API[role]:
        return _lean_target(role)
    return rtx if role == "module" else getattr(rtx, role)


# -------------------------------------------------------------------------------------------- signatures
def signatures(obj, name: str) -> list[list[tuple[str, bool]]]:
    """Parameter lists (name, has default) of a real TensorRT callable, one per overload, self removed."""
    return real_signatures(obj, name)


def call_fits(call: ast.Call, overloads: list[list[tuple[str, bool]]]) -> bool:
    """Whether the call's arguments fit one overload. ``trt.Class.method(obj, ...)`` passes self explicitly."""
    func = call.func
    unbound = (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute)
               and isinstance(func.value.value, ast.Name) and func.value.value.id == "trt")
    npos, kws = len(call.args) - int(unbound), {k.arg for k in call.keywords}
    for params in overloads:
        names = [n for n, _ in params]
        if npos > len(params) or not kws <= set(names[npos:]):
            continue
        if all(has_default or n in kws for n, has_default in params[npos:]):
            return True
    return False


# ------------------------------------------------------------------------------------------------- tests
def test_runtime_names_exist_on_the_real_tensorrt_classes():
    missing = [f"{cls}.{name}" for cls, names in RUNTIME_API.items() for name in names
               if not hasattr(_lean_target(cls), name)]
    assert missing == [], f"not in tensorrt_lean_bindings {lean.__version__}: {missing}"


def test_builder_names_exist_on_the_real_tensorrt_rtx_classes():
    missing = [f"{cls}.{name}" for cls, names in BUILDER_SIDE.items() for name in names
               if not hasattr(rtx if cls == "module" else getattr(rtx, cls, None), name)]
    assert missing == [], f"not in tensorrt_rtx_bindings {rtx.__version__}: {missing}"


def test_builder_side_names_are_not_in_the_lean_runtime():
    # The split between the two lists: the lean runtime cannot build, so it has none of these classes.
    classes = [c for c in BUILDER_API if c != "module"] + list(BUILDER_API["module"])
    present = [c for c in classes if hasattr(lean, c)]
    assert present == [], f"move these to RUNTIME_API, the lean runtime has them: {present}"


def test_optional_names_follow_the_release():
    # BuilderFlag.FP16 exists in 10.x and was removed in 11.x; TensorRT-RTX never had it. STRONGLY_TYPED is a
    # builder-side flag: TensorRT-RTX has it (and ignores it, being always strongly typed), the lean runtime not.
    assert hasattr(lean.BuilderFlag, "FP16") == (LEAN_MAJOR == 10) and not hasattr(rtx.BuilderFlag, "FP16")
    assert compat.features_of(rtx).strongly_typed_flag and compat.network_flags(rtx) == 1 << int(
        rtx.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert compat.features_of(lean).has_builder is False and compat.features_of(rtx).has_builder is True


def test_helpers_source_calls_only_listed_tensorrt_names():
    violations = []
    for source, where in _sources():
        violations += scan(source, where)[0]
    assert violations == []


def test_every_listed_name_is_used_by_the_source():
    used = {(role, name) for source, where in _sources() for role, name, _ in scan(source, where)[1]}
    stale = [f"{cls}.{n}" for cls, names in API.items() for n in names if (cls, n) not in used]
    assert stale == [], f"listed in helpers.trt.compat but never used: {stale}"


def test_calls_match_the_real_signatures():
    checked, wrong = {"lean": 0, "rtx": 0}, []
    for source, where in _sources():
        for role, name, call in scan(source, where)[1]:
            if call is None or role not in API or name not in API[role]:
                continue
            target = _real_target(role, name)
            if not hasattr(target, name):
                continue  # optional names (checked by feature detection) and classes one module lacks
            member = getattr(target, name)
            overloads = signatures(member.__init__ if inspect.isclass(member) else member,
                                   "__init__" if inspect.isclass(member) else name)
            if isinstance(member, property):
                wrong.append(f"{where}:{call.lineno}: {role}.{name} is a property, not a method")
            elif not overloads:
                wrong.append(f"{where}:{call.lineno}: no signature found for {role}.{name}")
            elif not call_fits(call, overloads):
                wrong.append(f"{where}:{call.lineno}: {role}.{name} called with {len(call.args)} positional "
                             f"{[k.arg for k in call.keywords]} keywords; real: {overloads}")
            checked["lean" if target is lean or getattr(target, "__module__", "").startswith("tensorrt_lean") else "rtx"] += 1
    assert wrong == []
    assert checked["lean"] >= 12 and checked["rtx"] >= 12, checked  # both sides really were checked


def test_the_role_scan_catches_unlisted_calls_on_tensorrt_objects():
    trt8 = (
        "shape = context.get_binding_shape(0)\n"
        "config.set_flag(trt.BuilderFlag.INT8)\n"
        "ok = hasattr(engine, 'num_bindings')\n"
    )
    violations, _ = scan(trt8, "trt8.py")
    assert len(violations) == 4  # get_binding_shape, set_flag, BuilderFlag.INT8, num_bindings
    assert any("IBuilderConfig.set_flag" in v for v in violations)


def test_the_removed_api_scan_catches_any_variable_name():
    trt8 = (
        "ctx.execute_async_v2(bindings, stream.handle)\n"
        "foo.set_binding_shape(0, (1, 200))\n"
        "n = self._e.num_bindings\n"
        "cfg.max_workspace_size = 1 << 30\n"
        "eng = b.build_engine(net, cfg)\n"
        "cfg.set_flag(tensorrt.BuilderFlag.FP16)\n"
        "flags = 1 << int(NetworkDefinitionCreationFlag.EXPLICIT_BATCH)\n"
        "c.active_optimization_profile = 0\n"
        "f = getattr(whatever, 'get_binding_index')\n"
    )
    found = removed_api_uses(trt8, "old.py")
    assert [f.split(":", 2)[1] for f in found] == [str(i) for i in range(1, 10)], found
    assert found[0] == ("old.py:1: execute_async_v2 was removed from TensorRT; use set_tensor_address for every I/O "
                        "tensor, then execute_async_v3(stream)")
    allowed = ("profile = c.active_optimization_profile\nok = hasattr(trt.BuilderFlag, 'FP16')\n"
               "context.execute_async_v3(stream)\nx = trt.DataType.INT8\n")
    assert removed_api_uses(allowed, "new.py") == []


def triton_config_fields() -> frozenset[str]:
    """Field names of Triton's model configuration (``max_batch_size`` is one): helpers/serving and 07 use them."""
    from tritonclient.grpc import model_config_pb2

    names, seen, todo = set(), set(), [model_config_pb2.ModelConfig.DESCRIPTOR]
    while todo:
        message = todo.pop()
        seen.add(message.full_name)
        names.update(message.fields_by_name)
        todo += [f.message_type for f in message.fields if f.message_type is not None and f.message_type.full_name not in seen]
    return frozenset(names)


def test_nothing_anywhere_uses_a_removed_tensorrt_api():
    found = []
    triton = {ROOT / "helpers" / "serving", ROOT / "notebooks" / "07_serve.ipynb"}
    for path in EVERYWHERE:
        source, where = _read(path)
        speaks_triton = path in triton or any(p in triton for p in path.parents)
        found += removed_api_uses(source, where, triton_config_fields() if speaks_triton else frozenset())
    assert found == []
    assert "max_batch_size" in triton_config_fields()  # why helpers/serving may say it
    assert len(EVERYWHERE) > 40  # helpers, GPU scripts and notebooks were all read


def test_the_removed_lists_hold_only_names_gone_from_the_real_11x_classes():
    # So that a name in REMOVED_NAMES cannot be a live API of some other class (which the scan would then flag).
    alive = [f"{m.__name__}.{c}.{name}" for m in (lean, rtx) for c in dir(m) if inspect.isclass(getattr(m, c))
             for name in REMOVED_NAMES if name in vars(getattr(m, c))]
    assert alive == []
    still = [f"{enum}.{member}" for enum, members in REMOVED_MEMBERS.items() for member in members
             for m in (lean, rtx) if hasattr(getattr(m, enum, None), member)]
    assert still == []


def test_signature_check_catches_a_wrong_call():
    call = ast.parse("context.set_optimization_profile_async(0)").body[0].value
    overloads = signatures(lean.IExecutionContext.set_optimization_profile_async, "set_optimization_profile_async")
    assert overloads and not call_fits(call, overloads)  # the stream handle is required
    good = ast.parse("context.set_optimization_profile_async(0, stream)").body[0].value
    assert call_fits(good, overloads)
    cache = signatures(rtx.IBuilderConfig.set_timing_cache, "set_timing_cache")
    assert not call_fits(ast.parse("config.set_timing_cache(c)").body[0].value, cache)  # ignore_mismatch is required


@pytest.mark.parametrize("trt_type,expected", [("INT32", np.int32), ("INT64", np.int64), ("HALF", np.float16),
                                               ("FLOAT", np.float32), ("BOOL", np.bool_), ("INT8", np.int8)])
def test_dtype_mapping_uses_the_real_nptype(trt_type, expected):
    assert compat.numpy_dtype(lean, getattr(lean.DataType, trt_type)) == np.dtype(expected)
    assert compat.numpy_dtype(rtx, getattr(rtx.DataType, trt_type)) == np.dtype(expected)


def test_dtype_without_numpy_equivalent_is_a_clear_error():
    with pytest.raises(BackendError, match="has no numpy equivalent"):
        compat.numpy_dtype(lean, lean.DataType.BF16)


def test_capturing_logger_subclasses_the_real_ilogger(capsys):
    logger = compat.capturing_logger(lean, "WARNING")
    assert isinstance(logger, lean.ILogger)
    logger.log(lean.ILogger.Severity.ERROR, "parse failed")
    logger.log(lean.ILogger.Severity.INFO, "chatter")
    assert logger.messages == [("ERROR", "parse failed")]
    assert logger.errors() == ["parse failed"]
    assert "[TensorRT ERROR] parse failed" in capsys.readouterr().out
