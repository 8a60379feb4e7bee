"""What machine this is: nvidia-smi parsing, CUDA device numbering, CPU load from /proc/stat."""

from __future__ import annotations

import os
import sys

import pytest

from helpers import machine
from helpers.errors import BackendError, ConfigError
from helpers.machine import (INT8_INSTRUCTIONS, GpuInfo, apply_visible_devices, cpu_flags, cpu_int8_instructions,
                             cpu_summary, parse_driver_header, parse_gpu_query)

SMI_HEADER = """
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.65.06              Driver Version: 580.65.06      CUDA Version: 13.0     |
|-----------------------------------------+------------------------+----------------------+
"""
H100 = GpuInfo(0, "NVIDIA H100 80GB HBM3", "9.0", 81559, "GPU-aaaa1111")
L4 = GpuInfo(1, "NVIDIA L4", "8.9", 23034, "GPU-bbbb2222")
L4B = GpuInfo(2, "NVIDIA L4", "8.9", 23034, "GPU-cccc3333")


def test_nvidia_smi_parsing():
    assert parse_driver_header(SMI_HEADER) == ("580.65.06", "13.0")
    assert parse_driver_header("no GPU here") == ("", "")
    text = ("0, NVIDIA H100 80GB HBM3, 9.0, 81559, GPU-aaaa1111\n1, NVIDIA L4, 8.9, 23034, GPU-bbbb2222\n"
            "No devices were found\n")
    assert parse_gpu_query(text) == (H100, L4)
    assert parse_gpu_query("0, NVIDIA L4, 8.9, 23034\n") == (GpuInfo(0, "NVIDIA L4", "8.9", 23034),)  # no uuid column


@pytest.mark.parametrize("spec,expected", [
    (None, [("NVIDIA H100 80GB HBM3", 0), ("NVIDIA L4", 1), ("NVIDIA L4", 2)]),
    ("2", [("GPU-cccc3333", 0)]),                              # CUDA device 0 is nvidia-smi's GPU 2
    ("2,0", [("GPU-cccc3333", 0), ("GPU-aaaa1111", 1)]),       # in the order given
    ("GPU-bbbb", [("GPU-bbbb2222", 0)]),                        # a UUID prefix
    ("1,7,0", [("GPU-bbbb2222", 0)]),                           # CUDA stops at the first unknown entry
    ("", []),
    ("MIG-1234", []),
])
def test_cuda_visible_devices_decides_the_numbering(spec, expected):
    env = {} if spec is None else {"CUDA_VISIBLE_DEVICES": spec}
    seen = apply_visible_devices((H100, L4, L4B), env)
    key = (lambda g: (g.name, g.index)) if spec is None else (lambda g: (g.uuid, g.index))
    assert [key(g) for g in seen] == expected


def test_gpu_identity_is_the_cuda_device(monkeypatch):
    monkeypatch.setattr(machine, "nvidia_smi_gpus", lambda: (H100, L4, L4B))
    monkeypatch.setattr(machine, "torch_gpus", lambda: ((), ""))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,1")
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    assert machine.gpu_identity(0) == GpuInfo(0, "NVIDIA L4", "8.9", 23034, "GPU-cccc3333")
    assert machine.gpu_identity(1).uuid == "GPU-bbbb2222"
    with pytest.raises(BackendError, match=r"no NVIDIA GPU 2 is visible here \(CUDA_VISIBLE_DEVICES='2,1'\): this process sees 2"):
        machine.gpu_identity(2)
    with pytest.raises(ConfigError, match="CUDA device index is >= 0"):
        machine.gpu_identity(-1)


def test_mixed_gpus_without_pci_order_ask_cuda_itself(monkeypatch):
    # CUDA puts the fastest GPU first unless CUDA_DEVICE_ORDER=PCI_BUS_ID: nvidia-smi's order is then not CUDA's.
    monkeypatch.setattr(machine, "nvidia_smi_gpus", lambda: (L4, H100))
    monkeypatch.setattr(machine, "torch_gpus", lambda: ((GpuInfo(0, H100.name, "9.0"), GpuInfo(1, L4.name, "8.9")), "13.0"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    assert machine.gpu_identity(0).name == H100.name
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    assert machine.gpu_identity(0).name == L4.name


def test_no_gpu_here_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(machine, "nvidia_smi_gpus", lambda: ())
    monkeypatch.setattr(machine, "torch_gpus", lambda: ((), ""))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(BackendError, match="no NVIDIA GPU 0 is visible here: this process sees 0; TensorRT engines need one"):
        machine.gpu_identity(0)
    assert machine.gpu_details(0) in ("nvidia-smi not found", "no NVIDIA GPU 0 is visible here: this process sees 0; "
                                      "TensorRT engines need one.")


# ----------------------------------------------------------------------------------------- CPU load
# user nice system idle iowait irq softirq steal guest guest_nice
BEFORE = "cpu  1000 0 500 8000 100 0 0 0 0 0\ncpu0 500 0 250 4000 50 0 0 0 0 0\n"


def _stat_after(tmp_path, monkeypatch, after: str) -> str:
    """A fake /proc/stat that reads BEFORE, then ``after`` once cpu_busy has slept."""
    path = tmp_path / "stat"
    path.write_text(BEFORE)
    monkeypatch.setattr(machine.time, "sleep", lambda s: path.write_text(after))
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 2)
    return str(path)


def test_cpu_busy_counts_other_processes_work(tmp_path, monkeypatch):
    # 200 jiffies in the window: 150 busy (user + system + irq), 50 idle (idle + iowait) -> 0.75 x 2 CPUs
    path = _stat_after(tmp_path, monkeypatch, "cpu  1100 0 540 8040 110 10 0 0 0 0\n")
    assert machine.cpu_busy(0.01, stat_path=path) == 1.5


def test_cpu_busy_of_an_idle_machine_is_zero(tmp_path, monkeypatch):
    path = _stat_after(tmp_path, monkeypatch, "cpu  1000 0 500 8200 100 0 0 0 0 0\n")
    assert machine.cpu_busy(0.01, stat_path=path) == 0.0


def test_cpu_busy_without_proc_stat_is_none(tmp_path):
    assert machine.cpu_busy(0.01, stat_path=str(tmp_path / "missing")) is None
    (tmp_path / "odd").write_text("intr 1 2 3\n")
    assert machine.cpu_busy(0.01, stat_path=str(tmp_path / "odd")) is None
    with pytest.raises(ConfigError, match="window_s must be > 0"):
        machine.cpu_busy(0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the real /proc/stat")
def test_cpu_busy_reads_this_machine():
    busy = machine.cpu_busy(0.2)
    assert busy is not None and 0.0 <= busy <= (os.cpu_count() or 1)


def test_host_summary_and_versions_of_this_machine():
    host = machine.host_summary()
    assert host["usable_cpus"] >= 1 and host["cpu_model"] and host["python"].startswith("3.")
    versions = machine.package_versions()
    assert "numpy" in versions and "onnx" in versions
    assert "tensorrt_rtx_cu13_bindings" in versions  # the test environment installs TensorRT-RTX


@pytest.mark.parametrize("flags, expected", [
    ("fpu sse avx avx2 fma", ()),
    ("avx2 avx512f avx512_vnni", ("AVX-512 VNNI",)),
    ("avx2 avx_vnni avx512_vnni amx_tile amx_int8 amx_bf16", ("AVX-512 VNNI", "AVX-VNNI", "AMX-INT8")),
])
def test_int8_instructions_come_from_the_cpus_flags(tmp_path, flags, expected):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n")
    assert cpu_int8_instructions(info) == expected
    assert cpu_int8_instructions(tmp_path / "missing") is None
    assert cpu_flags(info)[-1] == flags.split()[-1] and cpu_flags(tmp_path / "missing") is None


def test_cpu_summary_names_this_cpu():
    cpu = cpu_summary()
    assert cpu["model"] and cpu["cpus"] >= 1 and isinstance(cpu["flags"], list)
    assert set(cpu["int8_instructions"]) <= set(INT8_INSTRUCTIONS.values())
