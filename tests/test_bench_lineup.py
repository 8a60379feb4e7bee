"""Line-ups built through the registry, the architecture model's ONNX set, text passes and the command line, on a
tiny model (CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.backends import model_files
from helpers.backends.base import Backend
from helpers.bench import BenchResult, Shape, build_lineup
from helpers.bench.lineup import combine, cpu_token_rule, only_at
from helpers.bench.models import ArchitectureModel, architecture_model, ensure_onnx_set
from helpers.errors import BackendError, MissingArtifactError

CPU = ("pytorch", "onnxruntime", "onnxruntime-fused", "onnxruntime-int8")


def new_result(**timing) -> BenchResult:
    return BenchResult({"host": {"usable_cpus": 2}}, {"warmup": 1, "iters": 2, "rounds": 1, **timing})


@pytest.fixture(scope="module")
def arch_set(tmp_path_factory) -> tuple[ArchitectureModel, dict]:
    arch = architecture_model("tiny", vocab_size=300)
    folder = tmp_path_factory.mktemp("arch")
    return arch, ensure_onnx_set(arch, folder, ("plain", "fused", "int8"), log=None)


def test_architecture_model_is_seeded_and_writes_its_files_once(tmp_path):
    a, b = architecture_model("tiny", vocab_size=300, seed=3), architecture_model("tiny", vocab_size=300, seed=3)
    for (_, p), (_, q) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert (p == q).all()
    assert a.model_size == "tiny" and a.name == "arch-tiny" and a.vocab_size == 300 and not a.model.training
    assert a.files == {} and list(tmp_path.iterdir()) == []  # nothing written unless asked
    logged: list[str] = []
    c = architecture_model("tiny", vocab_size=300, onnx_dir=tmp_path, log=logged.append)
    assert set(c.files) == {"plain", "fused", "int8"} and c.files == model_files(tmp_path)  # no GPU here: CPU set
    assert len(logged) == 3
    architecture_model("tiny", vocab_size=300, onnx_dir=tmp_path, log=logged.append)
    assert len(logged) == 3  # already there: nothing rewritten


def test_onnx_set_is_written_once_with_prerequisites(arch_set, tmp_path):
    _, onnx = arch_set
    assert {v: p.name for v, p in onnx.items()} == {"plain": "model.onnx", "fused": "model.fused.onnx", "int8": "model.int8.onnx"}
    stamp = onnx["plain"].stat().st_mtime_ns
    logged: list[str] = []
    ensure_onnx_set(arch_set[0], onnx["plain"].parent, ("plain", "int8"), log=logged.append)
    assert logged == [] and onnx["plain"].stat().st_mtime_ns == stamp  # nothing rewritten
    with pytest.raises(MissingArtifactError, match="unknown ONNX variants"):
        ensure_onnx_set(arch_set[0], tmp_path, ("int4",))


def test_cpu_lineup_builds_through_the_registry_and_records_gpu_skips(arch_set):
    arch, onnx = arch_set
    with build_lineup(arch.model, onnx, name="arch-tiny", threads=1, cuda=False) as lineup:
        assert tuple(lineup.backends) == CPU and lineup.reference == "pytorch" and lineup.vocab_size == 300
        assert all(b.name == n for n, b in lineup.backends.items())
        assert lineup.backends["onnxruntime"].describe()["intra_op_threads"] == 1
        reasons = {s.backend: s.reason for s in lineup.skipped}
        assert set(reasons) == {"pytorch-cuda", "torch-cuda-fp16", "torch-cuda-fp16-graph", "torch-compile-fp16-max-autotune",
                                "ort-cuda-fp16-graph", "ort-cuda-fused-fp16-graph", "ort-cuda-fused-fp16-rightpad-graph",
                                "tensorrt-fp32", "tensorrt-fp16"}
        assert all("no CUDA GPU here" in r for r in reasons.values())
        result = new_result()
        ms = lineup.time(result, "1x16", log=None)
        diffs = {m.backend: m.max_abs_diff for m in ms}
        assert diffs["onnxruntime"] < 1e-4 and diffs["onnxruntime-fused"] < 1e-4 and diffs["onnxruntime-int8"] < 0.1
        assert len(result.skipped) == 9 and result.measurements == ms
        lineup.time(result, [Shape(1, 8), "2x8"], log=None)
        assert len(result.skipped) == 9 and len(result.measurements) == 12  # the line-up's skips are recorded once
    assert lineup.backends == {}


def test_a_missing_file_is_a_skip_and_an_unknown_name_is_refused(arch_set):
    arch, onnx = arch_set
    lineup = build_lineup(arch.model, {"plain": onnx["plain"]}, name="m", names=("onnxruntime-int8", "onnxruntime"),
                          threads=1, cuda=False)
    assert list(lineup.backends) == ["onnxruntime"] and "run notebook 02_onnx_export first" in lineup.skipped[0].reason
    with pytest.raises(BackendError, match=r"unknown backends \['ort'\]; the known backends are pytorch, "):
        build_lineup(arch.model, onnx, name="m", names=("ort",), cuda=False)


def test_the_compile_mode_names_the_compile_backend(arch_set):
    arch, onnx = arch_set
    lineup = build_lineup(arch.model, onnx, name="m", compile_mode="reduce-overhead", cuda=False)
    assert "torch-compile-fp16-reduce-overhead" in {s.backend for s in lineup.skipped}


class _Dev(Backend):
    def __init__(self, device: str) -> None:
        super().__init__()
        self.device = device

    def _run(self, input_ids, segment_ids):
        return np.zeros((input_ids.shape[0], 2), np.float32)


def test_skip_rules():
    rule = combine(cpu_token_rule(256), only_at("torch-compile", {(1, 200)}))
    cpu, gpu = _Dev("cpu"), _Dev("cuda:0")
    assert rule("pytorch", cpu, Shape(8, 32)) is None
    assert "up to 256 tokens" in rule("pytorch", cpu, Shape(8, 64))
    assert rule("pytorch-cuda", gpu, Shape(32, 512)) is None
    assert "timed only at [(1, 200)]" in rule("torch-compile-fp16-max-autotune", gpu, Shape(1, 128))
    assert rule("torch-compile-fp16-max-autotune", gpu, Shape(1, 200)) is None
    assert cpu_token_rule(0)("pytorch", cpu, Shape(32, 512)) is None


def test_the_lineup_applies_its_skip_rules(arch_set):
    arch, onnx = arch_set
    with build_lineup(arch.model, onnx, name="m", names=("pytorch", "onnxruntime"), threads=1, cpu_max_tokens=16,
                      cuda=False) as lineup:
        result = new_result()
        assert lineup.time(result, "1x16, 2x16", log=None) and {m.shape.label for m in result.measurements} == {"1x16"}
        assert {(s.backend, s.shape) for s in result.skipped} == {("pytorch", "2x16"), ("onnxruntime", "2x16")}


def test_command_line_times_and_redraws_a_result(tmp_path):
    from helpers.bench.__main__ import main

    code = main(["--arch", "tiny", "--shapes", "1x16,1x32", "--iters", "2", "--warmup", "0", "--rounds", "1",
                 "--backends", "pytorch,onnxruntime", "--onnx-dir", str(tmp_path / "onnx"), "--out", str(tmp_path)])
    assert code == 0 and (tmp_path / "results.json").is_file()
    assert {p.name for p in (tmp_path / "onnx" / "arch-tiny").iterdir()} == {"model.onnx", "model.fused.onnx", "model.int8.onnx"}
    # no 1x200 case was timed, so no article bars; one latency plot and one CPU speedup plot
    assert {p.name for p in tmp_path.glob("*.png")} == {"latency_arch-tiny.png", "speedup_arch-tiny_cpu.png"}
    assert main(["--from-json", str(tmp_path / "results.json"), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "latency_arch-tiny.png").is_file()
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # the command closes every figure it saved
