"""Model repository: every config.pbtxt parses with Triton's own model-config protobuf; the writer's layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from google.protobuf.text_format import ParseError

from helpers.errors import ConfigError
from helpers.serving.model import SERVING_FILE
from helpers.serving.repository import (LOADABLE_HERE, Batching, RepositoryConfig, check_repository, ensemble_config,
                                        onnx_config, parse_config, python_model_config, trt_config, write_repository)
from helpers.trt.profiles import ProfileSet, ShapeProfile
from serving_fixtures import repository, sources  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]


def test_python_model_config_fields():
    cfg = parse_config(python_model_config("sentiment", RepositoryConfig(), num_labels=2))
    assert cfg.backend == "python" and cfg.max_batch_size == 1024
    assert [(i.name, i.data_type, list(i.dims)) for i in cfg.input] == [("TEXT", 13, [1])]  # 13: TYPE_STRING
    assert {o.name: list(o.dims) for o in cfg.output} == {"LABEL": [1], "PROBABILITIES": [2]}
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8, 16]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 2000
    assert cfg.instance_group[0].kind == 2 and cfg.instance_group[0].count == 1  # KIND_CPU


def test_no_batching_writes_no_dynamic_batching_block():
    cfg = parse_config(python_model_config("x", RepositoryConfig(), 2, Batching(enabled=False)))
    assert not cfg.HasField("dynamic_batching")


def test_gpu_instances_and_preferred_sizes_capped_by_max_batch():
    config = RepositoryConfig(device="gpu", max_batch_size=8, batching=Batching(True, (4, 8, 16, 32), 500))
    cfg = parse_config(python_model_config("x", config, 3))
    assert cfg.instance_group[0].kind == 1  # KIND_GPU
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]


def test_misspelt_field_fails():
    text = python_model_config("sentiment", RepositoryConfig(), 2).replace("max_queue_delay_microseconds", "max_queue_delay_us")
    with pytest.raises(ParseError):
        parse_config(text)


def test_onnx_and_ensemble_configs():
    config = RepositoryConfig()
    onnx = parse_config(onnx_config(config, 2, threads=2))
    assert onnx.platform == "onnxruntime_onnx" and [i.data_type for i in onnx.input] == [8, 8]  # TYPE_INT32
    assert list(onnx.input[0].dims) == [-1] and onnx.parameters["intra_op_thread_count"].string_value == "2"
    ens = parse_config(ensemble_config("sentiment_onnx", "classifier_onnx", 2, 64))
    steps = ens.ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["tokenizer", "classifier_onnx", "postprocess"]
    assert dict(steps[1].input_map) == {"input_ids": "ids", "segment_ids": "segments"}
    assert dict(steps[2].output_map) == {"LABEL": "LABEL", "PROBABILITIES": "PROBABILITIES"}


def test_tensorrt_config_follows_the_engine_profiles():
    profile_set = ProfileSet((ShapeProfile(1, 1, 1, 1, 48, 128), ShapeProfile(2, 32, 32, 1, 48, 128)))
    cfg = parse_config(trt_config(profile_set, 2, RepositoryConfig()))
    assert cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 32
    assert list(cfg.instance_group[0].profile) == ["0", "1"] and cfg.instance_group[0].kind == 1
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8, 16]


def test_the_engine_goes_into_triton_as_model_plan(tmp_path, sources):  # noqa: F811
    """The series names engine files *.engine; Triton's TensorRT backend loads <model>/1/model.plan."""
    import dataclasses

    engine = tmp_path / "model.fp16.engine"
    engine.write_bytes(b"ENGINE")
    with_engine = dataclasses.replace(sources, engine=engine,
                                      profile_set=ProfileSet((ShapeProfile(1, 8, 32, 1, 48, 128),)))
    repository = write_repository(tmp_path / "repo", with_engine)
    assert "classifier_trt" in repository.models and "classifier_trt" not in repository.skipped
    assert [p.name for p in (repository.root / "classifier_trt" / "1").iterdir()] == ["model.plan"]
    assert (repository.root / "classifier_trt" / "1" / "model.plan").read_bytes() == b"ENGINE"


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="device"):
        RepositoryConfig(device="tpu")
    with pytest.raises(ConfigError, match="preferred"):
        Batching(True, (0,), 100)


def test_written_repository(repository, sources):  # noqa: F811
    configs = check_repository(repository.root)
    assert set(LOADABLE_HERE) <= set(configs) and {"classifier_onnx", "sentiment_onnx"} <= set(configs)
    assert "classifier_trt" in repository.skipped and "classifier_trt" not in configs
    version = repository.root / "sentiment" / "1"
    spec = json.loads((version / SERVING_FILE).read_text())
    assert spec["labels"] == sources.labels and spec["files"] == {"plain": "model.onnx"}
    assert (version / "model.onnx").read_bytes() == sources.onnx["plain"].read_bytes()
    assert "SentimentModel as TritonPythonModel" in (version / "model.py").read_text()
    assert (repository.root / "classifier_onnx" / "1" / "model.onnx").is_file()


def test_padding_cap_on_cpu_only(tmp_path, sources):  # noqa: F811
    """A CPU repository caps each Classifier call's padding (the batcher joins sentences of any length); a GPU one
    keeps batches whole. The cap travels in serving.json to the model's Classifier."""
    from helpers.serving.model import ServingSpec

    cpu = write_repository(tmp_path / "cpu", sources)
    gpu = write_repository(tmp_path / "gpu", sources, RepositoryConfig(device="gpu"))
    for name in ("sentiment", "sentiment_nobatch"):
        assert ServingSpec.read(cpu.root / name / "1").max_padding == RepositoryConfig().max_padding == 0.2
        assert ServingSpec.read(gpu.root / name / "1").max_padding is None
    spec = ServingSpec.read(cpu.root / "sentiment" / "1")
    assert ServingSpec(**{**spec.__dict__, "max_padding": 0.5}).to_dict()["max_padding"] == 0.5
    with pytest.raises(ConfigError, match="max_padding"):
        RepositoryConfig(max_padding=1.0)


def test_instances_and_threads_defaults():
    from helpers.serving.repository import instances_and_threads

    assert instances_and_threads("cpu", cpus=2) == (1, 2)  # one instance on every core
    assert instances_and_threads("cpu", 2, cpus=2) == (2, 1)  # given instances share the cores
    assert instances_and_threads("cpu", 3, cpus=2) == (3, 1) and instances_and_threads("cpu", 0, 4, cpus=2) == (1, 4)
    assert instances_and_threads("gpu") == (1, 0) and instances_and_threads("gpu", 2, 3) == (2, 3)
    with pytest.raises(ConfigError, match="instances and threads"):
        instances_and_threads("cpu", -1)


def test_rewrite_replaces_only_when_complete(tmp_path, sources, monkeypatch):  # noqa: F811
    dest = tmp_path / "repo"
    write_repository(dest, sources)
    before = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    import helpers.serving.repository as repo_module

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(repo_module, "tokenizer_config", broken)
    with pytest.raises(RuntimeError):
        write_repository(dest, sources)
    after = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert after == before and not (tmp_path / "repo.new").exists()


def test_check_repository_refuses_a_renamed_folder(tmp_path, sources):  # noqa: F811
    repo = write_repository(tmp_path / "repo", sources)
    (repo.root / "sentiment").rename(repo.root / "renamed")
    with pytest.raises(ConfigError, match="differs from its folder"):
        check_repository(repo.root)


def test_kubernetes_manifest():
    docs = list(yaml.safe_load_all((ROOT / "serving" / "k8s" / "triton.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler"} <= set(kinds)
    deployment, service, hpa = kinds["Deployment"], kinds["Service"], kinds["HorizontalPodAutoscaler"]
    assert deployment["spec"]["replicas"] >= 2 and hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["containerPort"] for p in container["ports"]}
    assert ports == {8000, 8001, 8002} and {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
