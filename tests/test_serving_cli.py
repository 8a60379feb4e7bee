"""The serving command line: the repository it writes (and measures) follows its options."""

from __future__ import annotations

import json

import pytest

import helpers.serving.measure as measure_module
from helpers.machine import usable_cpus
from helpers.serving.__main__ import main
from helpers.serving.repository import Sources
from serving_fixtures import sources  # noqa: F401  (fixture)


@pytest.fixture
def artifacts(tmp_path, monkeypatch, sources):  # noqa: F811
    monkeypatch.setattr(Sources, "from_artifacts", classmethod(lambda cls, paths: sources))
    return tmp_path / "artifacts"


def written(artifacts):
    repo = artifacts / "serving" / "model_repository"
    return (repo / "sentiment" / "config.pbtxt").read_text(), json.loads((repo / "sentiment" / "1" / "serving.json").read_text())


def test_write_follows_the_options(artifacts):
    assert main(["write", "--artifacts", str(artifacts), "--instances", "2", "--threads", "1", "--max-padding", "none",
                 "--preferred", "2,4", "--delay-us", "500"]) == 0
    config, spec = written(artifacts)
    assert "count: 2 kind: KIND_CPU" in config and "preferred_batch_size: [ 2, 4 ]" in config and "500" in config
    assert spec["threads"] == 1 and spec["max_padding"] is None
    assert main(["write", "--artifacts", str(artifacts)]) == 0  # defaults: one instance on every usable core
    config, spec = written(artifacts)
    assert spec["max_padding"] == 0.2 and spec["threads"] == usable_cpus() and "count: 1 kind: KIND_CPU" in config


def test_a_gpu_repository_on_the_gpus_given_with_the_gpu_defaults(artifacts):
    assert main(["write", "--artifacts", str(artifacts), "--device", "gpu", "--gpus", "0,1"]) == 0
    config, spec = written(artifacts)
    assert "count: 1 kind: KIND_GPU gpus: [ 0, 1 ]" in config and "preferred_batch_size: [ 64, 128, 256 ]" in config
    assert "max_queue_delay_microseconds: 500" in config and spec["batch_size"] is None and spec["max_padding"] is None
    assert main(["write", "--artifacts", str(artifacts), "--device", "gpu", "--gpus", "1", "--instances", "2",
                 "--preferred", "32", "--delay-us", "100"]) == 0
    config, _ = written(artifacts)
    assert "count: 2 kind: KIND_GPU gpus: [ 1 ]" in config and "preferred_batch_size: [ 32 ]" in config
    assert "max_queue_delay_microseconds: 100" in config


def test_measure_writes_the_repository_it_was_asked_for(artifacts, monkeypatch, tmp_path):
    seen = {}

    def fake_run_measurement(paths, repository, sweep, out, **kwargs):
        seen["repository"], seen["config"], seen["sweep"], seen["kwargs"] = repository, written(artifacts), sweep, kwargs
        return {"json": out / "serving.json"}

    monkeypatch.setattr(measure_module, "run_measurement", fake_run_measurement)
    assert main(["measure", "--artifacts", str(artifacts), "--instances", "2", "--threads", "1", "--max-padding", "0.1",
                 "--out", str(tmp_path / "out")]) == 0
    assert seen["repository"] == artifacts / "serving" / "model_repository"
    config, spec = seen["config"]
    assert "count: 2 kind: KIND_CPU" in config and spec["threads"] == 1 and spec["max_padding"] == 0.1
    assert seen["sweep"].concurrencies == (1, 2, 4, 8, 16, 32) and seen["kwargs"]["device"] == "cpu"
    assert main(["measure", "--artifacts", str(artifacts), "--device", "gpu", "--gpus", "0", "--sentences", "500",
                 "--perf-ms", "2000", "--out", str(tmp_path / "out")]) == 0
    assert seen["sweep"].concurrencies == (1, 4, 16, 64, 128) and seen["sweep"].perf.measurement_ms == 2000
    assert seen["kwargs"]["device"] == "gpu" and seen["kwargs"]["texts_limit"] == 500


def test_bad_padding_cap_is_refused(artifacts, capsys):
    with pytest.raises(SystemExit):
        main(["write", "--artifacts", str(artifacts), "--max-padding", "lots"])
    assert "'none'" in capsys.readouterr().err
    assert main(["write", "--artifacts", str(artifacts), "--max-padding", "1.5"]) == 1
    assert "max_padding" in capsys.readouterr().err
