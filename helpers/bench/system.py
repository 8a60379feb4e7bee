"""The benchmark record: thread settings, the machine a number was measured on, and whether it was quiet.

Every benchmark result carries this record, so that a number can never be separated from the machine and
versions that produced it. What the machine is comes from :mod:`helpers.machine`; this module adds what a
benchmark needs on top (CPU thread settings, the GPU's multiprocessors and cuDNN, whether other work kept
the CPUs busy). Absent components are recorded as absent (``None`` or an explanatory string), never guessed.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError
from ..machine import cpu_busy, gpu_details, host_summary, load_average, package_versions, usable_cpus


@dataclass(frozen=True)
class ThreadSettings:
    """CPU threads every CPU backend of one run is given."""

    torch_intra_op: int
    torch_inter_op: int
    ort_intra_op: int
    ort_inter_op: int = 1

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def fix_cpu_threads(threads: int | None = None) -> ThreadSettings:
    """Pin PyTorch's intra-op thread count to ``threads`` (default: all usable CPUs) and return the settings.

    ONNX Runtime's thread count is a session option, given to every ONNX Runtime backend when it is created:
    :func:`~helpers.bench.build_lineup` gives them the same number (0: every usable CPU).
    """
    import torch

    n = usable_cpus() if threads in (None, 0) else int(threads)
    if n < 1:
        raise ConfigError(f"threads must be >= 1 (or 0 for all usable CPUs), got {threads}.")
    torch.set_num_threads(n)
    return ThreadSettings(torch_intra_op=torch.get_num_threads(), torch_inter_op=torch.get_num_interop_threads(),
                          ort_intra_op=n)


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
        "nvidia_smi": gpu_details(0),
    }


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
        "host": host_summary(),
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
