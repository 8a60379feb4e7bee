"""Texts in, labels and probabilities out, over any backend.

``Classifier(tokenizer, backend, labels)`` tokenizes once, sorts the texts by token count (so each batch
holds texts of similar length), pads each batch only to its own longest row, runs the backend, computes
softmax outside the graph and puts the results back in the caller's order. It never sends the backend a
batch larger than ``backend.max_batch`` or a row longer than ``backend.max_len``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..config import INPUT_DTYPE
from ..errors import BackendError, ConfigError
from ..tokenizer import SentenceTokenizer
from .base import Backend


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (stable: the row maximum is subtracted), returned as float32."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class Prediction:
    """What :meth:`Classifier.predict` returns, one row per text in the caller's order.

    ``real_tokens`` counts tokens of the texts; ``padded_tokens`` counts every position the backend
    computed (real + padding): their ratio shows what length bucketing saves.
    """

    labels: list[str]
    label_ids: np.ndarray
    probabilities: np.ndarray
    logits: np.ndarray
    batches: int
    real_tokens: int
    padded_tokens: int
    truncated: int

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def padding_fraction(self) -> float:
        """Share of computed positions that were padding."""
        return 1.0 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0


def checked_max_padding(value: float | None, owner: str) -> float | None:
    """``value`` as a padding cap (a share from 0 up to, not including, 1; or None: no cap), else ConfigError."""
    if value is not None and not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{owner}: max_padding is the largest share of padding in a batch, from 0 up to (not "
                          f"including) 1, or None for no limit; got {value}.")
    return None if value is None else float(value)


class Classifier:
    """Sentiment classifier over one backend (PyTorch, ONNX Runtime, TensorRT: it never knows which).

    ``batch_size`` is the most texts per backend call (capped by ``backend.max_batch``); with
    ``bucket=False`` texts keep their order in the batches (still padded per batch), which is useful to
    measure what bucketing buys.

    ``pad_multiple`` rounds each batch's width up to a multiple of it (never beyond the tokenizer's
    ``max_len``). Backends that prepare something per input shape (a captured CUDA graph, a compiled kernel)
    then see at most ``max_len / pad_multiple`` widths per batch size instead of one per text length, at the
    price of a few padded positions per row; 1 (the default) pads to the longest row only.

    ``max_padding`` (0 to 1, or None) caps the share of a batch's positions that are padding: after sorting,
    a batch ends early when the next, longer text would push that share above it. Where the backend's cost
    grows with the positions it computes and barely with the number of calls (ONNX Runtime on a CPU), this
    stops a few long texts from making every short one in their batch pay their width - a server's batches of
    texts that arrived together are not length-sorted. None (the default) fills every batch to ``batch_size``,
    which suits a GPU, where a call costs more than its padding.
    """

    def __init__(self, tokenizer: SentenceTokenizer, backend: Backend, labels: Sequence[str], *, batch_size: int = 32,
                 bucket: bool = True, pad_multiple: int = 1, max_padding: float | None = None) -> None:
        if int(batch_size) < 1:
            raise ConfigError(f"classifier: batch_size must be at least 1, got {batch_size}.")
        if int(pad_multiple) < 1:
            raise ConfigError(f"classifier: pad_multiple must be at least 1 (1: no rounding), got {pad_multiple}.")
        if len(labels) < 2:
            raise ConfigError(f"classifier: give the names of at least 2 labels, got {list(labels)}.")
        tok_len = int(tokenizer.max_len)
        if backend.max_len is not None and tok_len > backend.max_len:
            raise ConfigError(
                f"classifier: the tokenizer makes rows of up to {tok_len} tokens but {backend.name} accepts at "
                f"most {backend.max_len}; use a tokenizer with max_len <= {backend.max_len} or a backend built "
                "for longer inputs."
            )
        self.tokenizer = tokenizer
        self.backend = backend
        self.labels = list(labels)
        self.batch_size = int(batch_size) if backend.max_batch is None else min(int(batch_size), backend.max_batch)
        self.bucket = bool(bucket)
        self.pad_multiple = int(pad_multiple)
        self.max_padding = checked_max_padding(max_padding, "classifier")

    def width(self, longest: int) -> int:
        """Width of a batch whose longest row has ``longest`` tokens (see ``pad_multiple``)."""
        m = self.pad_multiple
        return min(-(-int(longest) // m) * m, int(self.tokenizer.max_len)) if m > 1 else int(longest)

    def batch_rows(self, lengths: np.ndarray) -> list[np.ndarray]:
        """Row indices of each batch: sorted by length (stable) when bucketing, else in the given order; each
        at most ``batch_size`` rows, and with ``max_padding`` set (and bucketing) cut early where the next row
        would make the batch more padding than that. (:attr:`Prediction.batches` counts them.)"""
        order = np.argsort(lengths, kind="stable") if self.bucket else np.arange(len(lengths))
        if self.max_padding is None or not self.bucket:
            return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        groups: list[np.ndarray] = []
        start, real = 0, 0
        for i, row in enumerate(order):
            n = int(lengths[row])
            rows = i - start + 1
            if rows > 1 and (rows > self.batch_size
                             or 1.0 - (real + n) / (rows * self.width(n)) > self.max_padding):
                groups.append(order[start:i])
                start, real = i, 0
            real += n
        groups.append(order[start:])
        return groups

    def predict(self, texts: Sequence[str]) -> Prediction:
        """Classify ``texts``: a non-empty list (or tuple, 1-D array, Series) of non-empty strings.

        Anything else - ``None``, a number, ``bytes``, a dict, a set, a generator, or one bare ``str`` (wrap
        it as ``[text]``) - raises :class:`~helpers.errors.InputError` saying what to pass instead."""
        encoded = self.tokenizer.encode_batch(texts, step="Classifier.predict")
        ids, segments, lengths = encoded.input_ids, encoded.segment_ids, encoded.lengths
        extra = self.width(int(lengths.max())) - ids.shape[1]
        if extra > 0:  # room for rounding the widest batch up to pad_multiple
            ids = np.pad(ids, ((0, 0), (0, extra)), constant_values=self.tokenizer.pad_id)
            segments = np.pad(segments, ((0, 0), (0, extra)), constant_values=0)
        logits = np.empty((len(lengths), len(self.labels)), dtype=np.float32)
        groups = self.batch_rows(lengths)
        padded = 0
        for rows in groups:
            width = self.width(int(lengths[rows].max()))
            batch_ids = np.ascontiguousarray(ids[rows, :width], dtype=INPUT_DTYPE)
            batch_seg = np.ascontiguousarray(segments[rows, :width], dtype=INPUT_DTYPE)
            out = self.backend.predict_logits(batch_ids, batch_seg)
            if out.shape != (len(rows), len(self.labels)):
                raise BackendError(
                    f"classifier: {self.backend.name} returned logits of shape {out.shape} for {len(rows)} texts "
                    f"and {len(self.labels)} labels {self.labels}; do the labels belong to this model?"
                )
            logits[rows] = out
            padded += batch_ids.size
        probabilities = softmax(logits)
        label_ids = probabilities.argmax(axis=1).astype(np.int64)
        return Prediction(
            labels=[self.labels[i] for i in label_ids], label_ids=label_ids, probabilities=probabilities,
            logits=logits, batches=len(groups), real_tokens=int(lengths.sum()), padded_tokens=int(padded),
            truncated=int(encoded.truncated),
        )

    def __repr__(self) -> str:
        return (f"Classifier({self.backend!r}, labels={self.labels}, batch_size={self.batch_size}, "
                f"bucket={self.bucket}, pad_multiple={self.pad_multiple}, max_padding={self.max_padding})")
