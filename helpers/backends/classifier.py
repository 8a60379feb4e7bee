"""Texts in, labels and probabilities out, over any backend, at the backend's speed.

``Classifier(tokenizer, backend, labels)`` tokenizes, sorts the texts by token count (so each batch holds
texts of similar length), pads each batch only to its own longest row, runs the backend, computes softmax
outside the graph and puts the results back in the caller's order. It never sends the backend a batch
larger than ``backend.max_batch`` or a row longer than ``backend.max_len``.

Python must not set the pace, so the host work is done in bulk:

* **encoding** is one call of the Rust tokenizer per chunk of texts (all cores, without the GIL), and
  padding, sorting and forming batches are numpy operations - no Python loop runs once per text;
* **batches** hold at most ``batch_size`` rows and, with ``max_tokens``, at most that many positions
  (rows x width): on a GPU one call costs more than its padding, so short texts travel in large batches
  (fewer, fuller calls) and long ones in smaller ones, still length-sorted;
* **prefetching**: with ``chunk`` set, the texts are taken in chunks (ordered by character count, which
  follows token count closely, so each chunk spans a narrow range of lengths; the first chunks are smaller,
  so the device starts early) and each chunk is tokenized, sorted and cut into ready int32 batches on its
  own. With ``prefetch`` a worker thread prepares chunk i+1 while the backend runs chunk i.

Why a worker thread, not pinned buffers or a second CUDA stream: the Classifier never knows the backend or
its device memory (DESIGN: data flows one way), and the host work worth hiding is tokenizing, which runs in
Rust without the GIL - as do the backends' device calls (ONNX Runtime's run, TensorRT's execute and stream
synchronisation, PyTorch's copies). A thread overlaps the two whatever the backend; the backends keep their
own transfers (pinned buffers where they have them). An error in the worker (a bad text in chunk i+1) is
raised in the caller, and no result is returned. On a CPU the backend already uses every core, so a thread
would only compete with it: there the defaults keep one chunk and no thread.

The defaults depend on the backend's device, in one place (:data:`DEVICE_BATCH_SETTINGS`), so 05, 06, 07's
served model and the bulk command (``python -m helpers.classify``) batch alike: on a CPU 32 texts per batch
padded to the longest (as before); on a GPU a token budget, widths rounded up to a multiple of 16 (a CUDA
graph or compiled kernel then sees few shapes) and prefetching. Any argument given replaces its default.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

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


@dataclass(frozen=True)
class BatchSettings:
    """How a :class:`Classifier` forms batches (see its docstring); ``0`` turns ``max_tokens`` or ``chunk`` off."""

    batch_size: int = 32
    max_tokens: int = 0
    pad_multiple: int = 1
    chunk: int = 0
    prefetch: bool = False


#: The batching each kind of device gets unless the caller says otherwise. CPU: the backend's cost grows
#: with the positions it computes, so batches of 32 padded to their longest row, tokenized at once. GPU:
#: 32,768 positions per call (e.g. 512 texts of 64 tokens: on a GPU fewer, fuller calls matter more than
#: padding), widths rounded to 16, chunks of up to 4,096 texts prepared by a worker thread (BERT-base fp16 on an
#: H200: the whole corpus at 19,790 sentences/s end to end, 90 % of the same batches alone; docs/results.md).
DEVICE_BATCH_SETTINGS: dict[str, BatchSettings] = {
    "cpu": BatchSettings(),
    "cuda": BatchSettings(batch_size=1024, max_tokens=32768, pad_multiple=16, chunk=4096, prefetch=True),
}


def batch_settings(device: str) -> BatchSettings:
    """The default :class:`BatchSettings` for a backend's ``device`` (``"cuda"``, ``"cuda:1"``: GPU; else CPU)."""
    return DEVICE_BATCH_SETTINGS["cuda" if str(device).startswith("cuda") else "cpu"]


def checked_max_padding(value: float | None, owner: str) -> float | None:
    """``value`` as a padding cap (a share from 0 up to, not including, 1; or None: no cap), else ConfigError."""
    if value is not None and not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{owner}: max_padding is the largest share of padding in a batch, from 0 up to (not "
                          f"including) 1, or None for no limit; got {value}.")
    return None if value is None else float(value)


@dataclass
class _Part:
    """One chunk of texts, ready to run: per batch the caller's row indices and the int32 feed."""

    batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    real_tokens: int
    padded_tokens: int
    truncated: int


class Classifier:
    """Sentiment classifier over one backend (PyTorch, ONNX Runtime, TensorRT: it never knows which).

    Every setting left as ``None`` takes the default of the backend's device (:data:`DEVICE_BATCH_SETTINGS`).

    ``batch_size`` is the most texts per backend call (capped by ``backend.max_batch``). ``max_tokens`` (0:
    none) caps rows x width per call. With ``bucket=False`` texts keep their order in the batches (still
    padded per batch), which is useful to measure what bucketing buys.

    ``pad_multiple`` rounds each batch's width up to a multiple of it (never beyond the tokenizer's
    ``max_len``). Backends that prepare something per input shape (a captured CUDA graph, a compiled kernel)
    then see at most ``max_len / pad_multiple`` widths per batch size instead of one per text length, at the
    price of a few padded positions per row; 1 pads to the longest row only.

    ``max_padding`` (0 to 1, or None: the default) caps the share of a batch's positions that are padding:
    after sorting, a batch ends early when the next, longer text would push that share above it. Where the
    backend's cost grows with the positions it computes and barely with the number of calls (ONNX Runtime on
    a CPU), this stops a few long texts from making every short one in their batch pay their width - a
    server's batches of texts that arrived together are not length-sorted.

    ``chunk`` (0: all texts at once) is the most texts tokenized per step, and ``prefetch`` prepares the next
    chunk in a worker thread while the backend runs the current one (module docstring). Batches depend on
    ``chunk``, never on ``prefetch``: the same texts give the same calls with and without the thread.
    """

    def __init__(self, tokenizer: SentenceTokenizer, backend: Backend, labels: Sequence[str], *,
                 batch_size: int | None = None, bucket: bool = True, pad_multiple: int | None = None,
                 max_padding: float | None = None, max_tokens: int | None = None, chunk: int | None = None,
                 prefetch: bool | None = None) -> None:
        defaults = batch_settings(backend.device)
        batch_size = defaults.batch_size if batch_size is None else int(batch_size)
        pad_multiple = defaults.pad_multiple if pad_multiple is None else int(pad_multiple)
        max_tokens = defaults.max_tokens if max_tokens is None else int(max_tokens)
        chunk = defaults.chunk if chunk is None else int(chunk)
        if batch_size < 1:
            raise ConfigError(f"classifier: batch_size must be at least 1, got {batch_size}.")
        if pad_multiple < 1:
            raise ConfigError(f"classifier: pad_multiple must be at least 1 (1: no rounding), got {pad_multiple}.")
        if max_tokens < 0 or chunk < 0:
            raise ConfigError(f"classifier: max_tokens and chunk must be 0 (off) or positive, got {max_tokens} "
                              f"and {chunk}.")
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
        self.batch_size = batch_size if backend.max_batch is None else min(batch_size, backend.max_batch)
        self.bucket = bool(bucket)
        self.pad_multiple = pad_multiple
        self.max_padding = checked_max_padding(max_padding, "classifier")
        self.max_tokens = max_tokens
        self.chunk = chunk
        self.prefetch = defaults.prefetch if prefetch is None else bool(prefetch)

    def width(self, longest: int | np.ndarray) -> int | np.ndarray:
        """Width of a batch whose longest row has ``longest`` tokens (see ``pad_multiple``); elementwise for an
        array."""
        m = self.pad_multiple
        widths = np.minimum(-(-np.asarray(longest) // m) * m, int(self.tokenizer.max_len)) if m > 1 else np.asarray(longest)
        return int(widths) if widths.ndim == 0 else widths

    def batch_rows(self, lengths: np.ndarray) -> list[np.ndarray]:
        """Row indices of each batch: sorted by length (stable) when bucketing, else in the given order; each at
        most ``batch_size`` rows and ``max_tokens`` positions (rows x the batch's width; a single row always
        goes), and with ``max_padding`` set (and bucketing) cut early where the next row would make the batch
        more padding than that. (:attr:`Prediction.batches` counts them.)

        The cuts are found per batch with numpy over a window of ``batch_size`` rows, not row by row.
        """
        lengths = np.asarray(lengths)
        n, size = len(lengths), self.batch_size
        order = np.argsort(lengths, kind="stable") if self.bucket else np.arange(n)
        cap = self.max_padding if self.bucket else None
        if not self.max_tokens and cap is None:
            return [order[i:i + size] for i in range(0, n, size)]
        ordered = lengths[order]
        widths = np.asarray(self.width(ordered))
        cumulative = np.concatenate([[0], np.cumsum(ordered)])
        groups: list[np.ndarray] = []
        start = 0
        while start < n:
            stop = min(start + size, n)
            rows = np.arange(1, stop - start + 1)
            area = rows * np.maximum.accumulate(widths[start:stop])  # positions if the batch ended at each row
            over = area > self.max_tokens if self.max_tokens else np.zeros(len(rows), dtype=bool)
            if cap is not None:
                over |= 1.0 - (cumulative[start + 1:stop + 1] - cumulative[start]) / area > cap
            over[0] = False
            end = start + (int(over.argmax()) if over.any() else len(rows))
            groups.append(order[start:end])
            start = end
        return groups

    def _chunks(self, n: int, char_counts: np.ndarray | None) -> list[np.ndarray]:
        """The caller's row indices of each chunk: by character count (when bucketing) in chunks of ``chunk``
        texts, the first ones smaller (an eighth of ``chunk``, doubling), so the device starts early."""
        order = np.argsort(char_counts, kind="stable") if char_counts is not None else np.arange(n)
        bounds, size, at = [], max(1, self.chunk // 8), 0
        while at + size < n:
            at += size
            bounds.append(at)
            size = min(2 * size, self.chunk)
        return np.split(order, bounds)

    def _prepare(self, texts: Sequence[str], positions: np.ndarray | None) -> _Part:
        """Tokenize ``texts`` (the caller's rows ``positions``; None: all of them, in order) and cut them into
        ready int32 batches. Runs in the prefetch worker when there is one."""
        enc = self.tokenizer.encode_batch(texts, step="Classifier.predict", positions=positions)
        ids, segments, lengths = enc.input_ids, enc.segment_ids, enc.lengths
        extra = int(self.width(int(lengths.max()))) - ids.shape[1]
        if extra > 0:  # room for rounding the widest batch up to pad_multiple
            ids = np.pad(ids, ((0, 0), (0, extra)), constant_values=self.tokenizer.pad_id)
            segments = np.pad(segments, ((0, 0), (0, extra)), constant_values=0)
        batches, padded = [], 0
        for rows in self.batch_rows(lengths):
            width = int(self.width(int(lengths[rows].max())))
            batch_ids, batch_seg = ids[rows, :width], segments[rows, :width]  # fancy indexing: new contiguous arrays
            batches.append((rows if positions is None else positions[rows], batch_ids, batch_seg))
            padded += batch_ids.size
        return _Part(batches, int(lengths.sum()), padded, enc.truncated)

    def _parts(self, texts: list[str]) -> Iterator[_Part]:
        """The prepared chunks in turn; with ``prefetch``, chunk i+1 is prepared by a worker meanwhile."""
        n = len(texts)
        if not self.chunk or n <= max(1, self.chunk // 8):
            yield self._prepare(texts, None)
            return
        chunks = self._chunks(n, np.fromiter(map(len, texts), dtype=np.int64, count=n) if self.bucket else None)
        pool_of_texts = np.asarray(texts, dtype=object)

        def prepare(positions: np.ndarray) -> _Part:
            return self._prepare(pool_of_texts[positions].tolist(), positions)

        if not self.prefetch:
            yield from map(prepare, chunks)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="classifier-prefetch") as worker:
            ahead = worker.submit(prepare, chunks[0])
            for following in chunks[1:]:
                part = ahead.result()  # an error in the worker is raised here, in the caller
                ahead = worker.submit(prepare, following)
                yield part
            yield ahead.result()

    def predict(self, texts: Sequence[str]) -> Prediction:
        """Classify ``texts``: a non-empty list (or tuple, 1-D array, Series) of non-empty strings.

        Anything else - ``None``, a number, ``bytes``, a dict, a set, a generator, or one bare ``str`` (wrap
        it as ``[text]``) - raises :class:`~helpers.errors.InputError` saying what to pass instead."""
        items = self.tokenizer.checked_texts(texts, step="Classifier.predict")
        logits = np.empty((len(items), len(self.labels)), dtype=np.float32)
        batches = real = padded = truncated = 0
        parts = self._parts(items)
        try:
            for part in parts:
                for rows, batch_ids, batch_seg in part.batches:
                    out = self.backend.predict_logits(batch_ids, batch_seg)
                    if out.shape != (len(rows), len(self.labels)):
                        raise BackendError(
                            f"classifier: {self.backend.name} returned logits of shape {out.shape} for {len(rows)} "
                            f"texts and {len(self.labels)} labels {self.labels}; do the labels belong to this model?"
                        )
                    logits[rows] = out
                batches += len(part.batches)
                real, padded, truncated = real + part.real_tokens, padded + part.padded_tokens, truncated + part.truncated
        finally:
            parts.close()  # stops the worker (after the chunk it is preparing) when the backend failed
        probabilities = softmax(logits)
        label_ids = probabilities.argmax(axis=1).astype(np.int64)
        names = np.asarray(self.labels, dtype=object)[label_ids].tolist()
        return Prediction(
            labels=names, label_ids=label_ids, probabilities=probabilities, logits=logits, batches=batches, real_tokens=real, padded_tokens=padded, truncated=truncated,
        )

    def __repr__(self) -> str:
        return (f"Classifier({self.backend!r}, labels={self.labels}, batch_size={self.batch_size}, "
                f"max_tokens={self.max_tokens}, bucket={self.bucket}, pad_multiple={self.pad_multiple}, "
                f"max_padding={self.max_padding}, chunk={self.chunk}, prefetch={self.prefetch})")
