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
import time
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

    Recorded with every result for reference. It lags: a minute after a heavy job ends the 1-minute load
    is still about a third of what it was, so "is the machine busy now?" is answered by :func:`cpu_busy`.
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


#: Share of the usable CPUs that other work may occupy before CPU timings count as inflated.
BUSY_THRESHOLD = 0.25


def cpus_busy(env: dict[str, Any], threshold: float = BUSY_THRESHOLD) -> str | None:
    """Why CPU timings of a captured environment are not reference numbers, or None when the CPUs were quiet.

    Judged from ``cpu_busy`` (other processes' CPU use just before the run); results recorded before that
    field existed fall back to the 1-minute load average with the old rule (above half the usable CPUs).
    """
    cpus = (env.get("host") or {}).get("usable_cpus") or 1
    busy = env.get("cpu_busy")
    if busy is not None:
        if busy > threshold * cpus:
            return f"other processes kept {busy} of {cpus} CPUs busy just before the run"
        return None
    load = env.get("load_average")
    if load and load[0] > 0.5 * cpus:
        return f"the 1-minute load average was {load[0]} on {cpus} CPUs"
    return None


def busy_cpu_warning(env: dict[str, Any]) -> str | None:
    """A sentence when other work kept the CPUs busy before a run (``env`` from :func:`capture_environment`)."""
    why = cpus_busy(env)
    if why is None:
        return None
    return (f"{why}: CPU latencies measured now will be inflated; re-run on a quiet machine for reference "
            "numbers.")


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
        "cpu_busy": cpu_busy(),
    }


def device_label(env: dict[str, Any]) -> str:
    """Short name of the machine of a captured environment, e.g. ``NVIDIA H100 80GB HBM3`` or ``2-CPU Xeon``."""
    gpu = env.get("gpu")
    if gpu:
        return str(gpu["name"])
    host = env["host"]
    return f"{host['usable_cpus']}-core CPU ({host['cpu_model']})"
