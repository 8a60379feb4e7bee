"""What the numbers were measured on: hardware, software versions and CPU thread settings.

Every benchmark result carries this record, so that a number can never be separated from the machine and
versions that produced it. Absent components are recorded as absent (``None`` or an explanatory string),
never guessed.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError

#: Distributions whose versions are recorded when installed.
VERSIONED_PACKAGES: tuple[str, ...] = (
    "numpy", "torch", "bert4torch", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "tensorrt-cu12",
    "tensorrt-cu13", "tensorrt_lean_cu13_bindings", "cuda-python", "cuda-bindings", "pycuda", "transformers",
)


@dataclass(frozen=True)
class ThreadSettings:
    """CPU threads every CPU backend of one run is given."""

    torch_intra_op: int
    torch_inter_op: int
    ort_intra_op: int
    ort_inter_op: int = 1

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def fix_cpu_threads(threads: int | None = None) -> ThreadSettings:
    """Pin PyTorch's intra-op thread count to ``threads`` (default: all usable CPUs) and return the settings.

    ONNX Runtime's thread count is a session option, so :class:`ThreadSettings.ort_intra_op` must be passed to
    every ONNX Runtime backend when it is created; the benchmark line-up does this.
    """
    import torch

    n = usable_cpus() if threads in (None, 0) else int(threads)
    if n < 1:
        raise ConfigError(f"threads must be >= 1 (or 0 for all usable CPUs), got {threads}.")
    torch.set_num_threads(n)
    return ThreadSettings(torch_intra_op=torch.get_num_threads(), torch_inter_op=torch.get_num_interop_threads(),
                          ort_intra_op=n)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except FileNotFoundError:
        pass  # not Linux: fall back to platform's answer below
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def package_versions(names: tuple[str, ...] = VERSIONED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (distributions that are not installed are left out)."""
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = _md.version(name)
        except _md.PackageNotFoundError:
            continue
    return out


def _nvidia_smi() -> dict[str, str] | str:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "nvidia-smi not found"
    query = "name,driver_version,memory.total,clocks.max.sm,power.limit"
    proc = subprocess.run([exe, f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                          text=True, timeout=30, check=False)
    if proc.returncode != 0:
        return f"nvidia-smi failed ({proc.returncode}): {proc.stderr.strip()[:200]}"
    first = proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""
    return dict(zip(query.split(","), (v.strip() for v in first.split(","))))


def gpu_info() -> dict[str, Any] | None:
    """The CUDA device PyTorch sees (name, capability, memory, SMs, CUDA/cuDNN, driver), or None on a CPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 2**30, 1),
        "multiprocessors": props.multi_processor_count,
        "device_count": torch.cuda.device_count(),
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "nvidia_smi": _nvidia_smi(),
    }


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (runnable processes); None where the OS has none.

    On a machine with ``usable_cpus`` CPUs, a 1-minute load well above zero before a CPU benchmark means
    other processes compete for the cores and CPU latencies will be inflated (often several-fold).
    """
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def busy_cpu_warning(threshold: float = 0.5) -> str | None:
    """A sentence when other work keeps the CPUs busy (1-minute load above ``threshold`` x usable CPUs)."""
    load = load_average()
    if load is None or load[0] <= threshold * usable_cpus():
        return None
    return (f"the 1-minute load average is {load[0]} on {usable_cpus()} CPUs: other processes are using the "
            "CPUs, so CPU latencies measured now will be inflated; re-run on a quiet machine for reference numbers.")


def capture_environment(threads: ThreadSettings | None = None) -> dict[str, Any]:
    """Hardware, versions, thread settings and the time of measurement, as plain JSON-able data."""
    import torch

    ort_providers: list[str] | str
    try:
        import onnxruntime as ort

        ort_providers = list(ort.get_available_providers())
    except ImportError:
        ort_providers = "onnxruntime not installed"
    return {
        "measured_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": {
            "platform": platform.platform(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "cpu_model": _cpu_model(),
            "logical_cpus": os.cpu_count(),
            "usable_cpus": usable_cpus(),
            "memory_gib": _memory_gib(),
        },
        "gpu": gpu_info(),
        "versions": package_versions(),
        "torch_build": {"version": torch.__version__, "cuda": torch.version.cuda},
        "onnxruntime_providers": ort_providers,
        "threads": threads.to_dict() if threads is not None else None,
        "load_average": load_average(),
    }


def device_label(env: dict[str, Any]) -> str:
    """Short name of the machine of a captured environment, e.g. ``NVIDIA H100 80GB HBM3`` or ``2-CPU Xeon``."""
    gpu = env.get("gpu")
    if gpu:
        return str(gpu["name"])
    host = env["host"]
    return f"{host['usable_cpus']}-core CPU ({host['cpu_model']})"
