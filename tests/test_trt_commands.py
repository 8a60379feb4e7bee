"""trtexec and Polygraphy command lines (built as argument lists, run only where the tools exist), and the
trtexec build flow around a stand-in executable."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from helpers.errors import BackendError, ConfigError, InputError, TensorRTUnavailableError
from helpers.trt.builder import BuildSettings
from helpers.trt.commands import engine_from_trtexec, polygraphy_command, run_command, shell_line, trtexec_command
from helpers.trt.compat import TrtFeatures, precision_spec
from helpers.trt.metadata import RunningEnvironment, read_metadata
from helpers.trt.profiles import ProfileSet, ShapeProfile
from helpers.trt.smoke import smoke_onnx

PROFILE = ShapeProfile(1, 8, 32, 1, 48, 128)
TRT10 = TrtFeatures("10.13.0.35", fp16_builder_flag=True)
FP16_10 = precision_spec(TRT10, "fp16")
FP32_11 = precision_spec(TrtFeatures("11.4.0.106"), "fp32")
H100 = RunningEnvironment("10.13.0.35", "NVIDIA H100 80GB HBM3", "9.0", "tensorrt")
PROFILE_SET = ProfileSet((ShapeProfile(1, 1, 1, 1, 48, 128), ShapeProfile(2, 32, 32, 1, 48, 128)))


def test_trtexec_command_builds_strongly_typed():
    cmd = trtexec_command("onnx/model.fp16.onnx", "trt/model.fp16.engine", PROFILE, FP16_10, 2048, "trt/timing.cache")
    assert cmd == ["trtexec", "--onnx=onnx/model.fp16.onnx", "--saveEngine=trt/model.fp16.engine",
                   "--minShapes=input_ids:1x1,segment_ids:1x1", "--optShapes=input_ids:8x48,segment_ids:8x48",
                   "--maxShapes=input_ids:32x128,segment_ids:32x128", "--memPoolSize=workspace:2048",
                   "--timingCacheFile=trt/timing.cache", "--stronglyTyped"]
    assert not any(a.startswith("--workspace") for a in cmd)  # removed in 10.x
    assert "--fp16" not in cmd  # FP16 comes from the graph on every release


def test_trtexec_without_a_cache_and_in_fp32():
    cmd = trtexec_command("onnx/model.onnx", "e.engine", PROFILE, FP32_11, 1024)
    assert cmd[1] == "--onnx=onnx/model.onnx" and cmd[-1] == "--stronglyTyped" and "--fp16" not in cmd
    assert not any(a.startswith("--timingCacheFile") for a in cmd)
    with pytest.raises(ConfigError, match="workspace_mib must be >= 1"):
        trtexec_command("m.onnx", "e.engine", PROFILE, FP32_11, 0)


def test_polygraphy_command_covers_every_profile_and_valid_ids():
    profile_set = ProfileSet((ShapeProfile(1, 1, 1, 1, 48, 128), ShapeProfile(2, 32, 32, 1, 48, 128)))
    cmd = polygraphy_command("model.onnx", profile_set, FP16_10, (4, 12), vocab_size=5000, atol=0.05, rtol=0.01)
    assert cmd[:5] == ["polygraphy", "run", "model.onnx", "--trt", "--onnxrt"]
    assert cmd.count("--trt-min-shapes") == 2 and cmd.count("--trt-max-shapes") == 2
    assert cmd[cmd.index("--optimization-profile") + 1] == "1"  # 4x12 runs on the batch 2-32 profile
    assert cmd[cmd.index("--val-range") + 1: cmd.index("--val-range") + 3] == ["input_ids:[0,4999]", "segment_ids:[0,0]"]
    assert cmd[-1] == "--strongly-typed" and "workspace:1024M" in cmd and "--fp16" not in cmd
    assert "--atol 0.05 --rtol 0.01" in shell_line(cmd)
    with pytest.raises(InputError, match="outside every optimization profile"):
        polygraphy_command("model.onnx", profile_set, FP16_10, (64, 12), vocab_size=5000, atol=0.05, rtol=0.01)


def test_shell_line_quotes_brackets():
    assert shell_line(["polygraphy", "--input-shapes", "input_ids:[1,8]"]) == "polygraphy --input-shapes 'input_ids:[1,8]'"


def test_run_command_reports_missing_tools_and_failures(tmp_path):
    with pytest.raises(TensorRTUnavailableError, match="not on PATH"):
        run_command(["trtexec-that-does-not-exist", "--help"])
    if shutil.which("sh") is None:
        pytest.skip("no POSIX shell to stand in for a failing tool")
    log = tmp_path / "tool.log"
    with pytest.raises(BackendError, match=r"sh failed with exit code 3:\nbad input"):
        run_command(["sh", "-c", "echo bad input; exit 3"], log_path=log)
    assert log.read_text() == "bad input\n"
    assert run_command(["sh", "-c", "echo fine"]) == "fine\n"


def fp16_onnx(path):
    """A tiny graph with an FP16 weight (what 02's model.fp16.onnx looks like to onnx_precision)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((1,), np.float16), "w")
    graph = helper.make_graph([helper.make_node("Cast", ["w"], ["logits"], to=TensorProto.FLOAT)], "g", [],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1])], initializer=[w])
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def fake_trtexec(tmp_path, exit_code=0):
    """A stand-in executable that writes --saveEngine like trtexec would (tests the flow around trtexec)."""
    script = tmp_path / "trtexec"
    script.write_text("#!/bin/sh\nfor a in \"$@\"; do case $a in --saveEngine=*) printf 'ENGINE' > \"${a#--saveEngine=}\";; esac; done\n"
                      f"echo \"trtexec $*\"\nexit {exit_code}\n")
    script.chmod(0o755)
    return str(script)


def test_trtexec_build_moves_the_engine_into_place_with_metadata(tmp_path):
    engine = tmp_path / "trt" / "model.fp16.trtexec.engine"
    engine.parent.mkdir()
    onnx_path = smoke_onnx(tmp_path / "model.onnx")
    with pytest.raises(ConfigError, match="model.onnx is an FP32 graph but precision 'fp16' needs the FP16 graph"):
        engine_from_trtexec(onnx_path, engine, PROFILE_SET, BuildSettings("fp16"), H100, TRT10, trtexec=fake_trtexec(tmp_path))
    result = engine_from_trtexec(onnx_path, engine, PROFILE_SET, BuildSettings("fp32", 256, cache_dir=tmp_path / "trt"),
                                 H100, TRT10, trtexec=fake_trtexec(tmp_path))
    assert engine.read_bytes() == b"ENGINE"
    meta = read_metadata(engine)
    assert meta.builder == "trtexec" and meta.profiles == (PROFILE_SET.envelope().to_dict(),) and meta.flavour == "tensorrt"
    assert meta.input_dtypes == {"input_ids": "int32", "segment_ids": "int32"}
    log = engine.with_name(engine.name + ".trtexec.log").read_text()
    assert "--stronglyTyped" in log and "--memPoolSize=workspace:256" in log and "--timingCacheFile=" in log
    assert sorted(p.name for p in engine.parent.iterdir()) == [engine.name, engine.name + ".json", engine.name + ".trtexec.log"]
    assert result.metadata == meta


def test_failed_trtexec_leaves_no_engine(tmp_path):
    engine = tmp_path / "model.fp16.trtexec.engine"
    with pytest.raises(BackendError, match="trtexec failed with exit code 1"):
        engine_from_trtexec(fp16_onnx(tmp_path / "model.fp16.onnx"), engine, PROFILE_SET, BuildSettings("fp16"), H100,
                            TrtFeatures("11.4.0.106"), trtexec=fake_trtexec(tmp_path, exit_code=1))
    assert not engine.exists() and not any(p.name.endswith("trtexec-tmp") for p in tmp_path.iterdir())


def test_trtexec_is_full_tensorrt_only(tmp_path):
    rtx = TrtFeatures("1.7.1.116", flavour="tensorrt-rtx")
    with pytest.raises(TensorRTUnavailableError, match=r"trtexec is not available in TensorRT-RTX 1.7.1.116; .*engine_from_onnx"):
        engine_from_trtexec(smoke_onnx(tmp_path / "m.onnx"), tmp_path / "e.engine", PROFILE_SET, BuildSettings("fp32"),
                            RunningEnvironment("1.7.1.116", "none", "8.0 8.6 8.9 12.0+", "tensorrt-rtx"), rtx)
