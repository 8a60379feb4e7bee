"""The load tool and the measurement record: every request counted, statistics beside the client's, goals, plot."""

from __future__ import annotations

import json

import pytest

from helpers.backends import Classifier, OrtBackend
from helpers.errors import ConfigError, ServingError
from helpers.serving.load import LoadResult, LoadSpec, run_load
from helpers.serving.measure import (GPU_GOALS, SweepConfig, compare_served, cpu_goals, gpu_goals, in_process_ceiling,
                                     judged, results_record, save_results, serving_tables, sweep)
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
    backend = OrtBackend(sources.files["plain"])
    ceiling = in_process_ceiling(Classifier(tokenizer, backend, sources.labels), sentences[0], config.ceiling_requests)
    quiet = {"host": {"usable_cpus": 2}, "cpu_busy": 0.1, "gpu": None}
    record = results_record(rows, ceiling, config=config, server={"http": served.http_url}, repository={},
                            env=quiet, note="test run")
    assert record["reference"] is False and record["cpu"]["model"] and isinstance(record["cpu"]["flags"], list)
    assert len(record["goals"]) == 6 and all(g["met"] in (True, False) for g in record["goals"])
    assert record["perf_analyzer"] == {"ran": False, "skipped": "not asked for", "cases": []}
    paths = save_results(record, tmp_path)
    assert json.loads(paths["json"].read_text())["cases"] == rows and paths["plot"].stat().st_size > 10_000
    tables = serving_tables(record)
    header, table = tables["load tool"]
    assert len(table) == len(rows) and len(header) == len(table[0])
    assert tables["perf_analyzer"] == (["perf_analyzer"], [("not asked for",)])
    assert [row[3] for row in tables["goals"][1]] == [g["verdict"] for g in record["goals"]]


def test_goal_arithmetic():
    def row(protocol, batching, c, rate, p50):
        return {"protocol": protocol, "batching": batching, "concurrency": c, "sentences_per_s": rate, "p50_ms": p50}

    rows = [row("http", "batching", 1, 100, 5.0), row("http", "batching", 16, 250, 30.0),
            row("http", "no batching", 16, 200, 40.0), row("http", "no batching", 1, 110, 4.5)]
    values = [(g["measured"], g["met"], g["verdict"]) for g in cpu_goals(rows, {"p50_ms": 3.0})]
    assert values == [(2.5, True, "met"), (1.25, False, "not met"), (1.5, True, "met")]
    missing = cpu_goals(rows[:1], {"p50_ms": 3.0})
    assert missing[0]["met"] is None and missing[0]["verdict"] == "not measured: a case it needs did not run"


def _perf(*cases, ran=True):
    return {"ran": ran, "skipped": None if ran else "perf_analyzer is skipped: glibc", "cases": list(cases)}


def test_gpu_goals_take_perf_analyzer_grpc_at_concurrency_64_or_more():
    def case(protocol, c, rate, p99, batching="batching"):
        return {"protocol": protocol, "batching": batching, "concurrency": c, "sentences_per_s": rate, "p99_ms": p99}

    perf = _perf(case("grpc", 32, 15_000, 4.0), case("grpc", 64, 12_000, 9.5), case("grpc", 128, 11_000, 20.0),
                 case("http", 128, 30_000, 5.0), case("grpc", 128, 40_000, 3.0, "no batching"),
                 {"protocol": "grpc", "batching": "batching", "concurrency": 256, "error": "exit status 1"})
    goal, moonshot = gpu_goals(perf)
    assert goal["met"] is True and moonshot["met"] is False and goal["protocol"] == "grpc"
    assert goal["measured"] == "12,000 sentences/s at concurrency 64, p99 9.5 ms" and "p99" in goal["goal"]
    assert f"{GPU_GOALS['sentences_per_s']:,}" in goal["goal"] and moonshot["verdict"] == "not met"
    skipped = gpu_goals(_perf(ran=False))
    assert all(g["met"] is None and g["verdict"] == "not measured: perf_analyzer is skipped: glibc" for g in skipped)
    low_only = gpu_goals(_perf(case("grpc", 16, 50_000, 1.0)))
    assert low_only[0]["met"] is None and "concurrency >= 64" in low_only[0]["verdict"]


def test_a_busy_machine_shows_the_figures_and_withholds_the_verdicts():
    goals = [{"protocol": "grpc", "goal": "g", "measured": 2.65, "met": True, "verdict": "met"},
             {"protocol": "grpc", "goal": "h", "measured": None, "met": None, "verdict": "not measured: x"}]
    busy = {"host": {"usable_cpus": 2}, "cpu_busy": 1.4}
    withheld = judged(goals, busy)
    assert withheld[0]["measured"] == 2.65 and withheld[0]["met"] is None
    assert withheld[0]["verdict"] == "not judged: the CPUs were busy (other processes kept 1.4 of 2 CPUs busy just before the run)"
    assert withheld[1] == goals[1]
    assert judged(goals, {"host": {"usable_cpus": 2}, "cpu_busy": 0.2}) == goals


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
