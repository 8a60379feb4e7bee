"""Every TensorRT name helpers uses exists in NVIDIA's real TensorRT runtime module.

TensorRT's builder cannot be installed on CI machines, but NVIDIA's lean runtime can
(``tensorrt-lean-cu13-libs`` + ``tensorrt-lean-cu13-bindings``, see environment/requirements-trt-check.txt):
``tensorrt_lean_bindings`` exposes the real ``Runtime``, ``ICudaEngine``, ``IExecutionContext``,
``DataType``, ``TensorIOMode``, ``nptype``... classes of TensorRT 11. These tests

1. check that every runtime-side name listed in :mod:`helpers.trt.compat` exists on those real classes,
   and that each call in helpers' source passes arguments the real method's signature accepts;
2. scan the source of helpers' TensorRT code (and notebooks 03-05) so that no TensorRT call escapes the
   lists, and check that the lists hold nothing the source does not use;
3. check that the builder-side names (``Builder``, ``OnnxParser``, ``IBuilderConfig``...) are indeed
   absent from the lean runtime: those are checked against NVIDIA's documentation instead.

Nothing here constructs a TensorRT object that needs a GPU (a ``Runtime`` without CUDA crashes).
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest

from helpers.errors import BackendError, TensorRTUnavailableError
from helpers.trt import compat

lean = pytest.importorskip(
    "tensorrt_lean_bindings",
    reason="NVIDIA's TensorRT lean runtime is not installed: pip install -r environment/requirements-trt-check.txt",
)

ROOT = Path(__file__).resolve().parents[1]
SCANNED = sorted((ROOT / "helpers" / "trt").glob("*.py")) + [ROOT / "helpers" / "backends" / "tensorrt.py"]
NOTEBOOKS = [ROOT / "notebooks" / f for f in ("03_trt_setup.ipynb", "04_build_engine.ipynb", "05_infer.ipynb")]
LEAN_MAJOR = int(lean.__version__.split(".")[0])
API = compat.api_names()


# ------------------------------------------------------------------------------------------------ scanner
def _role(node: ast.AST) -> str | None:
    """Which TensorRT class the expression ``node`` holds, by compat.OBJECT_NAMES (``trt.X`` -> class X)."""
    if isinstance(node, ast.Name):
        return compat.OBJECT_NAMES.get(node.id.lstrip("_"))
    if isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id == "trt" and node.attr in API:
            return node.attr
        return compat.OBJECT_NAMES.get(node.attr.lstrip("_"))
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
            violations.append(f"{where}:{node.lineno}: {role}.{name} is not listed in helpers.trt.compat")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            role = _role(node.func.value)
            if role is not None:
                uses.append((role, node.func.attr, node))
    return violations, uses


def _sources() -> list[tuple[str, str]]:
    out = [(p.read_text(encoding="utf-8"), p.relative_to(ROOT).as_posix()) for p in SCANNED]
    for nb in NOTEBOOKS:
        if nb.is_file():
            cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
            code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
            out.append(("\n".join(l for l in code.splitlines() if not l.lstrip().startswith(("%", "!"))), nb.name))
    return out


def _lean_target(role: str):
    return lean if role == "module" else getattr(lean, role)


# -------------------------------------------------------------------------------------------- signatures
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
    if part.strip():
        parts.append(part.strip())
    return parts


def signatures(obj, name: str) -> list[list[tuple[str, bool]]]:
    """Parameter lists (name, has default) of a real TensorRT callable, one per overload, self removed."""
    try:
        sig = inspect.signature(obj)
        return [[(p.name, p.default is not inspect.Parameter.empty) for p in sig.parameters.values()]]
    except (TypeError, ValueError):
        pass  # pybind11 builtins: read the signature lines of the docstring
    out = []
    for line in (obj.__doc__ or "").splitlines():
        m = re.match(rf"^\s*(?:\d+\.\s+)?{re.escape(name)}\((.*)\)\s*->", line)
        if m:
            params = [(p.split(":")[0].strip(), "=" in p) for p in _split_params(m.group(1))]
            out.append([p for p in params if p[0] != "self"])
    return out


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
    missing = [f"{cls}.{name}" for cls, names in compat.RUNTIME_API.items() for name in names
               if not hasattr(_lean_target(cls), name)]
    assert missing == [], f"not in tensorrt_lean_bindings {lean.__version__}: {missing}"


def test_optional_builder_flag_follows_the_release():
    # BuilderFlag.FP16 exists in 10.x and was removed in 11.x: the reason helpers detects it.
    assert hasattr(lean.BuilderFlag, "FP16") == (LEAN_MAJOR == 10)
    features = compat.features_of(lean)
    assert features.fp16_builder_flag == (LEAN_MAJOR == 10)
    assert features.has_builder is False  # a lean runtime cannot build
    if LEAN_MAJOR >= 11:
        with pytest.raises(TensorRTUnavailableError, match=rf"BuilderFlag.FP16 is not available in TensorRT {lean.__version__}"):
            compat.fp16_builder_flag(lean)
        assert compat.precision_plan(features, "fp16").onnx_variant == "fp16"


def test_builder_side_names_are_not_in_the_lean_runtime():
    # These are checked against NVIDIA's documentation; this guards the split between the two lists.
    classes = [c for c in compat.BUILDER_API if c != "module"] + list(compat.BUILDER_API["module"])
    present = [c for c in classes if hasattr(lean, c)]
    assert present == [], f"move these to RUNTIME_API, the lean runtime has them: {present}"
    with pytest.raises(TensorRTUnavailableError, match="The engine builder .* is not available in TensorRT"):
        compat.require_builder(lean)


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
    checked, wrong = 0, []
    for source, where in _sources():
        for role, name, call in scan(source, where)[1]:
            if call is None or role not in compat.RUNTIME_API or not hasattr(_lean_target(role), name):
                continue
            member = getattr(_lean_target(role), name)
            overloads = signatures(member.__init__ if inspect.isclass(member) else member,
                                   "__init__" if inspect.isclass(member) else name)
            if isinstance(member, property):
                wrong.append(f"{where}:{call.lineno}: {role}.{name} is a property, not a method")
            elif not overloads:
                wrong.append(f"{where}:{call.lineno}: no signature found for {role}.{name}")
            elif not call_fits(call, overloads):
                wrong.append(f"{where}:{call.lineno}: {role}.{name} called with {len(call.args)} positional "
                             f"{[k.arg for k in call.keywords]} keywords; real: {overloads}")
            checked += 1
    assert wrong == []
    assert checked >= 12  # the runtime path really was checked (engine, context, runtime calls)


def test_the_scan_catches_tensorrt_8_code():
    trt8 = (
        "context.active_optimization_profile = 0\n"
        "shape = context.get_binding_shape(0)\n"
        "context.set_binding_shape(0, shape)\n"
        "context.execute_async_v2(bindings, stream.handle)\n"
        "builder_config.max_workspace_size = 1 << 30\n"
        "builder_config.set_flag(trt.BuilderFlag.INT8)\n"
        "ok = hasattr(engine, 'num_bindings')\n"
    )
    violations, _ = scan(trt8, "trt8.py")
    assert len(violations) == 7
    assert any("IExecutionContext.execute_async_v2" in v for v in violations)
    assert any("BuilderFlag.INT8" in v for v in violations)


def test_signature_check_catches_a_wrong_call():
    call = ast.parse("context.set_optimization_profile_async(0)").body[0].value
    overloads = signatures(lean.IExecutionContext.set_optimization_profile_async, "set_optimization_profile_async")
    assert overloads and not call_fits(call, overloads)  # the stream handle is required
    good = ast.parse("context.set_optimization_profile_async(0, stream)").body[0].value
    assert call_fits(good, overloads)


@pytest.mark.parametrize("trt_type,expected", [("INT32", np.int32), ("INT64", np.int64), ("HALF", np.float16),
                                               ("FLOAT", np.float32), ("BOOL", np.bool_), ("INT8", np.int8)])
def test_dtype_mapping_uses_the_real_nptype(trt_type, expected):
    assert compat.numpy_dtype(lean, getattr(lean.DataType, trt_type)) == np.dtype(expected)


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
