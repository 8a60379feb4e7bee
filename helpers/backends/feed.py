"""Feeds given by name, and the token-id range check shared by the backends that know their vocabulary."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..config import INPUT_NAMES
from ..errors import InputError
from .base import Backend


def check_token_range(backend_name: str, input_ids: np.ndarray, vocab_size: int | None) -> None:
    """Raise :class:`InputError` if a token id is negative or not below ``vocab_size`` (``None``: skip)."""
    if vocab_size is None or input_ids.size == 0:
        return
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab_size:
        raise InputError(
            f"{backend_name}: token ids must lie in [0, {vocab_size}) for this model, got values from {low} "
            f"to {high}; encode texts with the checkpoint's own tokenizer."
        )


def predict_feed(backend: Backend, feed: Mapping[str, Any]) -> np.ndarray:
    """Run ``backend`` on a feed given by input name (``{"input_ids": ..., "segment_ids": ...}``).

    The names must be exactly :data:`helpers.config.INPUT_NAMES`; the backend validates the arrays.
    """
    if not isinstance(feed, Mapping):
        raise InputError(f"{backend.name}: a feed is a dict of input name -> array, got {type(feed).__name__}.")
    unknown = sorted(set(feed) - set(INPUT_NAMES))
    missing = [n for n in INPUT_NAMES if n not in feed]
    if unknown or missing:
        raise InputError(
            f"{backend.name}: feed inputs must be named {list(INPUT_NAMES)}; unknown {unknown}, missing {missing}. "
            "Rename the arrays (e.g. token_type_ids -> segment_ids)."
        )
    return backend.predict_logits(feed[INPUT_NAMES[0]], feed[INPUT_NAMES[1]])
