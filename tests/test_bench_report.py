"""Benchmark results as data (JSON round trip), Markdown tables and plots, from hand-made measurements."""

from __future__ import annotations

import json

import pytest

import matplotlib.pyplot as plt

from helpers.bench import AccuracyRecord, BenchResult, LatencyStats, Measurement, Skip
from helpers.bench.plots import plot_latency_vs_seq, plot_shape_bars, plot_speedup, plot_text_rates, save_figure
from helpers.bench.report import (article_comparison, fmt_ms, goals_table, latency_table, machine_table,
                                  markdown_table, skipped_table, speedups, sweep_table, text_table)
from helpers.errors import ConfigError, MissingArtifactError

ENV = {"measured_utc": "2026-01-01T00:00:00+00:00",
       "host": {"cpu_model": "Test CPU", "usable_cpus": 2, "python": "3.11.7"},
       "gpu": None, "versions": {"torch": "2.13.0", "onnxruntime": "1.32.0"}, "threads": {"torch_intra_op": 2}}


def meas(backend: str, batch: int, seq: int, median: float, model: str = "m", dev: float | None = None,
         device: str = "cpu") -> Measurement:
    lat = LatencyStats.from_samples([median * 0.9, median, median * 1.1])
    return Measurement(model=model, backend=backend, device=device, precision="fp32", batch=batch, seq_len=seq,
                       latency=lat, throughput_per_s=lat.throughput(batch), first_call_ms=3 * median,
                       round_medians_ms=[median], drift=0.0,
                       device_compute=LatencyStats.from_samples([dev]) if dev is not None else None,
                       max_abs_diff=1e-5)


@pytest.fixture
def result() -> BenchResult:
    r = BenchResult(environment=ENV, timing={"iters": 3})
    for seq, base in ((32, 10.0), (64, 20.0), (128, 40.0)):
        r.add([meas("torch-fp32", 1, seq, base), meas("ort-int8", 1, seq, base / 4, dev=base / 8),
               meas("torch-fp32", 8, seq, 6 * base), meas("ort-int8", 8, seq, base)])
    r.add(skipped=[Skip("m", "trt-fp16", "*", "TensorRT is not installed")],
          accuracy=[AccuracyRecord("m", "ort-int8", "test", 100, 0.9, True, 0.5, 200.0, 32, 0.99, "torch-fp32",
                                   batches=4, model_only_seconds=0.4, tokenize_seconds=0.05, device="cpu")])
    return r


def test_json_round_trip_is_exact(tmp_path, result):
    path = result.save(tmp_path / "bench" / "results.json")
    again = BenchResult.load(path)
    assert again.to_dict() == result.to_dict()
    assert json.loads(path.read_text())["schema"] == 1
    assert not list(path.parent.glob(".*.tmp"))  # nothing half-written left behind


def test_load_missing_result_names_the_notebook(tmp_path):
    with pytest.raises(MissingArtifactError, match="run notebook 06_benchmark"):
        BenchResult.load(tmp_path / "nope.json")


def test_select_and_median(result):
    assert len(result.select(model="m", backend="ort-int8")) == 6
    assert result.median_ms("m", "ort-int8", 1, 64) == 5.0
    with pytest.raises(KeyError, match="trt-fp16"):
        result.median_ms("m", "trt-fp16", 1, 64)


def test_speedups(result):
    s = speedups(result, "m", "torch-fp32")
    assert s[("ort-int8", 1, 32)] == pytest.approx(4.0)
    assert s[("ort-int8", 8, 128)] == pytest.approx(6.0)
    assert s[("torch-fp32", 1, 32)] == pytest.approx(1.0)


def test_markdown_table_shape_and_escaping():
    text = markdown_table(["a", "b"], [["x|y", 1]], [False, True])
    assert text.splitlines() == ["| a | b |", "|---|---:|", "| x\\|y | 1 |"]
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        markdown_table(["a", "b"], [[1]])


def test_latency_table_sorted_with_speedup_and_gpu_compute(result):
    text = str(latency_table(result, "m", 1, 64, baseline="torch-fp32"))
    rows = text.splitlines()[2:]
    assert rows[0].startswith("| ort-int8 ") and "4.00x" in rows[0] and "| 2.5 |" in rows[0]
    assert rows[1].startswith("| torch-fp32 ") and "1.00x" in rows[1]
    marked = str(latency_table(result, "m", 1, 64, deployed=["ort-int8"])).splitlines()[2]
    assert marked.startswith("| **ort-int8** (deployed) | cpu |")


def test_sweep_table_marks_missing(result):
    result.add([meas("ort-fused", 1, 32, 1.0)])
    table = sweep_table(result, "m")
    text = table._repr_markdown_()
    assert text == str(table)  # a notebook shows the same Markdown that str() gives
    assert "| 1x32 | 10 | 2.5 | 1 |" in text
    assert "| 8x128 | 240 | 40 | - |" in text


def test_text_skip_machine_article_tables(result):
    text = str(text_table(result, "m"))
    assert "| ort-int8 | yes | 100 | 90.00% | 99.0% | - | 4 | 200 | 250 | 80.0% | 10.0% |" in text
    assert "TensorRT is not installed" in str(skipped_table(result))
    machine = str(machine_table({**ENV, "cpu_busy": 0.0}))
    assert "| device | 2-core CPU (Test CPU) |" in machine and "torch 2.13.0" in machine and "2026-01-01" in machine
    assert "| CPUs at the start | quiet |" in machine
    busy = str(machine_table({**ENV, "cpu_busy": 1.5}))
    assert "| CPUs at the start | other processes kept 1.5 of 2 CPUs busy just before the run |" in busy
    result.add([meas("pytorch", 1, 200, 209.0)])
    art = str(article_comparison(result, "m"))
    assert "| PyTorch, CPU | original article | 144 |" in art and "| PyTorch fp32 eager, CPU | 2-core CPU (Test CPU) | 209 |" in art


def test_fmt_ms():
    assert [fmt_ms(x) for x in (0.6523, 38.14, 209.4, None)] == ["0.652", "38.1", "209", "-"]


def test_plots_are_pyplot_figures_written_as_png(tmp_path, result):
    plt.close("all")
    result.add([meas("gpu-a", 1, 32, 1.0, device="cuda:0"), meas("gpu-a", 1, 64, 1.5, device="cuda:0")])
    figures = {"lat": plot_latency_vs_seq(result, "m"), "speed": plot_speedup(result, "m", "torch-fp32"),
               "bars": plot_shape_bars(result, "m", 1, 64), "texts": plot_text_rates(result, "m")}
    # pyplot figures: a notebook's plt.show() draws them as images (a bare Figure would show as text)
    assert sorted(plt.get_fignums()) == sorted(f.number for f in figures.values())
    for name, fig in figures.items():
        path = save_figure(fig, tmp_path / f"{name}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(figures["lat"].axes) == 2  # one panel per batch size
    speed_lines = {line.get_label() for ax in figures["speed"].axes for line in ax.get_lines()}
    assert "ort-int8" in speed_lines and "gpu-a" not in speed_lines  # CPU backends only over a CPU baseline
    plt.close("all")


def test_plots_name_what_is_missing(result):
    with pytest.raises(ConfigError, match="no measurements of model 'other'"):
        plot_latency_vs_seq(result, "other")
    with pytest.raises(ConfigError, match="baseline 'nope' has no measurements"):
        plot_speedup(result, "m", "nope")
    with pytest.raises(ConfigError, match="no text rates of model 'other'"):
        plot_text_rates(result, "other")
    plt.close("all")


def _goal_result(busy: float, size: str = "base", dataset: str = "corpus") -> BenchResult:
    env = {**ENV, "cpu_busy": busy, "load_average": [1.5, 1.5, 1.5]}
    r = BenchResult(environment=env, timing={})
    model = f"trained-{size}"
    r.add([meas("pytorch", 1, 200, 209.0, model=model), meas("onnxruntime-int8", 1, 200, 30.0, model=model),
           meas("ort-cuda-fused-fp16-rightpad-graph", 1, 200, 0.62, model=model, device="cuda"),
           meas("torch-compile-fp16-max-autotune", 1, 200, 0.7, model=model, device="cuda")],
          accuracy=[AccuracyRecord(model, "pytorch", "test", 100, 0.90, True, 1.0, 100.0, 32),
                    AccuracyRecord(model, "onnxruntime-int8", "test", 100, 0.893, True, 1.0, 100.0, 32,
                                   model_only_seconds=0.97, tokenize_seconds=0.03),
                    AccuracyRecord(model, "ort-cuda-fused-fp16-rightpad-graph", dataset, 17361, 0.9, True, 0.5,
                                   34722.0, 512, model_only_seconds=0.4, tokenize_seconds=0.2)])
    return r


def goals(result: BenchResult, gpu: str | None = "ort-cuda-fused-fp16-rightpad-graph") -> dict:
    from helpers.bench.goals import check_goals

    return {c.goal: c for c in check_goals(result, gpu_backend=gpu)}


def test_goals_on_a_quiet_machine():
    checks = goals(_goal_result(0.1))
    assert checks["CPU INT8 >= 6.5x PyTorch fp32 at 1x200"].met is True
    assert "6.97x" in checks["CPU INT8 >= 6.5x PyTorch fp32 at 1x200"].measured
    assert checks["CPU INT8 <= 29 ms at 1x200 (stretch)"].met is False
    assert checks["INT8 accuracy loss <= 0.5 pt"].met is False and "+0.70 pt" in checks["INT8 accuracy loss <= 0.5 pt"].measured
    assert checks["GPU deployed path <= 0.65 ms at 1x200"].met is True
    assert checks["GPU deployed path <= 0.65 ms at 1x200"].measured == "ort-cuda-fused-fp16-rightpad-graph 0.62 ms"
    assert checks["GPU deployed path faster than torch.compile"].met is True
    assert checks["GPU deployed path <= 0.5 ms at 1x200 (stretch)"].met is False
    assert checks["GPU texts to labels >= 30,000 sentences/s (whole corpus)"].met is True
    assert checks["GPU end to end >= 85% of model only"].met is False
    assert checks["GPU end to end >= 85% of model only"].measured == "80% (43,402/s model only)"
    table = str(goals_table(_goal_result(0.1), gpu_backend="ort-cuda-fused-fp16-rightpad-graph"))
    assert "| CPU INT8 <= 29 ms at 1x200 (stretch) | 30 ms | missed |" in table


def test_goals_are_withheld_on_busy_cpus_and_not_judged_for_another_size_or_text_set():
    busy = goals(_goal_result(1.5))
    check = busy["CPU INT8 >= 6.5x PyTorch fp32 at 1x200"]
    assert check.met is None and check.verdict.startswith("not judged: the CPUs were busy (other processes kept 1.5")
    assert busy["GPU deployed path <= 0.65 ms at 1x200"].met is None  # the same rule for every speed goal
    assert busy["GPU texts to labels >= 30,000 sentences/s (whole corpus)"].met is None
    assert busy["INT8 accuracy loss <= 0.5 pt"].met is False  # accuracy does not depend on load
    small = goals(_goal_result(0.1, size="small", dataset="test"))
    assert small["CPU INT8 >= 6.5x PyTorch fp32 at 1x200"].verdict == \
        "not judged: timed on the small model size, the goal is for base"
    assert small["CPU tokenizing <= 5% of the Classifier's time (INT8)"].met is True  # 3 %, on the small size
    assert small["GPU end to end >= 85% of model only"].verdict.startswith("not judged: the small model size")
    test_split = goals(_goal_result(0.1, dataset="test"))
    assert test_split["GPU texts to labels >= 30,000 sentences/s (whole corpus)"].verdict == \
        "not judged: measured on the test texts, the goal is for the whole corpus"
    none = goals(_goal_result(0.1), gpu="onnxruntime-int8")  # best_backend's GPU choice on a machine without one
    assert none["GPU deployed path <= 0.65 ms at 1x200"].verdict == "not measured here"
    assert none["GPU deployed path <= 0.65 ms at 1x200"].measured == "no GPU backend here"
