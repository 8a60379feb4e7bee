"""PyTorch eager backend: the reference every other backend is compared with."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import BackendError
from .base import Backend


class TorchBackend(Backend):
    """Runs a :class:`~helpers.model.SentimentClassifier` in eval mode, fp32, on ``cpu`` or ``cuda``
    (named ``pytorch`` and ``pytorch-cuda``, as in :mod:`helpers.backends.registry`).

    ``max_len`` defaults to the model's number of position embeddings (the longest input it can take).
    ``threads`` sets ``torch.set_num_threads`` for the process when given (PyTorch has no per-model setting).
    The model is moved to ``device`` (the caller's object is used, not copied).
    """

    name = "pytorch"
    precision = "fp32"

    def __init__(self, model: Any, device: str = "cpu", *, max_batch: int | None = None,
                 max_len: int | None = None, threads: int | None = None) -> None:
        import torch

        if device.split(":")[0] not in {"cpu", "cuda"}:
            raise BackendError(f"pytorch: device must be 'cpu' or 'cuda', got {device!r}.")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError("pytorch: device 'cuda' was asked for but PyTorch sees no CUDA GPU; use device='cpu'.")
        config = getattr(model, "config", {})
        limit = int(config.get("max_position", 512))
        if max_len is not None and max_len > limit:
            raise BackendError(f"pytorch: max_len {max_len} is above the model's {limit} position embeddings.")
        super().__init__(max_batch=max_batch, max_len=limit if max_len is None else max_len)
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.device = device
        self.name = "pytorch" if device == "cpu" else "pytorch-cuda"
        self.model = model.to(device).float().eval()
        self.vocab_size = int(config["vocab_size"]) if "vocab_size" in config else None
        self._torch = torch

    def _run(self, input_ids: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
        torch = self._torch
        if self.model is None:
            raise BackendError("pytorch: this backend was closed; create a new TorchBackend.")
        with torch.inference_mode():
            ids = torch.from_numpy(input_ids).to(self.device)
            seg = torch.from_numpy(segment_ids).to(self.device)
            logits = self.model(ids, seg)
        return logits.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "threads": self._torch.get_num_threads(),
                "torch": self._torch.__version__}

    def close(self) -> None:
        """Drop the reference to the model (GPU memory is freed when nothing else holds it)."""
        self.model = None  # type: ignore[assignment]
