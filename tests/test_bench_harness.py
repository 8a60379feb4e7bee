"""The benchmark harness, driven by tiny fake backends (no model, no GPU)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from helpers.backends.base import Backend
from helpers.bench import Shape, TimingConfig, random_feed, time_shape, time_side_by_side
from helpers.bench.harness import FIRST_ORDINARY_ID, gc_paused, parse_shapes
from helpers.bench.stats import LatencyStats, relative_spread
from helpers.errors import BackendError, ConfigError

FAST = TimingConfig(warmup=1, iters=6, rounds=3, input_sets=2)


class Recorder(Backend):
    """Returns ``value`` logits after sleeping ``delay_s``; logs every call into a shared list."""

    def __init__(self, name: str, log: list[str], delay_s: float = 0.0, value: float = 0.0, **kw) -> None:
        super().__init__(**kw)
        self.name, self.log, self.delay_s, self.value = name, log, delay_s, value
        self.seen: list[np.ndarray] = []

    def _run(self, input_ids, segment_ids):
        self.log.append(self.name)
        self.seen.append(input_ids.copy())
        if self.delay_s:
            time.sleep(self.delay_s)
        return np.full((input_ids.shape[0], 2), self.value, dtype=np.float32)


class DeviceTimed(Recorder):
    device = "cuda"

    def device_compute_ms(self, input_ids, segment_ids, iters):
        return [0.25] * iters


def test_stats_percentiles_of_known_samples():
    s = LatencyStats.from_samples(np.arange(1, 101, dtype=float))
    assert (s.n, s.median_ms, s.min_ms, s.max_ms) == (100, 50.5, 1.0, 100.0)
    assert s.p90_ms == pytest.approx(90.1) and s.p99_ms == pytest.approx(99.01)
    assert s.throughput(8) == pytest.approx(8 * 1000 / 50.5)


def test_stats_reject_empty_and_nan():
    with pytest.raises(ConfigError, match="no latency samples"):
        LatencyStats.from_samples([])
    with pytest.raises(ConfigError, match="finite"):
        LatencyStats.from_samples([1.0, float("nan")])


def test_relative_spread():
    assert relative_spread([10.0, 11.0, 12.0]) == pytest.approx(2 / 11)
    assert relative_spread([5.0]) == 0.0


def test_random_feed_has_no_padding_or_specials_and_is_seeded():
    a = random_feed(Shape(3, 40), 100, np.random.default_rng(1))
    b = random_feed(Shape(3, 40), 100, np.random.default_rng(1))
    assert a[0].dtype == np.int32 and a[0].shape == (3, 40)
    assert a[0].min() >= FIRST_ORDINARY_ID and a[0].max() < 100
    assert not a[1].any()
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ConfigError, match="no ordinary tokens"):
        random_feed(Shape(1, 4), FIRST_ORDINARY_ID, np.random.default_rng(0))


def test_shape_and_config_validation():
    assert Shape(8, 128).label == "8x128" and Shape(8, 128).tokens == 1024
    with pytest.raises(ConfigError, match="batch >= 1"):
        Shape(0, 10)
    with pytest.raises(ConfigError, match="must be >= 1"):
        TimingConfig(iters=0)
    with pytest.raises(ConfigError, match=">= 0"):
        TimingConfig(warmup=-1)


def test_parameter_parsing():
    assert parse_shapes("1x200, 8X128") == [Shape(1, 200), Shape(8, 128)] and parse_shapes("") == []
    assert Shape.parse(" 8 x 32") == Shape(8, 32)
    with pytest.raises(ConfigError, match="BATCHxSEQ_LEN"):
        Shape.parse("200")


def test_rounds_are_interleaved_and_rotated():
    log: list[str] = []
    backends = {n: Recorder(n, log) for n in ("a", "b", "c")}
    time_shape(backends, Shape(1, 8), TimingConfig(warmup=0, iters=3, rounds=3), model="m", vocab_size=50)
    timed = log[3:]  # the first three calls are each backend's first call
    assert timed == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_slow_backend_is_slower_and_counts_are_recorded():
    log: list[str] = []
    backends = {"slow": Recorder("slow", log, delay_s=0.004), "fast": Recorder("fast", log)}
    ms = {m.backend: m for m in time_shape(backends, Shape(2, 16), FAST, model="m", vocab_size=50)}
    assert ms["slow"].latency.median_ms > 3.5 > ms["fast"].latency.median_ms
    assert ms["slow"].latency.n == 6 and len(ms["slow"].round_medians_ms) == 3
    assert ms["slow"].throughput_per_s == pytest.approx(2 * 1000 / ms["slow"].latency.median_ms)
    assert ms["fast"].device_compute is None and ms["fast"].includes_copies


def test_inputs_rotate_between_feeds():
    log: list[str] = []
    b = Recorder("a", log)
    time_shape({"a": b}, Shape(1, 12), TimingConfig(warmup=0, iters=4, rounds=1, input_sets=2), model="m", vocab_size=1000)
    distinct = {x.tobytes() for x in b.seen}
    assert len(distinct) == 2


def test_time_budget_cuts_iterations_of_slow_backends_only():
    log: list[str] = []
    cfg = TimingConfig(warmup=1, iters=40, rounds=2, time_budget_s=0.05, min_iters=4)
    backends = {"slow": Recorder("slow", log, delay_s=0.02), "fast": Recorder("fast", log)}
    ms = {m.backend: m for m in time_shape(backends, Shape(1, 4), cfg, model="m", vocab_size=50)}
    assert ms["slow"].latency.n == 4
    assert ms["fast"].latency.n == 40


def test_device_compute_and_reference_diff():
    log: list[str] = []
    backends = {"ref": Recorder("ref", log, value=1.0), "gpu": DeviceTimed("gpu", log, value=1.25)}
    ms = {m.backend: m for m in time_shape(backends, Shape(1, 4), FAST, model="m", vocab_size=50, reference="ref")}
    assert ms["gpu"].device_compute is not None and ms["gpu"].device_compute.median_ms == 0.25
    assert ms["gpu"].device == "cuda"
    assert ms["gpu"].max_abs_diff == pytest.approx(0.25) and ms["gpu"].reference == "ref"
    assert ms["ref"].max_abs_diff == 0.0


def test_non_finite_output_is_an_error():
    class Broken(Recorder):
        def _run(self, input_ids, segment_ids):
            return np.full((input_ids.shape[0], 2), np.nan, dtype=np.float32)

    with pytest.raises(BackendError, match="non-finite logits at 1x4"):
        time_shape({"x": Broken("x", [])}, Shape(1, 4), FAST, model="m", vocab_size=50)


def test_wrong_output_shape_is_an_error():
    class Flat(Recorder):
        def _run(self, input_ids, segment_ids):
            return np.zeros(3, dtype=np.float32)

    with pytest.raises(BackendError, match=r"expected logits \[2, labels\]"):
        time_shape({"x": Flat("x", [])}, Shape(2, 4), FAST, model="m", vocab_size=50)


def test_side_by_side_skips_by_limit_and_rule():
    log: list[str] = []
    backends = {"short": Recorder("short", log, max_len=16), "cpu": Recorder("cpu", log), "all": Recorder("all", log)}
    rule = lambda name, b, shape: "too many tokens for a CPU backend" if name == "cpu" and shape.tokens > 20 else None
    lines: list[str] = []
    ms, skipped = time_side_by_side(backends, [Shape(1, 8), Shape(2, 32)], FAST, model="m", vocab_size=50,
                                    skip_rule=rule, log=lines.append)
    measured = {(m.backend, m.shape.label) for m in ms}
    assert measured == {("short", "1x8"), ("cpu", "1x8"), ("all", "1x8"), ("all", "2x32")}
    reasons = {(s.backend, s.shape): s.reason for s in skipped}
    assert "above this backend's maximum 16" in reasons[("short", "2x32")]
    assert reasons[("cpu", "2x32")] == "too many tokens for a CPU backend"
    assert len(lines) == 2 and lines[0].startswith("m 1x8:")


def test_side_by_side_needs_shapes():
    with pytest.raises(ConfigError, match="no shapes"):
        time_side_by_side({}, [], FAST, model="m", vocab_size=50)


def test_gc_is_paused_and_restored():
    import gc

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
