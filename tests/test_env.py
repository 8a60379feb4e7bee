"""The environment report and the install advice 03_trt_setup prints (which flavour fits which GPU)."""

from __future__ import annotations

import pytest

from helpers.env import EnvironmentReport, Probe, environment_report, tensorrt_package_for
from helpers.errors import BackendError
from helpers.machine import GpuInfo

H200 = GpuInfo(0, "NVIDIA H200", "9.0", 143771)
RTX4090 = GpuInfo(0, "NVIDIA GeForce RTX 4090", "8.9", 24564)
NAMES = ("torch", "tensorrt", "tensorrt-rtx", "pycuda", "cuda-python", "onnxruntime", "polygraphy", "trtexec")


def report(gpus=(H200,), driver_cuda="13.0", **found) -> EnvironmentReport:
    probes = {n: Probe(n, found.get(n.replace("-", "_"), False), "1.0" if found.get(n.replace("-", "_")) else "")
              for n in NAMES}
    return EnvironmentReport("3.11.7", "Linux", tuple(gpus), "580.65.06" if gpus else "", driver_cuda, "", probes)


@pytest.mark.parametrize("cuda,package", [("13.0", "tensorrt-cu13"), ("13.1", "tensorrt-cu13"), ("12.4", "tensorrt-cu12"),
                                          ("12.9", "tensorrt-cu12")])
def test_tensorrt_package_follows_the_driver_cuda_version(cuda, package):
    assert tensorrt_package_for(cuda) == package


def test_old_or_unknown_driver_is_explained():
    with pytest.raises(BackendError, match="supports CUDA 11.8 only.*update the driver"):
        tensorrt_package_for("11.8")
    with pytest.raises(BackendError, match="cannot read a CUDA version"):
        tensorrt_package_for("")


def test_a_data_centre_gpu_gets_full_tensorrt_only():
    lines = report(driver_cuda="12.4").install_advice()
    assert lines[0].startswith("Full TensorRT fits NVIDIA H200 (compute capability 9.0)") and "`pip install tensorrt-cu12`" in lines[0]
    assert "TensorRT-RTX does not run on compute capability 9.0 (its runtime accepts 8.0 8.6 8.9 12.0+)" in lines[1]
    assert any("pip install 'cuda-python>=12,<13'" in line for line in lines)  # bindings no newer than the driver
    assert any("environment/Dockerfile" in line for line in lines)


def test_an_rtx_gpu_gets_both_flavours_with_exact_commands():
    lines = report(gpus=(RTX4090,), driver_cuda="13.0").install_advice()
    assert "`pip install tensorrt-cu13`" in lines[0]
    assert lines[1].startswith("TensorRT-RTX runs on compute capability 8.9 too")
    assert "`pip install tensorrt-rtx-cu13-libs==1.7.1.116 tensorrt-rtx-cu13-bindings==1.7.1.116`" in lines[1]


def test_what_runs_where():
    h200_rtx = report(tensorrt_rtx=True)
    assert h200_rtx.has_tensorrt and h200_rtx.can_build_engines and not h200_rtx.can_run_engines
    assert any("tensorrt-rtx 1.0 (builds engines here, but cannot run them on this GPU)" in l for l in h200_rtx.install_advice())
    assert report(gpus=(RTX4090,), tensorrt_rtx=True).can_run_engines
    assert report(tensorrt=True).flavours_that_run(0) == ("tensorrt",)
    cpu_rtx = report(gpus=(), driver_cuda="", tensorrt_rtx=True)
    assert cpu_rtx.can_build_engines and not cpu_rtx.can_run_engines
    assert not report(gpus=(), driver_cuda="", tensorrt=True).can_build_engines  # full TensorRT builds on a GPU only


def test_why_no_engine_runs_here_in_one_phrase():
    assert report(gpus=(), driver_cuda="", tensorrt_rtx=True).why_engines_cannot_run() == "there is no NVIDIA GPU here"
    assert report().why_engines_cannot_run() == "no TensorRT is installed (03 says how to get it)"
    assert report(tensorrt=True).why_engines_cannot_run() == ""
    assert report(gpus=(RTX4090,), tensorrt_rtx=True).why_engines_cannot_run() == ""
    assert report(tensorrt_rtx=True).why_engines_cannot_run().startswith(
        "TensorRT-RTX's runtime does not run on compute capability 9.0 (it runs 8.0 8.6 8.9 12.0+)")


def test_advice_without_a_gpu():
    lines = report(gpus=(), driver_cuda="").install_advice()
    assert lines[0].startswith("No NVIDIA GPU is visible here") and "tensorrt-rtx-cu13-libs==1.7.1.116" in lines[0]
    lines = report(gpus=(), driver_cuda="", tensorrt_rtx=True).install_advice()
    assert "TensorRT-RTX is installed, so 04 builds real engines here" in lines[0]


def test_report_on_this_machine_is_complete():
    r = environment_report()
    assert set(r.probes) == set(NAMES)
    assert r.probes["onnxruntime"].found  # the project depends on it
    assert r.probes["tensorrt-rtx"].found and r.probes["tensorrt-rtx"].version == "1.7.1.116"  # the test environment's
    rows = r.rows()
    assert rows[0]["component"] == "Python" and any(row["component"] == "trtexec" for row in rows)
    assert r.to_dict()["python"] == r.python


def test_the_report_is_saved_as_json(tmp_path):
    import json

    saved = report(tensorrt_rtx=True).save(tmp_path / "trt" / "environment.json")
    record = json.loads(saved.read_text())
    assert record["gpus"][0]["name"] == "NVIDIA H200" and record["probes"]["tensorrt-rtx"]["found"] is True
