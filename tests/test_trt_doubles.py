"""The doubles of tests/trt_doubles.py are held to NVIDIA's real classes, so they cannot drift into fiction.

Every public member of a double must exist on the real class (``tensorrt_lean_bindings`` for TensorRT 11's
``ICudaEngine`` / ``IExecutionContext``, ``tensorrt_rtx_bindings`` for TensorRT-RTX's ``IRuntimeConfig`` /
``IRuntimeCache``), be a property where the real one is a property and a method where it is a method, and
take the parameters of one of the real overloads (same names, in order, defaults in the same places). The
rules the doubles enforce beyond signatures are checked here too, each against the sentence of NVIDIA's
documentation it follows.
"""

from __future__ import annotations

import inspect

import pytest

from trt_api import real_signatures
from trt_doubles import ContextDouble, EngineDouble, RuntimeCacheDouble, RuntimeConfigDouble, RuntimeDouble

lean = pytest.importorskip("tensorrt_lean_bindings", reason="pip install -r environment/requirements-trt-check.txt")

PROFILES = [((1, 1), (1, 8), (1, 16)), ((2, 1), (4, 8), (8, 16))]


def public_members(cls):
    return {n: v for n, v in vars(cls).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))}


def mismatches(double, real) -> list[str]:
    wrong = []
    for name, member in public_members(double).items():
        if not hasattr(real, name):
            wrong.append(f"{double.__name__}.{name}: {real.__name__} has no such member")
            continue
        real_member = getattr(real, name)
        if isinstance(member, property) != isinstance(real_member, property):
            wrong.append(f"{double.__name__}.{name}: property on one side, method on the other")
            continue
        if isinstance(member, property):
            if (member.fset is None) != (real_member.fset is None):
                wrong.append(f"{double.__name__}.{name}: settable on one side only")
            continue
        params = [(p.name, p.default is not inspect.Parameter.empty)
                  for p in list(inspect.signature(member).parameters.values())[1:]]
        overloads = real_signatures(real_member, name)
        if params not in overloads:
            wrong.append(f"{double.__name__}.{name}{params}: real overloads are {overloads}")
    return wrong


@pytest.mark.parametrize("double,real", [(EngineDouble, "ICudaEngine"), (ContextDouble, "IExecutionContext")])
def test_runtime_doubles_have_the_real_members_and_signatures(double, real):
    assert mismatches(double, getattr(lean, real)) == []
    assert len(public_members(double)) >= 6  # the comparison really covered the double


def test_runtime_double_has_the_real_constructor_and_deserializer():
    assert mismatches(RuntimeDouble, lean.Runtime) == []
    init = [(p.name, p.default is not inspect.Parameter.empty)
            for p in list(inspect.signature(RuntimeDouble.__init__).parameters.values())[1:]]
    assert init in real_signatures(lean.Runtime.__init__, "__init__")


def test_a_drifted_double_is_caught():
    class Drifted(ContextDouble):
        def set_input_shape(self, tensor, dims):  # wrong parameter names
            return True

        def execute_async_v2(self, bindings, stream_handle):  # TensorRT 8, removed in 10
            return True

        @property
        def infer_shapes(self):  # a method in TensorRT
            return []

    wrong = mismatches(Drifted, lean.IExecutionContext)
    assert len(wrong) == 3 and any("execute_async_v2" in w for w in wrong)


def test_arguments_are_type_checked_as_the_bindings_do():
    ctx = EngineDouble(lean, PROFILES).create_execution_context()
    with pytest.raises(TypeError, match="incompatible function arguments"):
        ctx.set_input_shape(b"input_ids", (1, 4))
    with pytest.raises(TypeError, match="incompatible function arguments"):
        ctx.set_optimization_profile_async("0", 77)
    with pytest.raises(TypeError, match="shape must be a tuple, list or Dims"):
        ctx.set_input_shape("input_ids", "1x4")


def test_context_rules_follow_tensorrts_documentation():
    engine = EngineDouble(lean, PROFILES)
    ctx = engine.create_execution_context()
    # "The newly created execution context will be assigned optimization profile 0."
    assert ctx.profile == 0 and ctx.set_input_shape("input_ids", (1, 4))
    # setInputShape: false for a name that is not an input; a shape outside the active profile is refused.
    assert not ctx.set_input_shape("logits", (1, 2)) and not ctx.set_input_shape("input_ids", (4, 4))
    # inferShapes names the inputs whose dynamic dimensions are not specified yet.
    assert ctx.infer_shapes() == ["segment_ids"]
    # setOptimizationProfileAsync: false for an index out of range; a switch needs the shapes set again.
    assert not ctx.set_optimization_profile_async(2, 77)
    assert ctx.set_optimization_profile_async(1, 77) and ctx.infer_shapes() == ["input_ids", "segment_ids"]
    assert ctx.get_tensor_shape("logits") == (-1, 2)
    # setTensorAddress: false for a name that is no I/O tensor or a pointer without 256-byte alignment.
    assert not ctx.set_tensor_address("hidden", 0x1000) and not ctx.set_tensor_address("input_ids", 0x1008)
    # enqueueV3 needs every input shape and every address.
    assert ctx.set_input_shape("input_ids", (4, 4)) and ctx.set_input_shape("segment_ids", (4, 4))
    assert ctx.execute_async_v3(77) is False


@pytest.fixture()
def rtx():
    return pytest.importorskip("tensorrt_rtx_bindings", reason="TensorRT-RTX: pip install -r environment/requirements-trt-check.txt")


@pytest.mark.parametrize("double,real", [(RuntimeConfigDouble, "IRuntimeConfig"), (RuntimeCacheDouble, "IRuntimeCache"),
                                         (EngineDouble, "ICudaEngine"), (ContextDouble, "IExecutionContext")])
def test_doubles_match_tensorrt_rtx_too(rtx, double, real):
    assert mismatches(double, getattr(rtx, real)) == []


def test_rtx_strategies_take_only_the_real_enums(rtx):
    config = RuntimeConfigDouble(rtx)
    strategies = rtx.DynamicShapesKernelSpecializationStrategy
    assert config.dynamic_shapes_kernel_specialization_strategy == strategies.LAZY
    with pytest.raises(TypeError):
        config.dynamic_shapes_kernel_specialization_strategy = "eager"
    config.dynamic_shapes_kernel_specialization_strategy = strategies.EAGER
    assert config.dynamic_shapes_kernel_specialization_strategy == strategies.EAGER
