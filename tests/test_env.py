"""The environment report and the install advice 03_trt_setup prints."""

from __future__ import annotations

import pytest

from helpers.env import (EnvironmentReport, GpuInfo, Probe, environment_report, install_advice, parse_driver_header,
                         parse_gpu_query, tensorrt_package_for)
from helpers.errors import BackendError

SMI_HEADER = """
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.65.06              Driver Version: 580.65.06      CUDA Version: 13.0     |
|-----------------------------------------+------------------------+----------------------+
"""


def report(gpus=(GpuInfo(0, "NVIDIA H100 80GB HBM3", "9.0", 81559),), driver_cuda="13.0", **found) -> EnvironmentReport:
    names = ("torch", "tensorrt", "pycuda", "cuda-python", "onnxruntime", "polygraphy", "trtexec")
    probes = {n: Probe(n, found.get(n.replace("-", "_"), False), "1.0" if found.get(n.replace("-", "_")) else "")
              for n in names}
    return EnvironmentReport("3.11.7", "Linux", tuple(gpus), "580.65.06" if gpus else "", driver_cuda, "", probes)


def test_nvidia_smi_parsing():
    assert parse_driver_header(SMI_HEADER) == ("580.65.06", "13.0")
    assert parse_driver_header("no GPU here") == ("", "")
    gpus = parse_gpu_query("0, NVIDIA H100 80GB HBM3, 9.0, 81559\n1, NVIDIA L4, 8.9, 23034\nNo devices were found\n")
    assert gpus == (GpuInfo(0, "NVIDIA H100 80GB HBM3", "9.0", 81559), GpuInfo(1, "NVIDIA L4", "8.9", 23034))


@pytest.mark.parametrize("cuda,package", [("13.0", "tensorrt-cu13"), ("13.1", "tensorrt-cu13"), ("12.4", "tensorrt-cu12"),
                                          ("12.9", "tensorrt-cu12")])
def test_tensorrt_package_follows_the_driver_cuda_version(cuda, package):
    assert tensorrt_package_for(cuda) == package


def test_old_or_unknown_driver_is_explained():
    with pytest.raises(BackendError, match="supports CUDA 11.8 only.*update the driver"):
        tensorrt_package_for("11.8")
    with pytest.raises(BackendError, match="cannot read a CUDA version"):
        tensorrt_package_for("")


def test_advice_on_a_gpu_without_tensorrt():
    lines = install_advice(report(driver_cuda="12.4"))
    assert any("`pip install tensorrt-cu12`" in line and "CUDA 12.4" in line for line in lines)
    assert any("pip install 'cuda-python>=12,<13'" in line for line in lines)  # bindings no newer than the driver
    assert any("environment/Dockerfile" in line for line in lines)


def test_advice_when_everything_is_there():
    lines = install_advice(report(tensorrt=True, cuda_python=True, pycuda=True, trtexec=True))
    assert lines[0].startswith("TensorRT 1.0 is installed")
    assert not any("pip install" in line for line in lines)


def test_advice_without_a_gpu():
    lines = install_advice(report(gpus=(), driver_cuda=""))
    assert lines[0].startswith("No NVIDIA GPU is visible here")


def test_report_on_this_machine_is_complete():
    r = environment_report()
    assert set(r.probes) == {"torch", "tensorrt", "pycuda", "cuda-python", "onnxruntime", "polygraphy", "trtexec"}
    assert r.probes["onnxruntime"].found  # the project depends on it
    rows = r.rows()
    assert rows[0]["component"] == "Python" and any(row["component"] == "trtexec" for row in rows)
    assert r.to_dict()["python"] == r.python
