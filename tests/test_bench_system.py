"""Is the machine quiet enough for CPU timings? Other processes' CPU use from /proc/stat, and the rules on it."""

from __future__ import annotations

import os
import sys

import pytest

from helpers.bench import system
from helpers.errors import ConfigError

# user nice system idle iowait irq softirq steal guest guest_nice
BEFORE = "cpu  1000 0 500 8000 100 0 0 0 0 0\ncpu0 500 0 250 4000 50 0 0 0 0 0\n"


def _stat_after(tmp_path, monkeypatch, after: str) -> str:
    """A fake /proc/stat that reads BEFORE, then ``after`` once cpu_busy has slept."""
    path = tmp_path / "stat"
    path.write_text(BEFORE)
    monkeypatch.setattr(system.time, "sleep", lambda s: path.write_text(after))
    monkeypatch.setattr(system.os, "cpu_count", lambda: 2)
    return str(path)


def test_cpu_busy_counts_other_processes_work(tmp_path, monkeypatch):
    # 200 jiffies in the window: 150 busy (user + system + irq), 50 idle (idle + iowait) -> 0.75 x 2 CPUs
    path = _stat_after(tmp_path, monkeypatch, "cpu  1100 0 540 8040 110 10 0 0 0 0\n")
    assert system.cpu_busy(0.01, stat_path=path) == 1.5


def test_cpu_busy_of_an_idle_machine_is_zero(tmp_path, monkeypatch):
    path = _stat_after(tmp_path, monkeypatch, "cpu  1000 0 500 8200 100 0 0 0 0 0\n")
    assert system.cpu_busy(0.01, stat_path=path) == 0.0


def test_cpu_busy_without_proc_stat_is_none(tmp_path):
    assert system.cpu_busy(0.01, stat_path=str(tmp_path / "missing")) is None
    (tmp_path / "odd").write_text("intr 1 2 3\n")
    assert system.cpu_busy(0.01, stat_path=str(tmp_path / "odd")) is None
    with pytest.raises(ConfigError, match="window_s must be > 0"):
        system.cpu_busy(0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the real /proc/stat")
def test_cpu_busy_reads_this_machine():
    busy = system.cpu_busy(0.2)
    assert busy is not None and 0.0 <= busy <= (os.cpu_count() or 1)


def test_cpus_busy_rules():
    host = {"usable_cpus": 2}
    assert system.cpus_busy({"host": host, "cpu_busy": 0.1, "load_average": [3.0, 3.0, 3.0]}) is None  # lagging load ignored
    why = system.cpus_busy({"host": host, "cpu_busy": 0.9, "load_average": [0.0, 0.0, 0.0]})
    assert why == "other processes kept 0.9 of 2 CPUs busy just before the run"
    # results recorded before cpu_busy existed: the 1-minute load average, above half the CPUs
    assert system.cpus_busy({"host": host, "load_average": [0.9, 1.0, 1.0]}) is None
    assert "1-minute load average was 1.4 on 2 CPUs" in system.cpus_busy({"host": host, "load_average": [1.4, 1.0, 1.0]})
    assert system.cpus_busy({"host": host}) is None


def test_busy_cpu_warning_sentence():
    env = {"host": {"usable_cpus": 2}, "cpu_busy": 1.8}
    warning = system.busy_cpu_warning(env)
    assert warning.startswith("other processes kept 1.8 of 2 CPUs busy") and "re-run on a quiet machine" in warning
    assert system.busy_cpu_warning({**env, "cpu_busy": 0.0}) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the real /proc/stat")
def test_captured_environment_records_cpu_busy():
    env = system.capture_environment()
    assert isinstance(env["cpu_busy"], float) and env["host"]["usable_cpus"] >= 1
