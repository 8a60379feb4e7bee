"""Line-ups, the architecture model's ONNX set, accuracy passes and the command line, on a tiny model (CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.backends.base import Backend
from helpers.bench import Shape, TimingConfig, time_side_by_side
from helpers.bench.accuracy import classify_with_each
from helpers.bench.lineup import LineupConfig, build_lineup, combine, cpu_token_rule, only_at
from helpers.bench.models import ArchitectureModel, architecture_model, ensure_onnx_set
from helpers.bench.system import ThreadSettings
from helpers.errors import BackendError, ConfigError, MissingArtifactError

THREADS = ThreadSettings(torch_intra_op=1, torch_inter_op=1, ort_intra_op=1)


@pytest.fixture(scope="module")
def arch_set(tmp_path_factory) -> tuple[ArchitectureModel, dict]:
    arch = architecture_model("tiny", vocab_size=300)
    folder = tmp_path_factory.mktemp("arch")
    return arch, ensure_onnx_set(arch, folder, ("plain", "fused", "int8"), log=None)


def test_architecture_model_is_seeded():
    a, b = architecture_model("tiny", vocab_size=300, seed=3), architecture_model("tiny", vocab_size=300, seed=3)
    for (_, p), (_, q) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert (p == q).all()
    assert a.model_size == "tiny" and a.vocab_size == 300 and not a.model.training


def test_onnx_set_is_written_once_with_prerequisites(arch_set, tmp_path):
    _, onnx = arch_set
    assert {v: p.name for v, p in onnx.items()} == {"plain": "model.onnx", "fused": "model.fused.onnx", "int8": "model.int8.onnx"}
    assert all(p.is_file() for p in onnx.values())
    stamp = onnx["plain"].stat().st_mtime_ns
    logged: list[str] = []
    ensure_onnx_set(arch_set[0], onnx["plain"].parent, ("plain", "int8"), log=logged.append)
    assert logged == [] and onnx["plain"].stat().st_mtime_ns == stamp  # nothing rewritten
    with pytest.raises(MissingArtifactError, match="unknown ONNX variants"):
        ensure_onnx_set(arch_set[0], tmp_path, ("int4",))


def test_cpu_lineup_builds_and_records_gpu_skips(arch_set):
    arch, onnx = arch_set
    with build_lineup(arch.model, onnx, name="arch-tiny", threads=THREADS, cuda=False) as lineup:
        assert list(lineup.backends) == ["pytorch", "onnxruntime", "onnxruntime-fused", "onnxruntime-int8"]
        assert lineup.reference == "pytorch"
        assert lineup.backends["onnxruntime"].describe()["intra_op_threads"] == 1
        reasons = {s.backend: s.reason for s in lineup.skipped}
        assert set(reasons) == {"pytorch-cuda", "torch-cuda-fp16", "torch-cuda-fp16-graph", "torch-compile",
                                "ort-cuda", "ort-cuda-fused", "ort-cuda-fused-rightpad", "tensorrt-fp32",
                                "tensorrt-fp16"}
        assert all("no CUDA GPU here" in r for r in reasons.values())
        ms, _ = time_side_by_side(lineup.backends, [Shape(1, 16)], TimingConfig(warmup=1, iters=2, rounds=1),
                                  model="arch-tiny", vocab_size=arch.vocab_size, reference=lineup.reference, log=None)
        diffs = {m.backend: m.max_abs_diff for m in ms}
        assert diffs["onnxruntime"] < 1e-4 and diffs["onnxruntime-fused"] < 1e-4 and diffs["onnxruntime-int8"] < 0.1
    assert lineup.backends == {}


def test_missing_onnx_file_becomes_a_skip_naming_notebook_02(arch_set, tmp_path):
    arch, onnx = arch_set
    cfg = LineupConfig(cpu=("onnxruntime-int8",), gpu=())
    lineup = build_lineup(arch.model, {"int8": tmp_path / "absent.onnx"}, name="m", threads=THREADS, config=cfg, cuda=False)
    assert lineup.backends == {} and "run notebook 02_onnx_export first" in lineup.skipped[0].reason
    with pytest.raises(BackendError, match="unknown CPU backend 'ort'"):
        build_lineup(arch.model, onnx, name="m", threads=THREADS, config=LineupConfig(cpu=("ort",), gpu=()), cuda=False)


class _Dev(Backend):
    def __init__(self, device: str) -> None:
        super().__init__()
        self.device = device

    def _run(self, input_ids, segment_ids):
        return np.zeros((input_ids.shape[0], 2), np.float32)


def test_skip_rules():
    rule = combine(cpu_token_rule(256), only_at("torch-compile", {(1, 200)}))
    cpu, gpu = _Dev("cpu"), _Dev("cuda")
    assert rule("pytorch", cpu, Shape(8, 32)) is None
    assert "up to 256 tokens" in rule("pytorch", cpu, Shape(8, 64))
    assert rule("pytorch-cuda", gpu, Shape(32, 512)) is None
    assert "timed only at [(1, 200)]" in rule("torch-compile-fp16-max-autotune", gpu, Shape(1, 128))
    assert rule("torch-compile-fp16-max-autotune", gpu, Shape(1, 200)) is None
    assert cpu_token_rule(0)("pytorch", cpu, Shape(32, 512)) is None


def test_accuracy_pass_with_and_without_bucketing(arch_set, tokenizer, sentences):
    arch, onnx = arch_set
    texts, labels = sentences
    lineup = build_lineup(arch.model, onnx, name="m", threads=THREADS, cuda=False,
                          config=LineupConfig(cpu=("pytorch", "onnxruntime", "onnxruntime-int8"), gpu=()))
    # the architecture model's vocabulary (300) covers the fixture tokenizer's ids
    assert tokenizer.vocab_size <= arch.vocab_size
    records, skipped = classify_with_each(
        lineup.backends, tokenizer, ["negative", "positive"], texts, np.array(labels), model="m", batch_size=4,
        reference="pytorch", exclude=lambda n: "left out on purpose" if n == "onnxruntime-int8" else None, log=None)
    assert [(r.backend, r.bucketing) for r in records] == [("pytorch", True), ("onnxruntime", True),
                                                           ("pytorch", False), ("onnxruntime", False)]
    assert all(r.count == len(texts) and 0.0 <= r.accuracy <= 1.0 for r in records)
    assert records[1].agreement_with_reference == 1.0 and records[0].agreement_with_reference == 1.0
    assert records[0].padding_fraction < records[2].padding_fraction  # bucketing pads less
    assert [(s.backend, s.reason) for s in skipped] == [("onnxruntime-int8", "left out on purpose")]
    assert all(r.pad_multiple == 1 for r in records)
    with pytest.raises(ConfigError, match="as many targets as texts"):
        classify_with_each(lineup.backends, tokenizer, ["n", "p"], texts, np.array(labels[:-1]), model="m", log=None)

    # gpu_pad_multiple reaches GPU backends only (here one ORT session stands in for a GPU backend)
    lineup.backends["onnxruntime"].device = "cuda"
    rounded, _ = classify_with_each(
        lineup.only("pytorch", "onnxruntime"), tokenizer, ["negative", "positive"], texts, np.array(labels),
        model="m", batch_size=4, reference="pytorch", bucketing=(True,), gpu_pad_multiple=8, log=None)
    by_name = {r.backend: r for r in rounded}
    assert by_name["pytorch"].pad_multiple == 1 and by_name["onnxruntime"].pad_multiple == 8
    assert by_name["onnxruntime"].padding_fraction > by_name["pytorch"].padding_fraction
    assert by_name["onnxruntime"].agreement_with_reference == 1.0  # the extra padding changes no prediction
    lineup.close()


def test_command_line_redraws_a_result(tmp_path, arch_set):
    from helpers.bench.__main__ import main

    arch, onnx = arch_set
    code = main(["--arch", "tiny", "--shapes", "1x16,1x32", "--iters", "2", "--warmup", "0", "--rounds", "1",
                 "--cpu", "pytorch,onnxruntime", "--gpu", "", "--onnx-dir", str(tmp_path / "onnx"), "--out", str(tmp_path)])
    assert code == 0 and (tmp_path / "results.json").is_file()
    # no 1x200 case was timed, so no article bars; one latency plot and one CPU speedup plot
    assert {p.name for p in tmp_path.glob("*.png")} == {"latency_arch-tiny.png", "speedup_arch-tiny_cpu.png"}
    assert main(["--from-json", str(tmp_path / "results.json"), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "latency_arch-tiny.png").is_file()
