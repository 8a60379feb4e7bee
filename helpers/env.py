"""What the TensorRT path needs on this machine, what is missing, and how to get it.

:func:`environment_report` looks without changing anything: the GPUs (by CUDA device index) and their
compute capability, the driver version and the newest CUDA version that driver supports (all from
:mod:`helpers.machine`), and the Python packages of the TensorRT path (torch, TensorRT, TensorRT-RTX,
pycuda, cuda-python, onnxruntime, polygraphy) plus ``trtexec`` on ``PATH``. Its
:meth:`~EnvironmentReport.install_advice` turns the report into the exact steps for this machine: which TensorRT flavour fits its GPU (full TensorRT on every
NVIDIA GPU; TensorRT-RTX on GeForce RTX / RTX PRO GPUs of compute capability 8.0, 8.6, 8.9 and 12.x) and
the pip command for the driver's CUDA version, or the project's ``environment/Dockerfile`` built on NVIDIA's
TensorRT container.
"""

from __future__ import annotations

import importlib
import os
import platform
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import BackendError
from .io import atomic_write_json
from .machine import GpuInfo, driver_versions, package_versions, torch_gpus, visible_gpus
from .trt.compat import FLAVOUR_MODULES, RTX_PORTABLE_TARGETS, install_command, runs_on, runtime_refusal

#: Where NVIDIA's containers and tarballs put trtexec when it is not on PATH.
TRTEXEC_FALLBACKS: tuple[str, ...] = ("/usr/src/tensorrt/bin/trtexec", "/opt/tensorrt/bin/trtexec")
#: Import name and distribution names of each package the report looks for (the two TensorRT flavours
#: under their flavour names).
PACKAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "torch": ("torch", ("torch",)),
    "tensorrt": (FLAVOUR_MODULES["tensorrt"], ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11")),
    "tensorrt-rtx": (FLAVOUR_MODULES["tensorrt-rtx"], ("tensorrt_rtx_cu13_bindings", "tensorrt_rtx_cu12_bindings")),
    "pycuda": ("pycuda.driver", ("pycuda",)),
    "cuda-python": ("cuda.bindings.runtime", ("cuda-bindings", "cuda-python")),
    "onnxruntime": ("onnxruntime", ("onnxruntime-gpu", "onnxruntime")),
    "polygraphy": ("polygraphy", ("polygraphy",)),
}


@dataclass(frozen=True)
class Probe:
    """Whether one component is usable here, its version, and a sentence about it."""

    name: str
    found: bool
    version: str = ""
    detail: str = ""


@dataclass(frozen=True)
class EnvironmentReport:
    """Everything 03_trt_setup shows about this machine (``gpus`` by CUDA device index)."""

    python: str
    platform: str
    gpus: tuple[GpuInfo, ...]
    driver_version: str
    driver_cuda: str
    torch_cuda: str
    probes: dict[str, Probe] = field(default_factory=dict)

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)

    @property
    def tensorrt_flavours(self) -> tuple[str, ...]:
        """The TensorRT flavours importable here, in :func:`~helpers.trt.compat.import_tensorrt`'s order."""
        return tuple(f for f in ("tensorrt", "tensorrt-rtx") if self.probes[f].found)

    @property
    def has_tensorrt(self) -> bool:
        """Some TensorRT flavour is importable (whether it can build or run here: see below)."""
        return bool(self.tensorrt_flavours)

    def flavours_that_run(self, device: int = 0) -> tuple[str, ...]:
        """Installed flavours whose runtime accepts GPU ``device`` (TensorRT-RTX refuses e.g. compute 9.0)."""
        if device >= len(self.gpus):
            return ()
        cc = self.gpus[device].compute_capability
        return tuple(f for f in self.tensorrt_flavours if runtime_refusal(f, cc) is None)

    @property
    def can_run_engines(self) -> bool:
        """A GPU is here and an installed TensorRT flavour runs engines on GPU 0."""
        return bool(self.flavours_that_run(0))

    def why_engines_cannot_run(self, device: int = 0) -> str:
        """Why no TensorRT engine can run on GPU ``device`` here, in a few words ("" when one can)."""
        if not self.has_gpu:
            return "there is no NVIDIA GPU here"
        if not self.has_tensorrt:
            return "no TensorRT is installed (03 says how to get it)"
        if self.flavours_that_run(device):
            return ""
        gpu = self.gpus[device]
        return "; ".join(runtime_refusal(f, gpu.compute_capability) or "" for f in self.tensorrt_flavours).rstrip(".")

    @property
    def can_build_engines(self) -> bool:
        """An installed flavour can build here: TensorRT-RTX anywhere (it needs no GPU), TensorRT with a GPU."""
        return "tensorrt-rtx" in self.tensorrt_flavours or ("tensorrt" in self.tensorrt_flavours and self.has_gpu)

    def rows(self) -> list[dict[str, str]]:
        """The report as table rows (component, status, detail)."""
        rows = [{"component": "Python", "status": self.python, "detail": self.platform}]
        for gpu in self.gpus or ():
            rows.append({"component": f"GPU {gpu.index}", "status": gpu.name,
                         "detail": f"compute capability {gpu.compute_capability}, {gpu.memory_mib} MiB"})
        if not self.gpus:
            rows.append({"component": "GPU", "status": "none", "detail": "no NVIDIA GPU visible (nvidia-smi, torch)"})
        rows.append({"component": "NVIDIA driver", "status": self.driver_version or "absent",
                     "detail": f"supports CUDA up to {self.driver_cuda}" if self.driver_cuda else ""})
        for probe in self.probes.values():
            rows.append({"component": probe.name, "status": probe.version if probe.found else "absent",
                         "detail": probe.detail})
        return rows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as JSON (atomically)."""
        return atomic_write_json(path, self.to_dict())

    def install_advice(self) -> list[str]:
        """Markdown lines: what this machine can do with TensorRT and the exact steps to get there."""
        lines = _flavour_advice(self)
        if not self.has_gpu:
            return lines
        cuda_major = re.match(r"(\d+)", self.driver_cuda or "")
        cuda_python = (f"pip install 'cuda-python>={cuda_major.group(1)},<{int(cuda_major.group(1)) + 1}'"
                       if cuda_major else "pip install cuda-python")
        for key, command in (("cuda-python", cuda_python),
                             ("pycuda", "pip install pycuda  (compiles against the CUDA toolkit; needs nvcc)")):
            if not self.probes[key].found:
                lines.append(f"For {key} buffers: `{command}`.")
        if not self.probes["trtexec"].found:
            lines.append("trtexec is not on PATH: the pip wheels do not ship it; NVIDIA's container does "
                         "(/usr/src/tensorrt/bin/trtexec).")
        lines.append("Or use the container with everything preinstalled: `docker build -f environment/Dockerfile -t "
                     "bert-trt .` then `docker run --gpus all -it -p 8888:8888 -v $PWD:/workspace/project bert-trt`.")
        return lines


# --------------------------------------------------------------------------------------------- packages
def probe_package(key: str) -> Probe:
    """Import one package of :data:`PACKAGES`; report its version or why it is absent."""
    module_name, dists = PACKAGES[key]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return Probe(key, False, "", f"not importable ({exc})")
    except OSError as exc:  # e.g. pycuda or tensorrt present but libcuda/libnvinfer missing
        return Probe(key, False, "", f"installed but cannot load its libraries ({exc})")
    versions = package_versions(dists)
    version = str(getattr(module, "__version__", "") or next(iter(versions.values()), "unknown"))
    return Probe(key, True, version, module_name)


def find_trtexec() -> Probe:
    """``trtexec`` on PATH or in NVIDIA's usual install folders."""
    exe = shutil.which("trtexec") or next((p for p in TRTEXEC_FALLBACKS if shutil.which(p)), "")
    if not exe:
        return Probe("trtexec", False, "", "not on PATH (NVIDIA's container has it in /usr/src/tensorrt/bin)")
    return Probe("trtexec", True, "present", exe)


def environment_report() -> EnvironmentReport:
    """Look at this machine (no side effects)."""
    driver, driver_cuda = driver_versions()
    probes = {key: probe_package(key) for key in PACKAGES}
    probes["trtexec"] = find_trtexec()
    return EnvironmentReport(python=platform.python_version(), platform=platform.platform(),
                             gpus=visible_gpus(), driver_version=driver, driver_cuda=driver_cuda,
                             torch_cuda=torch_gpus()[1], probes=probes)


# ----------------------------------------------------------------------------------------------- advice
def cuda_major_of(driver_cuda: str) -> int:
    """12 or 13: the CUDA major version whose TensorRT wheels fit a driver supporting CUDA ``driver_cuda``."""
    match = re.match(r"(\d+)", driver_cuda or "")
    if not match:
        raise BackendError(f"cannot read a CUDA version from {driver_cuda!r}; run nvidia-smi and read 'CUDA Version'.")
    major = int(match.group(1))
    if major < 12:
        raise BackendError(f"the NVIDIA driver supports CUDA {driver_cuda} only; TensorRT 10/11 and TensorRT-RTX wheels "
                           "need CUDA 12 or 13: update the driver (or use the container, which needs a recent driver too).")
    return min(major, 13)


def tensorrt_package_for(driver_cuda: str) -> str:
    """The pip package of full TensorRT matching the newest CUDA version a driver supports."""
    return f"tensorrt-cu{cuda_major_of(driver_cuda)}"


def _flavour_advice(report: EnvironmentReport, device: int = 0) -> list[str]:
    """Which TensorRT flavour fits GPU ``device`` (or, without a GPU, what can still be done here), with the
    exact install command for this driver."""
    rtx_install = install_command("tensorrt-rtx", cuda_major_of(report.driver_cuda) if report.driver_cuda else 13)
    if not report.has_gpu:
        built = ("TensorRT-RTX is installed, so 04 builds real engines here (portable to RTX GPUs of compute "
                 f"capability {RTX_PORTABLE_TARGETS})" if "tensorrt-rtx" in report.tensorrt_flavours else
                 f"with TensorRT-RTX (`{rtx_install}`), whose builder needs no GPU, 04 builds real engines here")
        return ["No NVIDIA GPU is visible here, so no TensorRT engine can run on this machine; " + built + ".",
                "On a GPU machine, run this notebook again: it says which flavour fits that GPU and prints the "
                "install command for its driver."]
    gpu = report.gpus[device]
    try:
        full_install = f"pip install {tensorrt_package_for(report.driver_cuda)}"
    except BackendError as exc:
        return [str(exc)]
    lines = [f"Full TensorRT fits {gpu.name} (compute capability {gpu.compute_capability}) and every other NVIDIA "
             f"data-centre GPU: `{full_install}` (it pulls the matching libraries from NVIDIA's index)."]
    if runs_on(RTX_PORTABLE_TARGETS, gpu.compute_capability):
        lines.append(f"TensorRT-RTX runs on compute capability {gpu.compute_capability} too (GeForce RTX / RTX PRO "
                     f"class): `{rtx_install}` (real wheels on PyPI, 95 MB; no container needed).")
    else:
        lines.append(f"TensorRT-RTX does not run on compute capability {gpu.compute_capability} (its runtime accepts "
                     f"{RTX_PORTABLE_TARGETS}), so use full TensorRT here; TensorRT-RTX can still build engines here "
                     "for RTX GPUs.")
    for flavour in report.tensorrt_flavours:
        runs = flavour in report.flavours_that_run(device)
        lines.append(f"Installed: {flavour} {report.probes[flavour].version} "
                     f"({'builds and runs engines on this GPU' if runs else 'builds engines here, but cannot run them on this GPU'}).")
    return lines
