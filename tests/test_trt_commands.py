"""trtexec and Polygraphy command lines (built as argument lists; run only where the tools exist), and the runner
that reports a failing tool's own words."""

from __future__ import annotations

import shlex
import shutil

import pytest

from helpers.errors import BackendError, ConfigError, InputError, TensorRTUnavailableError
from helpers.trt.commands import polygraphy_command, run_command, trtexec_command
from helpers.trt.profiles import ProfileSet, ShapeProfile

PROFILE_SET = ProfileSet((ShapeProfile(1, 1, 1, 1, 48, 128), ShapeProfile(2, 32, 32, 1, 48, 128)))


def test_trtexec_command_builds_strongly_typed_with_the_envelope_of_the_profiles():
    cmd = trtexec_command("onnx/model.fp16.onnx", "trt/model.fp16.engine", PROFILE_SET, 2048, "trt/timing.cache")
    assert cmd == ["trtexec", "--onnx=onnx/model.fp16.onnx", "--saveEngine=trt/model.fp16.engine",
                   "--minShapes=input_ids:1x1,segment_ids:1x1", "--optShapes=input_ids:32x48,segment_ids:32x48",
                   "--maxShapes=input_ids:32x128,segment_ids:32x128", "--memPoolSize=workspace:2048",
                   "--stronglyTyped", "--timingCacheFile=trt/timing.cache"]
    assert not any(a.startswith("--workspace") for a in cmd)  # removed in 10.x
    assert "--fp16" not in cmd  # FP16 comes from the graph on every release


def test_trtexec_without_a_cache_and_with_a_bad_workspace():
    cmd = trtexec_command("onnx/model.onnx", "e.engine", PROFILE_SET, 1024)
    assert cmd[1] == "--onnx=onnx/model.onnx" and cmd[-1] == "--stronglyTyped"
    assert not any(a.startswith("--timingCacheFile") for a in cmd)
    with pytest.raises(ConfigError, match="workspace_mib must be >= 1"):
        trtexec_command("m.onnx", "e.engine", PROFILE_SET, 0)


def test_polygraphy_command_covers_every_profile_and_valid_ids():
    cmd = polygraphy_command("model.onnx", PROFILE_SET, (4, 12), vocab_size=5000, atol=0.05, rtol=0.01)
    assert cmd[:5] == ["polygraphy", "run", "model.onnx", "--trt", "--onnxrt"]
    assert cmd.count("--trt-min-shapes") == 2 and cmd.count("--trt-max-shapes") == 2
    assert cmd[cmd.index("--optimization-profile") + 1] == "1"  # 4x12 runs on the batch 2-32 profile
    assert cmd[cmd.index("--val-range") + 1: cmd.index("--val-range") + 3] == ["input_ids:[0,4999]", "segment_ids:[0,0]"]
    assert cmd[-1] == "--strongly-typed" and "workspace:1024M" in cmd and "--fp16" not in cmd
    assert "--atol 0.05 --rtol 0.01" in shlex.join(cmd) and "'input_ids:[4,12]'" in shlex.join(cmd)
    with pytest.raises(InputError, match="outside every optimization profile"):
        polygraphy_command("model.onnx", PROFILE_SET, (64, 12), vocab_size=5000, atol=0.05, rtol=0.01)
    with pytest.raises(ConfigError, match="vocab_size must be >= 2"):
        polygraphy_command("model.onnx", PROFILE_SET, (4, 12), vocab_size=1, atol=0.05, rtol=0.01)


def test_run_command_reports_missing_tools_and_failures(tmp_path):
    with pytest.raises(TensorRTUnavailableError, match="polygraphy-that-does-not-exist is not on PATH .*pip install polygraphy"):
        run_command(["polygraphy-that-does-not-exist", "--help"])
    if shutil.which("sh") is None:
        pytest.skip("no POSIX shell to stand in for a failing tool")
    log = tmp_path / "tool.log"
    with pytest.raises(BackendError, match=r"sh failed with exit code 3:\nbad input"):
        run_command(["sh", "-c", "echo bad input; exit 3"], log_path=log)
    assert log.read_text() == "bad input\n"
    assert run_command(["sh", "-c", "echo fine"]) == "fine\n"
