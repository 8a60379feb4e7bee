"""PyTorch on a CUDA GPU: fp32/fp16 eager, CUDA-graph replay and ``torch.compile``, behind one Backend.

One class, :class:`TorchCudaBackend`, with the variant chosen by :class:`TorchCudaConfig`:

* ``mode="eager"``: the model runs op by op. At batch 1 a BERT forward is ~1,000 small kernel launches,
  so the GPU mostly waits for the CPU to launch them (fp16 is then no faster than fp32).
* ``mode="cuda_graph"``: for each input shape, the forward is captured once into a CUDA graph that reads
  static input buffers; a call copies the feed into those buffers and replays the whole graph with one
  launch. Graphs of all shapes share one memory pool. Captured once per shape, kept in an LRU cache of
  ``max_shapes`` entries.
* ``mode="compile"``: ``torch.compile(model, mode=compile_mode, dynamic=False)``; each new shape compiles
  (``max-autotune`` benchmarks kernels and uses CUDA graphs: minutes for BERT-base). The time of each
  shape's first call is recorded in :attr:`TorchCudaBackend.setup_seconds`.

Every call is end to end: the int32 feed is copied into pinned host buffers, sent to the GPU
asynchronously, run, and the logits come back through a pinned buffer; the call returns after the stream
is synchronised. :meth:`TorchCudaBackend.device_compute_ms` times the GPU work alone with CUDA events.
Buffers are per shape and reused; returned logits are always a fresh copy.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import BackendError, ConfigError
from .base import Backend
from .shape_cache import ShapeCache

MODES = ("eager", "cuda_graph", "compile")
PRECISIONS = ("fp32", "fp16", "bf16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

@dataclass(frozen=True)
class TorchCudaConfig:
    """Which GPU PyTorch variant to build."""

    precision: str = "fp16"
    mode: str = "eager"
    compile_mode: str = "max-autotune"
    max_shapes: int = 32          # shapes kept (graphs / staging buffers); least recently used go first
    capture_warmup: int = 3       # eager runs on a side stream before a graph capture, as PyTorch advises
    device: str = "cuda:0"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"TorchCudaConfig.precision must be one of {PRECISIONS}, got {self.precision!r}.")
        if self.mode not in MODES:
            raise ConfigError(f"TorchCudaConfig.mode must be one of {MODES}, got {self.mode!r}.")
        if self.compile_mode not in COMPILE_MODES:
            raise ConfigError(f"TorchCudaConfig.compile_mode must be one of {COMPILE_MODES}, got {self.compile_mode!r}.")
        if self.max_shapes < 1 or self.capture_warmup < 1:
            raise ConfigError(f"max_shapes and capture_warmup must be >= 1, got {self.max_shapes}, {self.capture_warmup}.")

    @property
    def name(self) -> str:
        """Backend name, e.g. ``torch-cuda-fp16``, ``torch-cuda-fp16-graph``, ``torch-compile-fp16-max-autotune``."""
        if self.mode == "compile":
            return f"torch-compile-{self.precision}-{self.compile_mode}"
        return f"torch-cuda-{self.precision}" + ("-graph" if self.mode == "cuda_graph" else "")


def require_cuda(step: str) -> None:
    """Raise :class:`BackendError` naming ``step`` when PyTorch sees no CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
    raise BackendError(
        f"{step}: PyTorch {torch.__version__} ({build}) sees no CUDA GPU. Run this on a machine with an NVIDIA "
        "GPU and a CUDA build of PyTorch, or use the CPU backends (TorchBackend, OrtBackend)."
    )


@dataclass
class _Slot:
    """Buffers (and, for graph mode, the captured graph) of one input shape."""

    host_ids: Any
    host_seg: Any
    dev_ids: Any
    dev_seg: Any
    host_out: Any
    graph: Any = None
    graph_out: Any = None


class TorchCudaBackend(Backend):
    """A PyTorch model on a CUDA GPU, in the variant given by ``config`` (see the module docstring).

    The caller's ``model`` is left untouched: a copy is moved to the GPU and cast to the precision.
    """

    device = "cuda"

    def __init__(self, model: Any, config: TorchCudaConfig = TorchCudaConfig(), *, max_batch: int | None = None,
                 max_len: int | None = None) -> None:
        super().__init__(max_batch=max_batch, max_len=max_len)
        require_cuda(config.name)
        import torch

        self.config = config
        self.name = config.name
        self.precision = config.precision
        self._torch = torch
        self._dev = torch.device(config.device)
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[config.precision]
        self._model = copy.deepcopy(model).to(self._dev, dtype=dtype).eval()
        self._num_labels = int(getattr(self._model, "num_labels", 0)) or None
        self._forward: Callable[..., Any] = self._model
        if config.mode == "compile":
            dyn = torch._dynamo.config  # one compiled variant per shape: let it keep max_shapes of them
            dyn.recompile_limit = max(int(dyn.recompile_limit), config.max_shapes)
            self._forward = torch.compile(self._model, mode=config.compile_mode, dynamic=False)
        self._pool = torch.cuda.graph_pool_handle() if config.mode == "cuda_graph" else None
        self.setup_seconds: dict[str, float] = {}
        self._slots: ShapeCache[tuple[int, int], _Slot] = ShapeCache(self._build_slot, config.max_shapes)

    # ------------------------------------------------------------------ per-shape buffers and graphs
    def _build_slot(self, key: tuple[int, int]) -> _Slot:
        torch = self._torch
        batch, seq_len = key
        pinned = dict(dtype=torch.int32, pin_memory=True)
        slot = _Slot(
            host_ids=torch.empty((batch, seq_len), **pinned), host_seg=torch.zeros((batch, seq_len), **pinned),
            dev_ids=torch.ones((batch, seq_len), dtype=torch.int32, device=self._dev),
            dev_seg=torch.zeros((batch, seq_len), dtype=torch.int32, device=self._dev),
            host_out=None,
        )
        t0 = time.perf_counter()
        with torch.no_grad():
            if self.config.mode == "cuda_graph":
                side = torch.cuda.Stream(self._dev)
                side.wait_stream(torch.cuda.current_stream(self._dev))
                with torch.cuda.stream(side):
                    for _ in range(self.config.capture_warmup):
                        self._model(slot.dev_ids, slot.dev_seg)
                torch.cuda.current_stream(self._dev).wait_stream(side)
                slot.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(slot.graph, pool=self._pool):
                    slot.graph_out = self._model(slot.dev_ids, slot.dev_seg)
                out = slot.graph_out
            else:
                out = self._forward(slot.dev_ids, slot.dev_seg)  # compile mode: compiles this shape now
        torch.cuda.synchronize(self._dev)
        self.setup_seconds[f"{batch}x{seq_len}"] = time.perf_counter() - t0
        slot.host_out = torch.empty(tuple(out.shape), dtype=torch.float32, pin_memory=True)
        return slot

    def _compute(self, slot: _Slot) -> Any:
        """Run the model on the slot's device inputs; return the device logits (valid until the next run)."""
        if slot.graph is not None:
            slot.graph.replay()
            return slot.graph_out
        with self._torch.no_grad():
            return self._forward(slot.dev_ids, slot.dev_seg)

    def _stage(self, slot: _Slot, input_ids: np.ndarray, segment_ids: np.ndarray) -> None:
        slot.host_ids.numpy()[...] = input_ids
        slot.host_seg.numpy()[...] = segment_ids
        slot.dev_ids.copy_(slot.host_ids, non_blocking=True)
        slot.dev_seg.copy_(slot.host_seg, non_blocking=True)

    # ------------------------------------------------------------------ Backend
    def _run(self, input_ids: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
        slot = self._slots.get(tuple(input_ids.shape))
        self._stage(slot, input_ids, segment_ids)
        out = self._compute(slot)
        slot.host_out.copy_(out.float(), non_blocking=True)
        self._torch.cuda.current_stream(self._dev).synchronize()
        return slot.host_out.numpy().copy()

    def device_compute_ms(self, input_ids: np.ndarray, segment_ids: np.ndarray, iters: int) -> list[float]:
        """GPU time of ``iters`` forwards on inputs already on the GPU, each timed with CUDA events."""
        ids, seg = self.validate_feed(input_ids, segment_ids)
        torch = self._torch
        slot = self._slots.get(tuple(ids.shape))
        self._stage(slot, ids, seg)
        torch.cuda.current_stream(self._dev).synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(iters):
            start.record()
            self._compute(slot)
            end.record()
            end.synchronize()
            times.append(float(start.elapsed_time(end)))
        return times

    def describe(self) -> dict[str, Any]:
        torch = self._torch
        info = super().describe()
        info.update({
            "mode": self.config.mode, "compile_mode": self.config.compile_mode if self.config.mode == "compile" else None,
            "gpu": torch.cuda.get_device_name(self._dev), "shapes_built": self._slots.builds,
            "shapes_evicted": self._slots.evictions, "setup_seconds": dict(self.setup_seconds),
            "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32), "includes_copies": True,
        })
        return info

    def close(self) -> None:
        slots = getattr(self, "_slots", None)
        if slots is not None:
            slots.clear()
        self._model = None  # type: ignore[assignment]
        self._forward = None  # type: ignore[assignment]
        torch = getattr(self, "_torch", None)
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
