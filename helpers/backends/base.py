"""The one small interface every inference backend implements.

A backend turns token ids into logits and nothing else: it never tokenizes, never applies softmax, never
knows about labels. Its feed is two integer arrays ``input_ids`` and ``segment_ids`` of shape
``[batch, seq_len]``; its result is a float32 array ``[batch, num_labels]``. The base class validates the
feed once (type, rank, dtype, shape, limits, token-id range) so that subclasses only implement
:meth:`Backend._run`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ..config import INPUT_DTYPE, INPUT_NAMES, OUTPUT_NAME
from ..errors import InputError

__all__ = ["Backend", "INPUT_DTYPE", "INPUT_NAMES", "OUTPUT_NAME"]


class Backend(ABC):
    """Base class: validate the feed, then call :meth:`_run`.

    ``max_batch`` / ``max_len`` are the largest shapes the backend accepts (``None``: unlimited); the
    :class:`~helpers.backends.Classifier` splits its work so that it never asks for more. A backend that knows
    its model's vocabulary sets ``vocab_size``, and token ids outside ``[0, vocab_size)`` are refused.
    """

    name: str = "backend"
    device: str = "cpu"
    precision: str = "fp32"
    vocab_size: int | None = None

    def __init__(self, *, max_batch: int | None = None, max_len: int | None = None) -> None:
        self.max_batch = max_batch
        self.max_len = max_len

    # ------------------------------------------------------------------ public API
    def predict_logits(self, input_ids: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
        """Validate the two ``[batch, seq_len]`` integer arrays and return float32 logits ``[batch, labels]``."""
        ids, seg = self.validate_feed(input_ids, segment_ids)
        return self._run(ids, seg)

    def validate_feed(self, input_ids: Any, segment_ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """Check and convert a feed; raise :class:`InputError` naming what is wrong and what to do."""
        arrays = []
        for name, arr in zip(INPUT_NAMES, (input_ids, segment_ids)):
            if not isinstance(arr, np.ndarray):
                raise InputError(f"{self.name}: {name} must be a numpy array, got {type(arr).__name__}.")
            if arr.ndim != 2:
                raise InputError(
                    f"{self.name}: {name} must have rank 2 [batch, seq_len], got shape {arr.shape}; "
                    "wrap a single sentence as a batch of one."
                )
            if not np.issubdtype(arr.dtype, np.integer):
                raise InputError(
                    f"{self.name}: {name} must hold integers (token ids), got dtype {arr.dtype}; "
                    "use the tokenizer's output, not floats."
                )
            arrays.append(arr)
        ids, seg = arrays
        if ids.shape != seg.shape:
            raise InputError(f"{self.name}: input_ids {ids.shape} and segment_ids {seg.shape} must have the same shape.")
        batch, seq_len = ids.shape
        if batch < 1 or seq_len < 1:
            raise InputError(f"{self.name}: empty feed of shape {ids.shape}; give at least one token in one row.")
        if self.max_batch is not None and batch > self.max_batch:
            raise InputError(
                f"{self.name}: batch {batch} is above this backend's maximum {self.max_batch}; "
                "split the batch (the Classifier does this for you)."
            )
        if self.max_len is not None and seq_len > self.max_len:
            raise InputError(
                f"{self.name}: sequence length {seq_len} is above this backend's maximum {self.max_len}; "
                "truncate the text (the tokenizer's max_len does this)."
            )
        if self.vocab_size is not None:
            low, high = int(ids.min()), int(ids.max())
            if low < 0 or high >= self.vocab_size:
                raise InputError(
                    f"{self.name}: token ids must lie in [0, {self.vocab_size}) for this model, got values from "
                    f"{low} to {high}; encode texts with the checkpoint's own tokenizer."
                )
        return (
            np.ascontiguousarray(ids, dtype=INPUT_DTYPE),
            np.ascontiguousarray(seg, dtype=INPUT_DTYPE),
        )

    def describe(self) -> dict[str, Any]:
        """What this backend is, for reports and benchmark records."""
        return {"backend": self.name, "device": self.device, "precision": self.precision,
                "max_batch": self.max_batch, "max_len": self.max_len}

    def close(self) -> None:
        """Release sessions, engines and buffers. Safe to call twice."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {self.device} ({self.precision})>"

    # ------------------------------------------------------------------ subclass hook
    @abstractmethod
    def _run(self, input_ids: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
        """Run validated, contiguous int32 arrays; return float32 logits ``[batch, labels]``."""
