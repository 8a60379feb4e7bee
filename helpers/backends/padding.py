"""Two graphs of one model, chosen per batch by where its padding is.

ONNX Runtime's fused ``Attention`` can take the attention mask in two forms. The raw 2-D mask (one 0/1 per
token) is right for any batch: bert4torch treats *every* id 0 as padding, wherever it sits. The 1-D "mask
index" (the number of real tokens per row) lets ONNX Runtime's CUDA provider use its fused attention kernels,
which are faster, but it means "the first n tokens are real": it is right only when every row is its real
tokens followed by padding. The series' tokenizer always pads on the right, so batches made by the
:class:`~helpers.backends.Classifier` qualify, while a raw ``predict_logits`` call may carry id 0 anywhere.

:class:`RightPaddingRouter` holds both backends and checks each batch (:func:`right_padded`: two vectorised
comparisons, microseconds even at 64 x 512) before choosing: the fast one for right-padded batches, the exact
one otherwise. The answer is the exact model's either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import Backend


def right_padded(input_ids: np.ndarray) -> bool:
    """True when every row starts with a real token and has no real token after its first padding (id 0)."""
    zero = input_ids == 0
    return not zero[:, 0].any() and not (zero[:, :-1] & ~zero[:, 1:]).any()


class RightPaddingRouter(Backend):
    """``fast`` for right-padded batches, ``exact`` for every other batch (see the module docstring).

    Both backends must run the same model; ``fast`` may assume right padding (e.g. ONNX Runtime's fused
    attention with a 1-D mask index, 02's ``model.fused.fp16.rightpad.onnx``). The router owns both and closes
    both. ``calls`` counts the batches each one ran.
    """

    def __init__(self, exact: Backend, fast: Backend, *, name: str | None = None) -> None:
        if exact.device != fast.device:
            raise ConfigError(f"RightPaddingRouter: {exact.name} runs on {exact.device} and {fast.name} on "
                              f"{fast.device}; give it two backends on one device.")
        limits = [(b.max_batch, b.max_len) for b in (exact, fast)]
        super().__init__(max_batch=_smallest(b for b, _ in limits), max_len=_smallest(n for _, n in limits))
        self.exact, self.fast = exact, fast
        self.name = name or f"{exact.name}-rightpad"
        self.device, self.precision = exact.device, exact.precision
        self.calls = {"fast": 0, "exact": 0}

    def choose(self, input_ids: np.ndarray) -> Backend:
        """The backend that runs this (validated) batch."""
        return self.fast if right_padded(input_ids) else self.exact

    def _run(self, input_ids: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
        backend = self.choose(input_ids)
        self.calls["fast" if backend is self.fast else "exact"] += 1
        return backend._run(input_ids, segment_ids)

    def device_compute_ms(self, input_ids: np.ndarray, segment_ids: np.ndarray, iters: int) -> list[float]:
        """Device time of the backend this batch goes to, inputs already on the device (GPU backends time
        their device work alone); :class:`NotImplementedError` when that backend cannot."""
        ids, seg = self.validate_feed(input_ids, segment_ids)
        backend = self.choose(ids)
        timer = getattr(backend, "device_compute_ms", None)
        if timer is None:
            raise NotImplementedError(f"{self.name}: {backend.name} does not time its device work alone.")
        return timer(ids, seg, iters)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({"router": "right-padded batches -> fast, others -> exact", "calls": dict(self.calls),
                     "exact": self.exact.describe(), "fast": self.fast.describe()})
        return info

    def close(self) -> None:
        self.exact.close()
        self.fast.close()


def _smallest(values: Any) -> int | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None
