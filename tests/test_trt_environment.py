"""What an engine is checked against where it loads: ``running_target`` and the GPU identity under it.

An engine sidecar records the GPU it was built on; ``running_target(trt, device)`` must describe the GPU
the runtime will really use. The runtime addresses GPUs by CUDA device index (cudaSetDevice, pycuda's
Device(n), torch's "cuda:n"), which counts only the GPUs ``CUDA_VISIBLE_DEVICES`` leaves visible, in its order.
A fake ``nvidia-smi`` on PATH describes three different GPUs, so a wrong index gives a wrong name.
"""

from __future__ import annotations

import stat
import sys
import textwrap

import pytest

from helpers.machine import gpu_identity
from helpers.errors import BackendError
from helpers.trt.metadata import running_target

lean = pytest.importorskip("tensorrt_lean_bindings", reason="pip install -r environment/requirements-trt-check.txt")

GPUS = [  # nvidia-smi's physical order
    {"index": "0", "name": "NVIDIA A100-SXM4-80GB", "compute_cap": "8.0", "memory.total": "81920",
     "uuid": "GPU-aaaaaaaa-0000-0000-0000-000000000000", "pci.bus_id": "00000000:07:00.0"},
    {"index": "1", "name": "NVIDIA GeForce RTX 4090", "compute_cap": "8.9", "memory.total": "24564",
     "uuid": "GPU-bbbbbbbb-1111-1111-1111-111111111111", "pci.bus_id": "00000000:0A:00.0"},
    {"index": "2", "name": "NVIDIA H200", "compute_cap": "9.0", "memory.total": "143771",
     "uuid": "GPU-cccccccc-2222-2222-2222-222222222222", "pci.bus_id": "00000000:1B:00.0"},
]


@pytest.fixture()
def three_gpus(tmp_path, monkeypatch):
    """``nvidia-smi`` answering --query-gpu for any of the fields above (and -L / the plain header)."""
    script = tmp_path / "bin" / "nvidia-smi"
    script.parent.mkdir()
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import sys
        gpus = {GPUS!r}
        args = sys.argv[1:]
        query = next((a.split("=", 1)[1] for a in args if a.startswith("--query-gpu=")), None)
        if query:
            for gpu in gpus:
                print(", ".join(gpu.get(field, "[N/A]") for field in query.split(",")))
        elif "-L" in args:
            for gpu in gpus:
                print(f"GPU {{gpu['index']}}: {{gpu['name']}} (UUID: {{gpu['uuid']}})")
        else:
            print("| NVIDIA-SMI 580.159.04   Driver Version: 580.159.04   CUDA Version: 13.0 |")
        """), encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return GPUS


def test_each_device_index_names_its_own_gpu(three_gpus):
    for index, gpu in enumerate(three_gpus):
        found = gpu_identity(index)
        assert (found.name, found.compute_capability) == (gpu["name"], gpu["compute_cap"])


def test_a_gpu_that_is_not_there_is_a_clear_error(three_gpus):
    with pytest.raises(BackendError, match=r"no NVIDIA GPU 3 is visible here: this process sees 3; TensorRT engines need one"):
        gpu_identity(3)


def test_running_target_is_the_module_release_and_the_chosen_gpu(three_gpus):
    env = running_target(lean, 2)
    assert (env.tensorrt_version, env.gpu_name, env.compute_capability) == (lean.__version__, "NVIDIA H200", "9.0")
    assert running_target(lean, 1).gpu_name == "NVIDIA GeForce RTX 4090"


def test_cuda_visible_devices_decides_which_gpu_is_device_0(three_gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    assert gpu_identity(0).name == "NVIDIA H200"  # CUDA device 0 is the first visible GPU: physical 2
    assert gpu_identity(1).name == "NVIDIA A100-SXM4-80GB"
    with pytest.raises(BackendError):
        gpu_identity(2)  # only two are visible
