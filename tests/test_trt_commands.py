"""trtexec and Polygraphy command lines (built as argument lists, run only where the tools exist)."""

from __future__ import annotations

import shutil

import pytest

from helpers.errors import BackendError, ConfigError, InputError, TensorRTUnavailableError
from helpers.trt.commands import polygraphy_command, run_command, shell_line, trtexec_command
from helpers.trt.compat import TrtFeatures, precision_plan
from helpers.trt.profiles import ProfilePlan, ShapeProfile

PROFILE = ShapeProfile(1, 8, 32, 1, 48, 128)
FP16_10 = precision_plan(TrtFeatures("10.13.0.35", True), "fp16")
FP16_11 = precision_plan(TrtFeatures("11.4.0.106", False), "fp16")


def test_trtexec_command_on_the_10x_api():
    cmd = trtexec_command("onnx/model.onnx", "trt/model.fp16.plan", PROFILE, FP16_10, 2048, "trt/timing.cache")
    assert cmd == ["trtexec", "--onnx=onnx/model.onnx", "--saveEngine=trt/model.fp16.plan",
                   "--minShapes=input_ids:1x1,segment_ids:1x1", "--optShapes=input_ids:8x48,segment_ids:8x48",
                   "--maxShapes=input_ids:32x128,segment_ids:32x128", "--memPoolSize=workspace:2048",
                   "--timingCacheFile=trt/timing.cache", "--fp16"]
    assert not any(a.startswith("--workspace") for a in cmd)  # removed in 10.x


def test_trtexec_on_11x_has_no_precision_flag():
    cmd = trtexec_command("onnx/model.fp16.onnx", "e.plan", PROFILE, FP16_11, 1024)
    assert "--fp16" not in cmd and cmd[1] == "--onnx=onnx/model.fp16.onnx"
    assert not any(a.startswith("--timingCacheFile") for a in cmd)
    with pytest.raises(ConfigError, match="workspace_mib must be >= 1"):
        trtexec_command("m.onnx", "e.plan", PROFILE, FP16_11, 0)


def test_polygraphy_command_covers_every_profile_and_valid_ids():
    plan = ProfilePlan((ShapeProfile(1, 1, 1, 1, 48, 128), ShapeProfile(2, 32, 32, 1, 48, 128)))
    cmd = polygraphy_command("model.onnx", plan, FP16_10, (4, 12), vocab_size=5000, atol=0.05, rtol=0.01)
    assert cmd[:5] == ["polygraphy", "run", "model.onnx", "--trt", "--onnxrt"]
    assert cmd.count("--trt-min-shapes") == 2 and cmd.count("--trt-max-shapes") == 2
    assert cmd[cmd.index("--optimization-profile") + 1] == "1"  # 4x12 runs on the batch 2-32 profile
    assert cmd[cmd.index("--val-range") + 1: cmd.index("--val-range") + 3] == ["input_ids:[0,4999]", "segment_ids:[0,0]"]
    assert cmd[-1] == "--fp16" and "workspace:1024M" in cmd
    assert "--atol 0.05 --rtol 0.01" in shell_line(cmd)
    with pytest.raises(InputError, match="outside every optimization profile"):
        polygraphy_command("model.onnx", plan, FP16_10, (64, 12), vocab_size=5000, atol=0.05, rtol=0.01)


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
