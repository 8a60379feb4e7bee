"""What machine this is: GPUs (by CUDA device index), NVIDIA driver, CPU, memory, load, package versions.

One module answers this question for every user: the TensorRT install advice (:mod:`helpers.env`), the
engine metadata that ties an engine to a GPU (:mod:`helpers.trt.metadata`) and the benchmark record
(:mod:`helpers.bench.system`). It only looks; it changes nothing, and absent components are reported as
absent (empty strings, ``None`` or an empty tuple), never guessed.

GPUs are identified the way CUDA (and so TensorRT, cuda-python, pycuda and PyTorch) numbers them: device
``d`` is the ``d``-th GPU this process can see. ``nvidia-smi`` lists every GPU of the machine by its PCI
position and ignores ``CUDA_VISIBLE_DEVICES``, so :func:`visible_gpus` applies that variable (indices or
``GPU-`` UUIDs) to nvidia-smi's list. CUDA orders visible GPUs fastest first unless
``CUDA_DEVICE_ORDER=PCI_BUS_ID``; on a machine whose visible GPUs are not all the same model, that order is
not nvidia-smi's, so the answer then comes from PyTorch, which asks CUDA itself.
"""

from __future__ import annotations

import importlib
import importlib.metadata as _md
import os
import platform
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, replace
from typing import Any, Mapping

from .errors import BackendError, ConfigError

#: Distributions whose versions are recorded when installed.
VERSIONED_PACKAGES: tuple[str, ...] = (
    "numpy", "torch", "bert4torch", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "tensorrt-cu12",
    "tensorrt-cu13", "tensorrt_lean_cu13_bindings", "tensorrt_rtx_cu13_bindings", "tensorrt_rtx_cu12_bindings",
    "cuda-python", "cuda-bindings", "pycuda", "transformers", "tokenizers",
)
#: What :func:`nvidia_smi_gpus` asks nvidia-smi for (the order :func:`parse_gpu_query` reads).
GPU_QUERY = "index,name,compute_cap,memory.total,uuid"


@dataclass(frozen=True)
class GpuInfo:
    """One GPU: its CUDA device index in this process, name, compute capability, memory and nvidia-smi UUID."""

    index: int
    name: str
    compute_capability: str
    memory_mib: int = 0
    uuid: str = ""


# ------------------------------------------------------------------------------------------- nvidia-smi
def run_quiet(cmd: list[str], timeout_s: int = 60) -> str:
    """stdout of a short command, or "" when it is missing or fails (callers then report absent)."""
    exe = shutil.which(cmd[0])
    if exe is None:
        return ""
    try:
        proc = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return ""
    return proc.stdout if proc.returncode == 0 else ""


def parse_gpu_query(csv_text: str) -> tuple[GpuInfo, ...]:
    """Parse ``nvidia-smi --query-gpu=index,name,compute_cap,memory.total[,uuid] --format=csv,noheader,nounits``."""
    gpus = []
    for line in csv_text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        memory = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else 0
        gpus.append(GpuInfo(int(parts[0]), parts[1], parts[2], memory, parts[4] if len(parts) > 4 else ""))
    return tuple(gpus)


def parse_driver_header(smi_text: str) -> tuple[str, str]:
    """``(driver version, CUDA version)`` from the header of plain ``nvidia-smi`` output ("" when absent)."""
    driver = re.search(r"Driver Version:\s*([0-9.]+)", smi_text)
    cuda = re.search(r"CUDA Version:\s*([0-9.]+)", smi_text)
    return (driver.group(1) if driver else "", cuda.group(1) if cuda else "")


def nvidia_smi_gpus() -> tuple[GpuInfo, ...]:
    """Every GPU of the machine as nvidia-smi lists it (PCI order, ``index`` = nvidia-smi's index)."""
    return parse_gpu_query(run_quiet(["nvidia-smi", f"--query-gpu={GPU_QUERY}", "--format=csv,noheader,nounits"]))


def driver_versions() -> tuple[str, str]:
    """``(driver version, newest CUDA version the driver supports)`` from nvidia-smi ("" when absent)."""
    return parse_driver_header(run_quiet(["nvidia-smi"]))


def apply_visible_devices(gpus: tuple[GpuInfo, ...], environ: Mapping[str, str] | None = None) -> tuple[GpuInfo, ...]:
    """The GPUs a CUDA process sees, in CUDA's numbering, from nvidia-smi's list and ``CUDA_VISIBLE_DEVICES``.

    Entries are nvidia-smi indices or (prefixes of) ``GPU-`` UUIDs; like CUDA, the list stops at the first
    entry that names no GPU. ``index`` of each result is its CUDA device index.
    """
    env = os.environ if environ is None else environ
    spec = env.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        chosen = list(gpus)
    else:
        chosen = []
        for entry in (e.strip() for e in spec.split(",")):
            if entry.isdigit():
                match = [g for g in gpus if g.index == int(entry)]
            elif entry.startswith("GPU-"):
                match = [g for g in gpus if g.uuid and g.uuid.startswith(entry)]
            else:  # MIG-..., -1, empty: CUDA stops here
                match = []
            if len(match) != 1 or match[0] in chosen:
                break
            chosen.append(match[0])
    return tuple(replace(g, index=i) for i, g in enumerate(chosen))


def torch_gpus() -> tuple[tuple[GpuInfo, ...], str]:
    """``(GPUs PyTorch sees, in CUDA order; PyTorch's CUDA version)``; ``((), "")`` without PyTorch."""
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


def visible_gpus(environ: Mapping[str, str] | None = None) -> tuple[GpuInfo, ...]:
    """The GPUs this process can use, indexed by CUDA device index (see the module docstring for the order)."""
    env = os.environ if environ is None else environ
    gpus = apply_visible_devices(nvidia_smi_gpus(), env)
    mixed = len({g.name for g in gpus}) > 1
    if not gpus or (mixed and env.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID"):
        from_torch = torch_gpus()[0]
        if from_torch:
            return from_torch
    return gpus


def gpu_identity(device: int = 0) -> GpuInfo:
    """Name and compute capability of CUDA device ``device`` (what engine metadata records and checks)."""
    if device < 0:
        raise ConfigError(f"a CUDA device index is >= 0, got {device}.")
    gpus = visible_gpus()
    if device >= len(gpus):
        hidden = " (CUDA_VISIBLE_DEVICES={!r})".format(os.environ["CUDA_VISIBLE_DEVICES"]) \
            if "CUDA_VISIBLE_DEVICES" in os.environ else ""
        raise BackendError(f"no NVIDIA GPU {device} is visible here{hidden}: this process sees {len(gpus)}; "
                           "TensorRT engines need one.")
    return gpus[device]


def gpu_details(device: int = 0) -> dict[str, str] | str:
    """nvidia-smi's name, driver, memory, max SM clock and power limit of CUDA device ``device``, or why not."""
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi not found"
    try:
        gpu = gpu_identity(device)
    except BackendError as exc:
        return str(exc)
    query = "name,driver_version,memory.total,clocks.max.sm,power.limit"
    selector = [f"--id={gpu.uuid}"] if gpu.uuid else []
    out = run_quiet(["nvidia-smi", *selector, f"--query-gpu={query}", "--format=csv,noheader"], timeout_s=30)
    first = out.strip().splitlines()[0] if out.strip() else ""
    if not first:
        return "nvidia-smi gave no answer for this GPU"
    return dict(zip(query.split(","), (v.strip() for v in first.split(","))))


# ---------------------------------------------------------------------------------------- host and software
def package_versions(names: tuple[str, ...] = VERSIONED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (distributions that are not installed are left out)."""
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = _md.version(name)
        except _md.PackageNotFoundError:
            continue
    return out


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` says)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except FileNotFoundError:
        pass  # not Linux: fall back to platform's answer below
    return platform.processor() or platform.machine()


def cpu_flags(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> tuple[str, ...] | None:
    """The CPU's feature flags as Linux names them (``avx2``, ``avx512_vnni``, ``amx_int8`` ...), or None where
    they cannot be read (not Linux)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            line = next((ln for ln in f if ln.startswith("flags")), None)
    except OSError:
        return None
    return None if line is None else tuple(line.split(":", 1)[1].split())


#: int8 dot-product instruction sets, as Linux names them in /proc/cpuinfo's flags, with their usual names.
INT8_INSTRUCTIONS: dict[str, str] = {"avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "amx_int8": "AMX-INT8"}


def cpu_int8_instructions(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> tuple[str, ...] | None:
    """The int8 dot-product instruction sets this CPU reports (e.g. ``("AVX-512 VNNI", "AMX-INT8")``);
    an empty tuple when it has none (e.g. AVX2 only), None where the flags cannot be read (not Linux)."""
    flags = cpu_flags(cpuinfo)
    if flags is None:
        return None
    return tuple(name for flag, name in INT8_INSTRUCTIONS.items() if flag in flags)


def cpu_summary() -> dict[str, Any]:
    """The CPU as a results record names it: model, usable cores, feature flags and int8 instruction sets."""
    flags = cpu_flags()
    return {"model": cpu_model(), "cpus": usable_cpus(), "flags": list(flags or ()),
            "int8_instructions": list(cpu_int8_instructions() or ())}


def memory_gib() -> float | None:
    """Physical memory in GiB, or None where the OS does not say."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (runnable processes); None where the OS has none.

    It lags: a minute after a heavy job ends the 1-minute load is still about a third of what it was, so
    "is the machine busy now?" is answered by :func:`cpu_busy`.
    """
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _cpu_times(stat_path: str) -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from the first line of ``/proc/stat``; None where there is none."""
    try:
        with open(stat_path, encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice, already counted in user and nice]
    ticks = [int(x) for x in fields[1:9]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return sum(ticks) - idle, sum(ticks)


def cpu_busy(window_s: float = 1.0, stat_path: str = "/proc/stat") -> float | None:
    """How many CPUs' worth of work other processes did during the last ``window_s`` seconds.

    The caller sleeps through the window, so what is counted is everybody else (the kernel, other
    programs, a previous notebook's lingering threads). ``0.05`` on a 2-CPU machine is quiet; ``1.9`` means
    both cores were taken. None where the OS has no ``/proc/stat``: see :func:`load_average` instead.
    """
    if window_s <= 0:
        raise ConfigError(f"cpu_busy: window_s must be > 0, got {window_s}.")
    before = _cpu_times(stat_path)
    if before is None:
        return None
    time.sleep(window_s)
    after = _cpu_times(stat_path)
    if after is None or after[1] <= before[1]:
        return None
    busy_share = (after[0] - before[0]) / (after[1] - before[1])
    return round(busy_share * (os.cpu_count() or 1), 2)


def host_summary() -> dict[str, Any]:
    """Platform, Python, CPU model and counts, memory: plain JSON-able data."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "memory_gib": memory_gib(),
    }
