"""environment/gpu/build_engines_gpu.py on the CPU: real TensorRT-RTX builds of the tiny architecture.

On the GPU machine the script builds the BERT-base architecture; here the same script runs end to end with
``--arch tiny`` (TensorRT-RTX builds without a GPU), so its profile choice, builds, runtime verdicts and the
JSON it writes are tested for real. Only what a GPU adds (deserialization on an RTX-class GPU) is not.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from helpers.machine import visible_gpus
from helpers.trt import compat
from helpers.trt.profiles import ProfileSet

SCRIPT = Path(__file__).resolve().parents[1] / "environment" / "gpu" / "build_engines_gpu.py"
rtx = compat.import_tensorrt("tensorrt-rtx")


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("build_engines_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sentences):
    texts, labels = sentences
    folder = tmp_path_factory.mktemp("corpus")
    for name, label in (("neg.txt", 0), ("pos.txt", 1)):
        rows = [t * (1 + i % 4) for i in range(10) for t, y in zip(texts, labels) if y == label]
        (folder / name).write_text("\n".join(f"{r}{i}" for i, r in enumerate(rows)) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def run(script, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    rc = script.main(["--out", str(out), "--corpus", str(corpus), "--arch", "tiny", "--batch-sizes", "1,8",
                      "--max-len", "32", "--flavour", "tensorrt-rtx", "--work", str(out / "work")])
    return rc, out, json.loads((out / "engines.json").read_text(encoding="utf-8"))


def test_builds_both_precisions_and_records_them(run):
    rc, out, record = run
    assert rc == 0 and set(record["builds"]) == {"fp16", "fp32"}
    assert (record["flavour"], record["tensorrt_version"]) == ("tensorrt-rtx", rtx.__version__)
    profile_set = ProfileSet.from_dicts(record["profiles"])
    assert profile_set.max_batch == 8 and profile_set.max_len == 32
    assert len(profile_set.profiles) >= 2  # 04's choice: latency + throughput
    for precision, build in record["builds"].items():
        assert build["built"] and build["engine_bytes"] > 100_000 and build["seconds"] > 0
        assert build["onnx_file"] == ("model.fp16.onnx" if precision == "fp16" else "model.onnx")
        assert build["network"] == {"inputs": {"input_ids": "int32", "segment_ids": "int32"},
                                    "outputs": {"logits": "float32"}} and build["precision"] == precision
        sidecar = json.loads((out / f"model.{precision}.engine.json").read_text(encoding="utf-8"))
        assert sidecar["profiles"] == record["profiles"] and sidecar["flavour"] == "tensorrt-rtx"
    assert record["builds"]["fp16"]["engine_bytes"] < record["builds"]["fp32"]["engine_bytes"]
    assert record["workspace_mib"] == 4096 and record["length_stats"]["max_len"] == 32
    assert not (out / "model.fp16.engine").exists()  # engines stay in --work unless --keep-engines


@pytest.mark.skipif(bool(visible_gpus()), reason="records what a machine without a GPU answers")
def test_records_the_runtime_refusals_without_a_gpu(run):
    runtime = run[2]["builds"]["fp16"]["runtime"]
    assert runtime["deserialized"] is False and "cudaError 35" in runtime["refusal"]
    assert runtime["sidecar_check"].startswith("no NVIDIA GPU 0 is visible here")
    assert runtime["engine_validity"]["validity"] == "INVALID" and "MALFORMED_ENGINE" not in runtime["engine_validity"]["diagnostics"]
    assert run[2]["gpu"] == {"none": runtime["sidecar_check"]} == {"none": run[2]["runs_here"]}


def test_bad_arguments_are_refused(script, capsys, tmp_path):
    for argv, message in ((["--out", str(tmp_path), "--precisions", "int8"], "--precisions must name some of"),
                          (["--out", str(tmp_path), "--max-len", "4"], "--max-len must be >= 8"),
                          (["--out", str(tmp_path), "--corpus", "a", "--length-stats", "b"], "not allowed with")):
        with pytest.raises(SystemExit):
            script.parse_args(argv)
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit, match="must name a length_stats.json written by 01_train"):
        script.main(["--out", str(tmp_path), "--length-stats", str(tmp_path / "missing.json"), "--flavour", "tensorrt-rtx"])
