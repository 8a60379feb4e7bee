"""Model repository: every config.pbtxt parses with Triton's own model-config protobuf; the writer's layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from google.protobuf.text_format import ParseError

from helpers.errors import CheckpointError, ConfigError
from helpers.serving.model import SERVING_FILE
from helpers.serving.repository import (GPU_BATCHING, Batching, RepositoryConfig, Sources, check_repository,
                                        ensemble_config, onnx_config, parse_config, python_model_config, trt_config,
                                        write_repository)
from helpers.trt.profiles import ProfileSet, ShapeProfile
from serving_fixtures import LOADED_HERE, repository, sources  # noqa: F401  (fixtures)

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


def test_the_instance_group_lists_the_gpus(monkeypatch):
    import helpers.machine as machine

    config = RepositoryConfig.for_device("gpu", gpus="0,1", instances=2)
    group = parse_config(python_model_config("sentiment", config, 2)).instance_group
    assert len(group) == 1 and group[0].kind == 1 and group[0].count == 2 and list(group[0].gpus) == [0, 1]
    visible = (machine.GpuInfo(0, "NVIDIA H200", "9.0"), machine.GpuInfo(1, "NVIDIA H200", "9.0"),
               machine.GpuInfo(2, "NVIDIA H200", "9.0"))
    monkeypatch.setattr(machine, "visible_gpus", lambda environ=None: visible)
    every = RepositoryConfig.for_device("auto")  # a GPU is visible: a GPU repository on each of them
    group = parse_config(python_model_config("sentiment", every, 2)).instance_group[0]
    assert every.device == "gpu" and list(group.gpus) == [0, 1, 2] and group.count == 1
    onnx = parse_config(onnx_config(every, 2)).instance_group[0]
    assert list(onnx.gpus) == [0, 1, 2]
    trt = parse_config(trt_config(ProfileSet((ShapeProfile(1, 8, 32, 1, 48, 128),)), 2, every)).instance_group[0]
    assert list(trt.gpus) == [0, 1, 2] and list(trt.profile) == ["0"]
    monkeypatch.setattr(machine, "visible_gpus", lambda environ=None: ())
    unseen = RepositoryConfig.for_device("gpu")  # written where no GPU is visible: Triton uses every GPU it finds
    assert not parse_config(python_model_config("sentiment", unseen, 2)).instance_group[0].gpus
    assert RepositoryConfig.for_device("auto").device == "cpu"
    with pytest.raises(ConfigError, match="distinct GPU indices"):
        RepositoryConfig.for_device("gpu", gpus="0,0")
    with pytest.raises(ConfigError, match="gpus: give whole numbers"):
        RepositoryConfig.for_device("gpu", gpus="first")
    with pytest.raises(ConfigError, match="only for device 'gpu'"):
        RepositoryConfig(gpus=(0,))


def test_each_device_has_its_own_batching_defaults_and_every_knob_is_an_option():
    cpu, gpu = RepositoryConfig.for_device("cpu"), RepositoryConfig.for_device("gpu", gpus="0")
    assert cpu.batching == Batching(True, (4, 8, 16), 2000) and cpu.instances == 1
    assert gpu.batching == GPU_BATCHING and gpu.classifier_batch is None and gpu.instances == 1
    tuned = RepositoryConfig.for_device("gpu", gpus="0", preferred="32,64", delay_us=100, instances=2)
    assert tuned.batching == Batching(True, (32, 64), 100) and tuned.instances == 2
    assert RepositoryConfig.for_device("gpu", gpus="0", delay_us=-1).batching == GPU_BATCHING
    assert RepositoryConfig.for_device("gpu", gpus="0", delay_us=0).batching.max_queue_delay_us == 0


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


def test_the_engine_goes_into_triton_as_model_plan(tmp_path, sources, monkeypatch):  # noqa: F811
    """The series names engine files *.engine; Triton's TensorRT backend loads <model>/1/model.plan."""
    import dataclasses

    import helpers.trt.metadata as metadata

    engine = tmp_path / "model.fp16.engine"
    engine.write_bytes(b"ENGINE")
    monkeypatch.setattr(metadata, "read_metadata", lambda path: type("Meta", (), {"onnx_file": "model.onnx"}))
    with_engine = dataclasses.replace(sources, files={**sources.files, "engine-fp16": engine},
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
    assert LOADED_HERE <= set(configs) and {"classifier_onnx", "sentiment_onnx"} <= set(configs)
    assert "classifier_trt" in repository.skipped and "classifier_trt" not in configs
    version = repository.root / "sentiment" / "1"
    spec = json.loads((version / SERVING_FILE).read_text())
    assert spec["labels"] == sources.labels and spec["files"] == {"plain": "model.onnx"}
    assert spec["vocab_sha256"] == sources.vocab_sha256 and len(spec["vocab_sha256"]) == 64
    assert (version / "vocab.txt").read_bytes() == sources.vocab.read_bytes()
    assert (version / "model.onnx").read_bytes() == sources.files["plain"].read_bytes()
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


def test_a_changed_vocabulary_is_not_copied_and_the_old_repository_stays(tmp_path, sources):  # noqa: F811
    """The vocabulary's lines shuffled (same size): the writer refuses it with the checkpoint's sentence."""
    import dataclasses

    dest = tmp_path / "repo"
    write_repository(dest, sources)
    before = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    lines = sources.vocab.read_text(encoding="utf-8").splitlines()
    shuffled = tmp_path / "vocab.txt"
    shuffled.write_text("\n".join(lines[1:] + lines[:1]) + "\n", encoding="utf-8")
    assert shuffled.stat().st_size == sources.vocab.stat().st_size
    with pytest.raises(CheckpointError, match="is not the file this checkpoint was saved with"):
        write_repository(dest, dataclasses.replace(sources, vocab=shuffled))
    assert {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file()} == before


def test_sources_from_artifacts_take_the_vocabularys_hash_from_the_checkpoint(tmp_path, sources):  # noqa: F811
    import shutil

    from helpers.config import ArtifactPaths
    from helpers.io import atomic_write_json

    paths = ArtifactPaths(tmp_path / "artifacts")
    paths.checkpoint.mkdir(parents=True)
    paths.onnx.mkdir(parents=True)
    shutil.copy(sources.vocab, paths.checkpoint / "vocab.txt")
    shutil.copy(sources.files["plain"], paths.onnx / "model.onnx")
    atomic_write_json(paths.checkpoint / "checkpoint.json", {"labels": sources.labels, "max_len": sources.max_len,
                                                             "sha256": {"vocab.txt": sources.vocab_sha256}})
    found = Sources.from_artifacts(paths)
    assert found.vocab_sha256 == sources.vocab_sha256 and found.files == {"plain": paths.onnx / "model.onnx"}
    repo = write_repository(tmp_path / "repo", paths)  # ArtifactPaths work as sources too
    assert json.loads((repo.root / "sentiment" / "1" / SERVING_FILE).read_text())["vocab_sha256"] == sources.vocab_sha256


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
