"""The load tool and the measurement record: every request counted, statistics beside the client's, goals, plot."""

from __future__ import annotations

import json

import pytest

from helpers.backends import Classifier, OrtBackend
from helpers.errors import ConfigError, ServingError
from helpers.serving.load import LoadResult, LoadSpec, run_load
from helpers.serving.measure import (SweepConfig, cases_table, compare_goals, compare_served, in_process_ceiling,
                                     results_record, save_results, sweep)
from serving_fixtures import repository, served, sources  # noqa: F401  (fixtures)


def test_load_spec_and_check_refuse_nonsense():
    with pytest.raises(ConfigError, match="never ends"):
        LoadSpec("x:1", requests=0)
    broken = LoadResult(LoadSpec("x:1"), sent=3, answered=1, latencies_ms=[1.0])
    with pytest.raises(ServingError, match="requests were lost"):
        broken.check()


def test_unreachable_server_every_request_failed_with_a_reason(sentences):
    from helpers.serving.server import free_ports

    port = free_ports(1)[0]
    for protocol in ("http", "grpc"):
        result = run_load(LoadSpec(f"127.0.0.1:{port}", protocol, concurrency=2, requests=10, timeout_s=2), sentences[0])
        assert result.sent == 10 and result.answered == 0 and result.failed == {"server unavailable": 10}


def test_sweep_record_goals_and_plot(served, sources, tokenizer, sentences, tmp_path):  # noqa: F811
    config = SweepConfig(concurrencies=(1, 16), requests=32, warmup_requests=4, ceiling_requests=20,
                         min_requests_per_client=2)
    rows = sweep({"http": served.http_url, "grpc": served.grpc_url}, sentences[0], config, progress=False)
    assert len(rows) == 2 * 2 * 2
    for row in rows:
        expected = config.requests_at(row["concurrency"])
        assert row["sent"] == row["answered"] == expected and row["failed"] == {}
        assert row["server"]["requests"] == expected and row["server"]["inferences"] == expected
        if row["batching"] == "no batching":
            assert set(row["server"]["batch_sizes"]) == {"1"}
    backend = OrtBackend(sources.onnx["plain"])
    ceiling = in_process_ceiling(Classifier(tokenizer, backend, sources.labels), sentences[0], config.ceiling_requests)
    record = results_record(rows, ceiling, config=config, server={"http": served.http_url}, repository={},
                            note="test run")
    assert record["reference"] is False and record["cpu"]["model"] and isinstance(record["cpu"]["flags"], list)
    assert len(record["goals"]) == 6 and all(g["met"] in (True, False) for g in record["goals"])
    paths = save_results(record, tmp_path)
    assert json.loads(paths["json"].read_text())["cases"] == rows and paths["plot"].stat().st_size > 10_000
    header, table = cases_table(rows)
    assert len(table) == len(rows) and len(header) == len(table[0])


def test_goal_arithmetic():
    def row(protocol, batching, c, rate, p50):
        return {"protocol": protocol, "batching": batching, "concurrency": c, "sentences_per_s": rate, "p50_ms": p50}

    rows = [row("http", "batching", 1, 100, 5.0), row("http", "batching", 16, 250, 30.0),
            row("http", "no batching", 16, 200, 40.0), row("http", "no batching", 1, 110, 4.5)]
    goals = {g["goal"].split(" ")[0] + str(i): g for i, g in enumerate(compare_goals(rows, {"p50_ms": 3.0}))}
    values = [(g["measured"], g["met"]) for g in goals.values()]
    assert values == [(2.5, True), (1.25, False), (1.5, True)]


def _prediction(p_positive):
    import numpy as np

    from helpers.backends.classifier import Prediction

    probs = np.stack([1 - np.asarray(p_positive), np.asarray(p_positive)], axis=1)
    labels = ["positive" if p > 0.5 else "negative" for p in p_positive]
    return Prediction(labels, probs.argmax(1), probs, np.log(probs), 1, 0, 0, 0)


def test_served_answers_may_flip_only_on_the_fence():
    local = _prediction([0.9, 0.501, 0.2, 0.7])
    fence_flip = [_prediction([0.91, 0.49]), _prediction([0.21, 0.69])]  # one request of two, then another
    report = compare_served(local, fence_flip, "ort-cpu-int8")
    assert report["ok"] and report["flips"] == 1 and report["flips_off_the_fence"] == 0
    assert report["agreement"] == 0.75 and abs(report["max_probability_diff"] - 0.011) < 1e-9
    far_flip = [_prediction([0.3, 0.5, 0.2, 0.7])]  # a confident sentence changed its answer
    assert not compare_served(local, far_flip, "ort-cpu-int8")["ok"]
    drift = [_prediction([0.9, 0.501, 0.2, 0.702])]  # no flip, but more than a float model may move
    assert compare_served(local, drift, "ort-cpu-int8")["ok"] and not compare_served(local, drift, "ort-cuda-fp16")["ok"]
    with pytest.raises(ServingError, match="3 served answers for 4 sentences"):
        compare_served(local, [_prediction([0.9, 0.5, 0.2])], "ort-cpu-int8")
