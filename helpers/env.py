"""What GPU and CUDA/TensorRT software is here, what is missing, and how to get it.

:func:`environment_report` looks without changing anything: the GPUs and their compute capability, the
driver version and the newest CUDA version that driver supports (``nvidia-smi``), and the Python
packages of the TensorRT path (torch, tensorrt, pycuda, cuda-python, onnxruntime, polygraphy) plus
``trtexec`` on ``PATH``. :func:`install_advice` turns a report into the exact steps for this machine:
``pip install tensorrt-cu12`` or ``tensorrt-cu13`` chosen from the driver's CUDA version, or the project's
``environment/Dockerfile`` built on NVIDIA's TensorRT container.
"""

from __future__ import annotations

import importlib
import platform
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any

from .bench.system import package_versions
from .errors import BackendError

#: Where NVIDIA's containers and tarballs put trtexec when it is not on PATH.
TRTEXEC_FALLBACKS: tuple[str, ...] = ("/usr/src/tensorrt/bin/trtexec", "/opt/tensorrt/bin/trtexec")
#: Import name and distribution names of each package the report looks for.
PACKAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "torch": ("torch", ("torch",)),
    "tensorrt": ("tensorrt", ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11")),
    "pycuda": ("pycuda.driver", ("pycuda",)),
    "cuda-python": ("cuda.bindings.runtime", ("cuda-bindings", "cuda-python")),
    "onnxruntime": ("onnxruntime", ("onnxruntime-gpu", "onnxruntime")),
    "polygraphy": ("polygraphy", ("polygraphy",)),
}


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as ``nvidia-smi`` (or PyTorch) names it."""

    index: int
    name: str
    compute_capability: str
    memory_mib: int = 0


@dataclass(frozen=True)
class Probe:
    """Whether one component is usable here, its version, and a sentence about it."""

    name: str
    found: bool
    version: str = ""
    detail: str = ""


@dataclass(frozen=True)
class EnvironmentReport:
    """Everything 03_trt_setup shows and :func:`install_advice` reads."""

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
    def has_tensorrt(self) -> bool:
        return self.probes["tensorrt"].found

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


# ------------------------------------------------------------------------------------------- nvidia-smi
def parse_gpu_query(csv_text: str) -> tuple[GpuInfo, ...]:
    """Parse ``nvidia-smi --query-gpu=index,name,compute_cap,memory.total --format=csv,noheader,nounits``."""
    gpus = []
    for line in csv_text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        memory = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else 0
        gpus.append(GpuInfo(int(parts[0]), parts[1], parts[2], memory))
    return tuple(gpus)


def parse_driver_header(smi_text: str) -> tuple[str, str]:
    """``(driver version, CUDA version)`` from the header of plain ``nvidia-smi`` output ("" when absent)."""
    driver = re.search(r"Driver Version:\s*([0-9.]+)", smi_text)
    cuda = re.search(r"CUDA Version:\s*([0-9.]+)", smi_text)
    return (driver.group(1) if driver else "", cuda.group(1) if cuda else "")


def _run(cmd: list[str]) -> str:
    """stdout of a short command, or "" when it is missing or fails (the report then says absent)."""
    exe = shutil.which(cmd[0])
    if exe is None:
        return ""
    proc = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=60, check=False)
    return proc.stdout if proc.returncode == 0 else ""


def _torch_gpus() -> tuple[tuple[GpuInfo, ...], str]:
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return (), ""
    cuda = str(torch.version.cuda or "")
    if not torch.cuda.is_available():
        return (), cuda
    gpus = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        gpus.append(GpuInfo(i, props.name, f"{props.major}.{props.minor}", int(props.total_memory // 2**20)))
    return tuple(gpus), cuda


def gpu_identity(device: int = 0) -> GpuInfo:
    """Name and compute capability of GPU ``device`` (what engine metadata records and checks)."""
    gpus = parse_gpu_query(_run(["nvidia-smi", "--query-gpu=index,name,compute_cap,memory.total",
                                 "--format=csv,noheader,nounits"])) or _torch_gpus()[0]
    for gpu in gpus:
        if gpu.index == device:
            return gpu
    raise BackendError(f"no NVIDIA GPU {device} is visible here (nvidia-smi and PyTorch see {len(gpus)}); "
                       "TensorRT engines need one.")


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
    gpus = parse_gpu_query(_run(["nvidia-smi", "--query-gpu=index,name,compute_cap,memory.total",
                                 "--format=csv,noheader,nounits"]))
    driver, driver_cuda = parse_driver_header(_run(["nvidia-smi"]))
    torch_gpus, torch_cuda = _torch_gpus()
    probes = {key: probe_package(key) for key in PACKAGES}
    probes["trtexec"] = find_trtexec()
    return EnvironmentReport(python=platform.python_version(), platform=platform.platform(),
                             gpus=gpus or torch_gpus, driver_version=driver, driver_cuda=driver_cuda,
                             torch_cuda=torch_cuda, probes=probes)


# ----------------------------------------------------------------------------------------------- advice
def tensorrt_package_for(driver_cuda: str) -> str:
    """The pip package of TensorRT matching the newest CUDA version a driver supports."""
    match = re.match(r"(\d+)", driver_cuda or "")
    if not match:
        raise BackendError(f"cannot read a CUDA version from {driver_cuda!r}; run nvidia-smi and read 'CUDA Version'.")
    major = int(match.group(1))
    if major >= 13:
        return "tensorrt-cu13"
    if major == 12:
        return "tensorrt-cu12"
    raise BackendError(f"the NVIDIA driver supports CUDA {driver_cuda} only; TensorRT 10/11 wheels need CUDA 12 or "
                       "13: update the driver (or use the container, which needs a recent driver too).")


def install_advice(report: EnvironmentReport) -> list[str]:
    """Markdown lines: what this machine can do with TensorRT and the exact steps to get there."""
    lines: list[str] = []
    if not report.has_gpu:
        lines.append("No NVIDIA GPU is visible here, so TensorRT cannot build or run engines on this machine; "
                     "the notebooks still show every step and run the TensorRT cells on a machine with a GPU.")
        lines.append("On a GPU machine, run this notebook again: it will print the install command for that driver.")
        return lines
    if report.has_tensorrt:
        lines.append(f"TensorRT {report.probes['tensorrt'].version} is installed: nothing to do.")
    else:
        try:
            package = tensorrt_package_for(report.driver_cuda)
        except BackendError as exc:
            lines.append(str(exc))
        else:
            lines.append(f"The driver ({report.driver_version}) supports CUDA {report.driver_cuda}: install "
                         f"`pip install {package}` (it pulls the matching TensorRT libraries from NVIDIA's index).")
    cuda_major = re.match(r"(\d+)", report.driver_cuda or "")
    cuda_python = (f"pip install 'cuda-python>={cuda_major.group(1)},<{int(cuda_major.group(1)) + 1}'"
                   if cuda_major else "pip install cuda-python")
    for key, command in (("cuda-python", cuda_python),
                         ("pycuda", "pip install pycuda  (compiles against the CUDA toolkit; needs nvcc)")):
        if not report.probes[key].found:
            lines.append(f"For {key} buffers: `{command}`.")
    if not report.probes["trtexec"].found:
        lines.append("trtexec is not on PATH: the pip wheels do not ship it; NVIDIA's container does "
                     "(/usr/src/tensorrt/bin/trtexec).")
    lines.append("Or use the container with everything preinstalled: `docker build -f environment/Dockerfile -t "
                 "bert-trt .` then `docker run --gpus all -it -p 8888:8888 -v $PWD:/workspace/project bert-trt`.")
    return lines
