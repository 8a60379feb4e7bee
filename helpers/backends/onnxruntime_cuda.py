"""ONNX Runtime on a CUDA GPU, with I/O binding and (optionally) CUDA-graph replay.

Used only where the ``onnxruntime-gpu`` package is installed (it provides ``CUDAExecutionProvider``);
with the CPU-only ``onnxruntime`` the constructor raises :class:`~helpers.errors.BackendError` with one
sentence saying so and how to install it, which the benchmark records as the skip reason.

Why I/O binding: a plain ``session.run`` copies every input to the GPU and every output back, and
allocates the output each time. With an :class:`onnxruntime.IOBinding`, inputs and the output live in GPU
buffers made once per shape (``OrtValue`` s); a call copies the new token ids into them in place, runs, and
reads the logits back.

Why CUDA graphs: at batch 1 a BERT forward is hundreds of small kernels, and launching them costs more
than running them. With ``enable_cuda_graph`` ONNX Runtime captures the whole run once and then replays
it with one launch. A captured graph is tied to its buffers' addresses and shapes, so each shape gets its
own graph, named by the ``gpu_graph_id`` run option, and its own buffers (kept in an LRU cache).

``onnxruntime.preload_dlls()`` (onnxruntime >= 1.21) lets the GPU package use the CUDA and cuDNN libraries
that an installed CUDA build of PyTorch already brings, instead of a system-wide CUDA installation.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import INPUT_NAMES, OUTPUT_NAME
from ..errors import BackendError, ConfigError
from .base import Backend
from .shape_cache import ShapeCache

CUDA_PROVIDER = "CUDAExecutionProvider"


@dataclass(frozen=True)
class OrtCudaConfig:
    """How to run an ONNX model with ONNX Runtime's CUDA execution provider."""

    cuda_graph: bool = False
    device_id: int = 0
    preload_dlls: bool = True
    max_shapes: int = 16

    def __post_init__(self) -> None:
        if self.device_id < 0 or self.max_shapes < 1:
            raise ConfigError(f"OrtCudaConfig needs device_id >= 0 and max_shapes >= 1, got {self}.")


def cuda_provider_missing_reason() -> str | None:
    """Why ONNX Runtime cannot run on CUDA here (one sentence), or None when it can."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed; `pip install onnxruntime-gpu` for the CUDA backend."
    if CUDA_PROVIDER not in ort.get_available_providers():
        return (f"onnxruntime {ort.__version__} has no {CUDA_PROVIDER} (providers: {', '.join(ort.get_available_providers())}); "
                "install onnxruntime-gpu instead of onnxruntime (matching your CUDA major version) to measure it.")
    return None


@dataclass
class _Slot:
    ids: Any
    seg: Any
    out: Any
    binding: Any
    run_options: Any
    graph_id: int | None


class OrtCudaBackend(Backend):
    """An ONNX model on ONNX Runtime's CUDA provider, fed through I/O binding (see the module docstring).

    ``precision`` labels the model file's precision for reports (``fp32`` or ``fp16``); the model's inputs
    and output stay int32 and float32 either way.
    """

    device = "cuda"

    def __init__(self, model_path: str | os.PathLike[str], config: OrtCudaConfig = OrtCudaConfig(), *,
                 precision: str = "fp32", name: str | None = None, max_batch: int | None = None,
                 max_len: int | None = None) -> None:
        super().__init__(max_batch=max_batch, max_len=max_len)
        self.name = name or f"ort-cuda-{precision}" + ("-graph" if config.cuda_graph else "")
        self.precision = precision
        self.config = config
        reason = cuda_provider_missing_reason()
        if reason is not None:
            raise BackendError(f"{self.name}: {reason}")
        if not os.path.isfile(model_path):
            raise BackendError(f"{self.name}: no ONNX model at {model_path}; run notebook 02_onnx_export first.")
        import onnxruntime as ort

        self._ort = ort
        if config.preload_dlls and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()
        options = {"device_id": str(config.device_id), "enable_cuda_graph": "1" if config.cuda_graph else "0"}
        self.model_path = str(model_path)
        self._sess = ort.InferenceSession(self.model_path, ort.SessionOptions(), providers=[(CUDA_PROVIDER, options)])
        if self._sess.get_providers()[0] != CUDA_PROVIDER:
            raise BackendError(
                f"{self.name}: ONNX Runtime fell back to {self._sess.get_providers()} (the CUDA or cuDNN libraries "
                "could not be loaded); install a CUDA build of PyTorch or the NVIDIA CUDA/cuDNN wheels that "
                "onnxruntime-gpu names, then retry."
            )
        names = [i.name for i in self._sess.get_inputs()]
        outputs = [o.name for o in self._sess.get_outputs()]
        if sorted(names) != sorted(INPUT_NAMES) or OUTPUT_NAME not in outputs:
            raise BackendError(f"{self.name}: {model_path} has inputs {names} and outputs {outputs}; expected "
                               f"inputs {list(INPUT_NAMES)} and output {OUTPUT_NAME!r} (re-export with 02_onnx_export).")
        dim = self._sess.get_outputs()[outputs.index(OUTPUT_NAME)].shape[-1]
        self._labels = int(dim) if isinstance(dim, int) else None
        self._graph_ids = itertools.count(1)  # 0 is reserved by ONNX Runtime; -1 disables capture
        self._slots: ShapeCache[tuple[int, int], _Slot] = ShapeCache(self._build_slot, config.max_shapes)

    def _learn_labels(self, batch: int, seq_len: int) -> int:
        ids = np.full((batch, seq_len), 5, dtype=np.int32)
        out = self._sess.run([OUTPUT_NAME], {INPUT_NAMES[0]: ids, INPUT_NAMES[1]: np.zeros_like(ids)})[0]
        return int(out.shape[-1])

    def _build_slot(self, key: tuple[int, int]) -> _Slot:
        ort, dev = self._ort, self.config.device_id
        batch, seq_len = key
        if self._labels is None:
            self._labels = self._learn_labels(batch, seq_len)
        new = ort.OrtValue.ortvalue_from_shape_and_type
        ids, seg = new([batch, seq_len], np.int32, "cuda", dev), new([batch, seq_len], np.int32, "cuda", dev)
        out = new([batch, self._labels], np.float32, "cuda", dev)
        binding = self._sess.io_binding()
        binding.bind_ortvalue_input(INPUT_NAMES[0], ids)
        binding.bind_ortvalue_input(INPUT_NAMES[1], seg)
        binding.bind_ortvalue_output(OUTPUT_NAME, out)
        run_options = ort.RunOptions()
        graph_id = None
        if self.config.cuda_graph:
            graph_id = next(self._graph_ids)
            run_options.add_run_config_entry("gpu_graph_id", str(graph_id))
        return _Slot(ids, seg, out, binding, run_options, graph_id)

    def _stage(self, slot: _Slot, input_ids: np.ndarray, segment_ids: np.ndarray) -> None:
        slot.ids.update_inplace(input_ids)
        slot.seg.update_inplace(segment_ids)

    def _run(self, input_ids: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
        slot = self._slots.get(tuple(input_ids.shape))
        self._stage(slot, input_ids, segment_ids)
        self._sess.run_with_iobinding(slot.binding, slot.run_options)
        return np.array(slot.out.numpy(), dtype=np.float32, copy=True)

    def device_compute_ms(self, input_ids: np.ndarray, segment_ids: np.ndarray, iters: int) -> list[float]:
        """Time ``iters`` runs on inputs already on the GPU (host clock around a synchronised run)."""
        ids, seg = self.validate_feed(input_ids, segment_ids)
        slot = self._slots.get(tuple(ids.shape))
        self._stage(slot, ids, seg)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter_ns()
            self._sess.run_with_iobinding(slot.binding, slot.run_options)
            slot.binding.synchronize_outputs()
            times.append((time.perf_counter_ns() - t0) / 1e6)
        return times

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({"model": os.path.basename(self.model_path), "onnxruntime": self._ort.__version__,
                     "cuda_graph": self.config.cuda_graph, "io_binding": True, "includes_copies": True,
                     "shapes_built": self._slots.builds, "shapes_evicted": self._slots.evictions})
        return info

    def close(self) -> None:
        slots = getattr(self, "_slots", None)
        if slots is not None:
            slots.clear()
        self._sess = None
