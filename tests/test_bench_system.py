"""The benchmark record: is the machine quiet enough for timings, and what a record holds (on a CPU machine and on a
GPU machine alike)."""

from __future__ import annotations

import sys

import pytest

from helpers.bench import system


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
def test_captured_environment_records_the_machine_it_runs_on():
    import torch

    env = system.capture_environment()
    assert isinstance(env["cpu_busy"], float) and env["host"]["usable_cpus"] >= 1
    if torch.cuda.is_available():  # a GPU machine: the record names CUDA device 0, as PyTorch sees it
        props = torch.cuda.get_device_properties(0)
        gpu = env["gpu"]
        assert gpu["name"] == props.name and gpu["capability"] == f"{props.major}.{props.minor}"
        assert gpu["device_count"] == torch.cuda.device_count() and gpu["torch_cuda"] == torch.version.cuda
        assert system.device_label(env) == props.name
    else:  # a CPU machine: no GPU is recorded, and the machine is named by its CPU
        assert env["gpu"] is None
        assert system.device_label(env) == f"{env['host']['usable_cpus']}-core CPU ({env['host']['cpu_model']})"
