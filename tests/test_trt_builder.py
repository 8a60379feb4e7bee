"""engine_from_onnx's choices on 10.x and 11.x, its errors, timing-cache reuse and metadata.

``FakeBuilderModule`` (tests/trt_doubles.py) records the builder calls; it has or lacks
``BuilderFlag.FP16`` to exercise this project's branching. It is not TensorRT: the builder-side names it
answers to are the ones checked against NVIDIA's documentation (see the closing note of the issue).
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.errors import BackendError, ConfigError, MissingArtifactError, TensorRTUnavailableError
from helpers.trt.builder import BuildSettings, engine_from_onnx, engine_from_trtexec, engine_name, onnx_for, onnx_precision
from helpers.trt.compat import TrtFeatures
from helpers.trt.metadata import RunningEnvironment, read_metadata, sidecar_path
from helpers.trt.profiles import ProfilePlan, ShapeProfile
from helpers.trt.smoke import smoke_onnx

from trt_doubles import FakeBuilderModule

H100 = RunningEnvironment("ignored: the module's version is recorded", "NVIDIA H100 80GB HBM3", "9.0")
PLAN = ProfilePlan((ShapeProfile(1, 1, 1, 1, 48, 128), ShapeProfile(2, 32, 32, 1, 48, 128)))


def fp16_onnx(path):
    """A tiny graph with an FP16 weight (what 02's model.fp16.onnx looks like to onnx_precision)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((1,), np.float16), "w")
    graph = helper.make_graph([helper.make_node("Cast", ["w"], ["logits"], to=TensorProto.FLOAT)], "g", [],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1])], initializer=[w])
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture()
def onnx_dir(tmp_path):
    d = tmp_path / "onnx"
    d.mkdir()
    smoke_onnx(d / "model.onnx")
    fp16_onnx(d / "model.fp16.onnx")
    return d


def called(module, name):
    return [args for call, args in module.calls if call == name]


def test_10x_fp16_sets_the_builder_flag_on_the_fp32_graph(onnx_dir, tmp_path):
    trt = FakeBuilderModule("10.13.0.35", fp16_flag=True)
    src = onnx_for(onnx_dir, TrtFeatures("10.13.0.35", True), "fp16")
    assert src.name == "model.onnx"
    result = engine_from_onnx(src, tmp_path / "trt" / engine_name("fp16"), PLAN,
                              BuildSettings("fp16", 512, cache_dir=tmp_path / "trt"), H100, trt=trt)
    assert called(trt, "builder_config.set_flag") == [("FLAG_FP16",)]
    assert called(trt, "builder_config.set_memory_pool_limit") == [("POOL_WORKSPACE", 512 << 20)]
    assert called(trt, "builder.create_network") == [()]  # no EXPLICIT_BATCH flag
    shapes = called(trt, "trt_profile.set_shape")
    assert len(shapes) == 4 and shapes[0] == ("input_ids", (1, 1), (1, 48), (1, 128))
    assert len(called(trt, "builder_config.add_optimization_profile")) == 2
    assert result.engine_path.read_bytes() == b"ENGINE-BYTES"
    meta = read_metadata(result.engine_path)
    assert (meta.tensorrt_version, meta.precision, meta.onnx_file, meta.compute_capability) == (
        "10.13.0.35", "fp16", "model.onnx", "9.0")
    assert meta.input_dtypes == {"input_ids": "int32", "segment_ids": "int32"}
    assert meta.output_dtypes == {"logits": "float32"}
    assert len(meta.profiles) == 2


def test_11x_fp16_builds_the_fp16_graph_without_flags(onnx_dir, tmp_path):
    trt = FakeBuilderModule("11.4.0.106", fp16_flag=False)
    src = onnx_for(onnx_dir, TrtFeatures("11.4.0.106", False), "fp16")
    assert src.name == "model.fp16.onnx" and onnx_precision(src) == "fp16"
    # (the double's parsed network has the project's I/O whatever file it is given)
    engine_from_onnx(src, tmp_path / "e.plan", PLAN, BuildSettings("fp16"), H100, trt=trt)
    assert called(trt, "builder_config.set_flag") == []


def test_11x_refuses_an_fp32_graph_for_fp16(onnx_dir, tmp_path):
    trt = FakeBuilderModule("11.4.0.106", fp16_flag=False)
    with pytest.raises(ConfigError, match=r"model.onnx is an FP32 graph but precision 'fp16' needs the FP16 graph"):
        engine_from_onnx(onnx_dir / "model.onnx", tmp_path / "e.plan", PLAN, BuildSettings("fp16"), H100, trt=trt)


def test_timing_cache_is_saved_and_reused(onnx_dir, tmp_path):
    settings = BuildSettings("fp32", cache_dir=tmp_path / "trt")
    first = engine_from_onnx(onnx_dir / "model.onnx", tmp_path / "a.plan", PLAN, settings, H100,
                             trt=FakeBuilderModule("10.13.0.35", True))
    assert not first.timing_cache_reused and first.timing_cache.name == "timing-trt10.13.0.35-sm90.cache"
    saved = first.timing_cache.read_bytes()
    trt = FakeBuilderModule("10.13.0.35", True)
    second = engine_from_onnx(onnx_dir / "model.onnx", tmp_path / "b.plan", PLAN, settings, H100, trt=trt)
    assert second.timing_cache_reused and trt.cache_in[0] == saved  # the builder got the saved cache


def test_parser_errors_are_reported_in_full(onnx_dir, tmp_path):
    trt = FakeBuilderModule("10.13.0.35", True, parse_ok=False)
    with pytest.raises(BackendError) as err:
        engine_from_onnx(onnx_dir / "model.onnx", tmp_path / "e.plan", PLAN, BuildSettings("fp32"), H100, trt=trt)
    text = str(err.value)
    assert "rejected model.onnx with 2 error(s)" in text
    assert "#0: Unsupported op Foo [code 8, node 3 '/enc/Foo', op 'Foo']" in text
    assert "#1: Invalid node [code 5, node 7 '/enc/Bar', op 'Bar']" in text


def test_failed_build_shows_tensorrt_log_and_writes_nothing(onnx_dir, tmp_path):
    trt = FakeBuilderModule("10.13.0.35", True, build_ok=False)
    with pytest.raises(BackendError, match=r"could not build e.plan from model.onnx:\nError Code 4: out of workspace"):
        engine_from_onnx(onnx_dir / "model.onnx", tmp_path / "e.plan", PLAN, BuildSettings("fp32"), H100, trt=trt)
    assert not (tmp_path / "e.plan").exists() and not sidecar_path(tmp_path / "e.plan").exists()


def test_missing_onnx_names_02(tmp_path):
    with pytest.raises(MissingArtifactError, match=r"model.fp16.onnx is missing .*run notebook 02_onnx_export first"):
        onnx_for(tmp_path, TrtFeatures("11.4.0.106", False), "fp16")


def test_a_runtime_only_module_cannot_build(onnx_dir, tmp_path):
    import types

    lean_like = types.SimpleNamespace(__version__="11.4.0.106", BuilderFlag=types.SimpleNamespace())
    with pytest.raises(TensorRTUnavailableError, match="The engine builder .* is not available"):
        engine_from_onnx(onnx_dir / "model.onnx", tmp_path / "e.plan", PLAN, BuildSettings("fp32"), H100, trt=lean_like)


def test_settings_are_validated():
    with pytest.raises(ConfigError, match="precision must be one of"):
        BuildSettings("int8")
    with pytest.raises(ConfigError, match="workspace_mib must be >= 1"):
        BuildSettings("fp32", 0)
    assert BuildSettings("fp32", 3).workspace_bytes == 3 << 20


def fake_trtexec(tmp_path, exit_code=0):
    """A stand-in executable that writes --saveEngine like trtexec would (tests the flow around trtexec)."""
    script = tmp_path / "trtexec"
    script.write_text("#!/bin/sh\nfor a in \"$@\"; do case $a in --saveEngine=*) printf 'PLAN' > \"${a#--saveEngine=}\";; esac; done\n"
                      f"echo \"trtexec $*\"\nexit {exit_code}\n")
    script.chmod(0o755)
    return str(script)


def test_trtexec_build_moves_the_engine_into_place_with_metadata(onnx_dir, tmp_path):
    features = TrtFeatures("10.13.0.35", True)
    engine = tmp_path / "trt" / "model.fp16.trtexec.plan"
    engine.parent.mkdir()
    result = engine_from_trtexec(onnx_dir / "model.onnx", engine, PLAN, BuildSettings("fp16", 256, cache_dir=tmp_path / "trt"),
                                 H100, features, trtexec=fake_trtexec(tmp_path))
    assert engine.read_bytes() == b"PLAN"
    meta = read_metadata(engine)
    assert meta.builder == "trtexec" and meta.profiles == (PLAN.envelope().to_dict(),)
    assert meta.input_dtypes == {"input_ids": "int32", "segment_ids": "int32"}
    log = engine.with_name(engine.name + ".trtexec.log").read_text()
    assert "--fp16" in log and "--memPoolSize=workspace:256" in log and "--timingCacheFile=" in log
    assert sorted(p.name for p in engine.parent.iterdir()) == [engine.name, engine.name + ".json", engine.name + ".trtexec.log"]
    assert result.metadata == meta


def test_failed_trtexec_leaves_no_engine(onnx_dir, tmp_path):
    engine = tmp_path / "model.fp32.trtexec.plan"
    with pytest.raises(BackendError, match="trtexec failed with exit code 1"):
        engine_from_trtexec(onnx_dir / "model.onnx", engine, PLAN, BuildSettings("fp32"), H100,
                            TrtFeatures("11.4.0.106", False), trtexec=fake_trtexec(tmp_path, exit_code=1))
    assert not engine.exists() and not any(p.name.endswith("trtexec-tmp") for p in tmp_path.iterdir())


def test_timing_cache_is_set_strictly(onnx_dir, tmp_path):
    trt = FakeBuilderModule("10.13.0.35", True)
    engine_from_onnx(onnx_dir / "model.onnx", tmp_path / "e.plan", PLAN, BuildSettings("fp32", cache_dir=tmp_path), H100, trt=trt)
    (args,) = called(trt, "builder_config.set_timing_cache")
    assert args[-1] == ("ignore_mismatch", False)  # a cache from another release/GPU is rejected, not silently used
