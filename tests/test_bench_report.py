"""Benchmark results as data (JSON round trip), Markdown tables and plots, from hand-made measurements."""

from __future__ import annotations

import json

import pytest

from helpers.bench import AccuracyRecord, BenchResult, LatencyStats, Measurement, Skip, load_result
from helpers.bench.plots import plot_latency_vs_seq, plot_shape_bars, plot_speedup, save_figure
from helpers.bench.report import (accuracy_table, article_comparison, environment_summary, fmt_ms, latency_table,
                                  markdown_table, skipped_table, speedups, sweep_table)
from helpers.errors import ConfigError, MissingArtifactError

ENV = {"measured_utc": "2026-01-01T00:00:00+00:00",
       "host": {"cpu_model": "Test CPU", "usable_cpus": 2, "python": "3.11.7"},
       "gpu": None, "versions": {"torch": "2.13.0", "onnxruntime": "1.32.0"}, "threads": {"torch_intra_op": 2}}


def meas(backend: str, batch: int, seq: int, median: float, model: str = "m", dev: float | None = None) -> Measurement:
    lat = LatencyStats.from_samples([median * 0.9, median, median * 1.1])
    return Measurement(model=model, backend=backend, device="cpu", precision="fp32", batch=batch, seq_len=seq,
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
          accuracy=[AccuracyRecord("m", "ort-int8", "test", 100, 0.9, True, 0.5, 200.0, 32, 0.99, "torch-fp32")])
    return r


def test_json_round_trip_is_exact(tmp_path, result):
    path = result.save(tmp_path / "bench" / "results.json")
    again = load_result(path)
    assert again.to_dict() == result.to_dict()
    assert json.loads(path.read_text())["schema"] == 1
    assert not list(path.parent.glob(".*.tmp"))  # nothing half-written left behind


def test_load_missing_result_names_the_notebook(tmp_path):
    with pytest.raises(MissingArtifactError, match="run notebook 06_benchmark"):
        load_result(tmp_path / "nope.json")


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
    text = latency_table(result, "m", 1, 64, baseline="torch-fp32")
    rows = text.splitlines()[2:]
    assert rows[0].startswith("| ort-int8 ") and "4.00x" in rows[0] and "| 2.5 |" in rows[0]
    assert rows[1].startswith("| torch-fp32 ") and "1.00x" in rows[1]


def test_sweep_table_marks_missing(result):
    result.add([meas("ort-fused", 1, 32, 1.0)])
    text = sweep_table(result, "m")
    assert "| 1x32 | 10 | 2.5 | 1 |" in text
    assert "| 8x128 | 240 | 40 | - |" in text


def test_accuracy_skip_environment_article_tables(result):
    assert "| ort-int8 | yes | 1 | 100 | 90.00% | 99.00% |" in accuracy_table(result, "m")
    assert "TensorRT is not installed" in skipped_table(result)
    line = environment_summary(ENV)
    assert "2-core CPU (Test CPU)" in line and "torch 2.13.0" in line and "2026-01-01" in line
    result.add([meas("torch-fp32", 1, 200, 209.0)])
    art = article_comparison(result, "m", {"torch-fp32": "PyTorch fp32, CPU"})
    assert "| PyTorch, CPU | original article | 144 |" in art and "| PyTorch fp32, CPU | 2-core CPU (Test CPU) | 209 |" in art


def test_fmt_ms():
    assert [fmt_ms(x) for x in (0.6523, 38.14, 209.4, None)] == ["0.652", "38.1", "209", "-"]


def test_plots_are_written_as_png(tmp_path, result):
    for name, fig in {"lat": plot_latency_vs_seq(result, "m"), "speed": plot_speedup(result, "m", "torch-fp32"),
                      "bars": plot_shape_bars(result, "m", 1, 64)}.items():
        path = save_figure(fig, tmp_path / f"{name}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(plot_latency_vs_seq(result, "m").axes) == 2  # one panel per batch size


def test_plots_name_what_is_missing(result):
    with pytest.raises(ConfigError, match="no measurements of model 'other'"):
        plot_latency_vs_seq(result, "other")
    with pytest.raises(ConfigError, match="baseline 'nope' has no measurements"):
        plot_speedup(result, "m", "nope")


def _goal_result(busy: float) -> BenchResult:
    env = {**ENV, "cpu_busy": busy, "load_average": [1.5, 1.5, 1.5]}
    r = BenchResult(environment=env, timing={})
    r.add([meas("pytorch", 1, 200, 209.0, model="arch-base"), meas("onnxruntime-int8", 1, 200, 30.0, model="arch-base")],
          accuracy=[AccuracyRecord("trained", "pytorch", "test", 100, 0.90, True, 1.0, 100.0, 32),
                    AccuracyRecord("trained", "onnxruntime-int8", "test", 100, 0.893, True, 1.0, 100.0, 32)])
    return r


def test_goals_on_a_quiet_machine():
    from helpers.bench.goals import check_goals, goals_table

    checks = {c.goal: c for c in check_goals(_goal_result(0.1), arch_model="arch-base", trained_model="trained")}
    assert checks["CPU INT8 >= 6.5x PyTorch fp32"].met is True and "6.97x" in checks["CPU INT8 >= 6.5x PyTorch fp32"].measured
    assert checks["CPU INT8 <= 29 ms (stretch)"].met is False
    assert checks["INT8 accuracy loss <= 0.5 pt"].met is False and "+0.70 pt" in checks["INT8 accuracy loss <= 0.5 pt"].measured
    assert checks["GPU ONNX path <= 0.65 ms"].met is None
    assert "| CPU INT8 <= 29 ms (stretch) | 30 ms | missed |" in goals_table(list(checks.values()))


def test_goals_are_not_judged_on_busy_cpus_or_another_architecture():
    from helpers.bench.goals import check_goals

    busy = {c.goal: c for c in check_goals(_goal_result(1.5), arch_model="arch-base", trained_model="trained")}
    assert busy["CPU INT8 >= 6.5x PyTorch fp32"].met is None
    assert "CPUs were busy (other processes kept 1.5 of 2 CPUs busy" in busy["CPU INT8 >= 6.5x PyTorch fp32"].measured
    assert busy["INT8 accuracy loss <= 0.5 pt"].met is False  # accuracy does not depend on load
    r = _goal_result(0.1)
    for m in r.measurements:
        m.model = "arch-tiny"
    tiny = {c.goal: c for c in check_goals(r, arch_model="arch-tiny", trained_model="trained")}
    assert tiny["CPU INT8 >= 6.5x PyTorch fp32"].met is None and "arch-tiny" in tiny["CPU INT8 >= 6.5x PyTorch fp32"].measured
