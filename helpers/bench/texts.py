"""Texts in, labels out: each backend's accuracy and rate through the :class:`~helpers.backends.Classifier`,
beside the same backend's rate on the same batches alone, and the tokenizer's share of the time.

For each backend and each bucketing setting (texts sorted by length, or kept in their order):

1. **A first pass** runs the texts through ``Classifier(tokenizer, backend, labels, bucket=...)`` with the
   Classifier's own defaults for the backend's device, and keeps a copy of every batch it hands the backend.
   It also warms the backend up on every batch shape (CUDA graphs are captured, sessions allocate).
2. **Timed rounds.** In each round the same texts go through the Classifier again (``end to end``: tokenizing,
   batching, padding, the backend, softmax, results in the caller's order), and the kept batches go straight
   to ``backend.predict_logits`` (``model only``: the same padded id arrays, host arrays in, logits out).
   The two alternate within a round, first one then the other, so drift hits both. Rates use the median round.
   With a time budget, a slow backend stops after the round that spends it (one round at least).
3. **The tokenizer alone** (``tokenizer.encode_batch`` on the same texts) is timed once per round too; its share
   of the end-to-end time says how much of it is text handling rather than the model.

Nothing here knows how the Classifier forms its batches: what the backend receives is recorded at the
backend's interface, and a timed pass that hands the backend other batches than the first pass did stops the
run (its model-only figure would not be comparable).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..backends.base import Backend
from ..backends.classifier import Classifier
from ..errors import BackendError, ConfigError
from ..parity import FP16_MIN_AGREEMENT, TENSORRT_TOLERANCE
from .harness import Skip, gc_paused
from .results import AccuracyRecord

#: Least share of predictions equal to fp32 PyTorch's that each kind of backend must reach (06's checks).
FP32_MIN_AGREEMENT = 0.995
INT8_MIN_AGREEMENT = 0.95


def agreement_floor(backend: str) -> float:
    """The least agreement with fp32 PyTorch expected of ``backend`` (by its registry name)."""
    if backend.startswith("tensorrt-"):
        return TENSORRT_TOLERANCE[backend.split("-")[1]][1]
    if backend == "onnxruntime-int8":
        return INT8_MIN_AGREEMENT
    if "fp16" in backend:
        return FP16_MIN_AGREEMENT
    return FP32_MIN_AGREEMENT


class _Recorder(Backend):
    """Passes every batch on to ``inner`` and keeps a copy of it (the model-only pass replays them)."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(max_batch=inner.max_batch, max_len=inner.max_len)
        self.inner = inner
        self.name, self.device, self.precision = inner.name, inner.device, inner.precision
        self.feeds: list[tuple[np.ndarray, np.ndarray]] = []

    def _run(self, input_ids: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
        self.feeds.append((input_ids.copy(), segment_ids.copy()))
        return self.inner.predict_logits(input_ids, segment_ids)


def _seconds(work: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = work()
    return time.perf_counter() - t0, out


def _model_only(backend: Backend, feeds: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
    for ids, seg in feeds:
        backend.predict_logits(ids, seg)


def time_texts(
    backends: Mapping[str, Backend],
    tokenizer: Any,
    labels: Sequence[str],
    texts: Sequence[str],
    targets: Any,
    *,
    model: str,
    dataset: str,
    reference: str | None = None,
    rounds: int = 3,
    time_budget_s: float = 0.0,
    bucketing: Sequence[bool] = (True, False),
    exclude: Callable[[str], str | None] | None = None,
    log: Callable[[str], None] | None = print,
) -> tuple[list[AccuracyRecord], list[Skip]]:
    """Classify ``texts`` with every backend, once per ``bucketing`` setting (see the module docstring).

    ``targets``: the true label ids (accuracy). ``exclude(name)`` may return a reason to leave a backend out
    (recorded as a skip). The reference backend, when present, runs first so that the others are compared with
    its predictions. ``rounds``: timed rounds per backend and setting, fewer where ``time_budget_s`` (> 0) is
    spent first.
    """
    targets = np.asarray(targets)
    texts = list(texts)
    if not texts or len(texts) != len(targets):
        raise ConfigError(f"need as many targets as texts (>0); got {len(texts)} texts and {len(targets)} targets.")
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {rounds}.")
    skipped: list[Skip] = []
    chosen: dict[str, Backend] = {}
    for name, b in backends.items():
        reason = exclude(name) if exclude else None
        if reason:
            skipped.append(Skip(model, name, dataset, reason))
        else:
            chosen[name] = b
    order = sorted(chosen, key=lambda n: n != reference)  # reference first, others in their order
    records: list[AccuracyRecord] = []
    for bucket in bucketing:
        ref_ids: np.ndarray | None = None
        for name in order:
            r, label_ids = _time_one(name, chosen[name], tokenizer, labels, texts, targets, bucket=bucket,
                                     rounds=rounds, budget_s=time_budget_s, model=model, dataset=dataset)
            if name == reference:
                ref_ids = label_ids
            if ref_ids is not None:
                r = replace(r, agreement_with_reference=float(np.mean(label_ids == ref_ids)), reference=reference)
            records.append(r)
            if log is not None:
                log(f"{name} (bucketing {'on' if bucket else 'off'}): accuracy {100 * r.accuracy:.2f}%, "
                    f"{r.sentences_per_s:,.0f} sentences/s end to end, {r.model_only_per_s:,.0f} model only, "
                    f"tokenizer {100 * r.tokenizer_share:.0f}% of the time")
    return records, skipped


def _time_one(name: str, backend: Backend, tokenizer: Any, labels: Sequence[str], texts: list[str],
              targets: np.ndarray, *, bucket: bool, rounds: int, budget_s: float, model: str, dataset: str
              ) -> tuple[AccuracyRecord, np.ndarray]:
    recorder = _Recorder(backend)
    first = Classifier(tokenizer, recorder, labels, bucket=bucket).predict(texts)
    if len(recorder.feeds) != first.batches:
        raise BackendError(f"{name}: the Classifier reported {first.batches} batches but handed the backend "
                           f"{len(recorder.feeds)}; the model-only pass could not replay its batches.")
    clf = Classifier(tokenizer, backend, labels, bucket=bucket)
    e2e, alone, tok = [], [], []
    with gc_paused():
        for r in range(rounds):
            steps = [("e2e", lambda: clf.predict(texts)), ("alone", lambda: _model_only(backend, recorder.feeds)),
                     ("tok", lambda: tokenizer.encode_batch(texts))]
            for kind, work in (steps if r % 2 == 0 else steps[::-1]):
                seconds, out = _seconds(work)
                {"e2e": e2e, "alone": alone, "tok": tok}[kind].append(seconds)
                if kind == "e2e" and (out.batches, out.padded_tokens) != (first.batches, first.padded_tokens):
                    raise BackendError(f"{name}: a timed pass made {out.batches} batches of {out.padded_tokens} "
                                       f"positions, the first pass {first.batches} of {first.padded_tokens}; the "
                                       "model-only figure would not be on the same batches.")
            if budget_s and sum(e2e) + sum(alone) + sum(tok) > budget_s:
                break
    pred = first
    seconds = float(np.median(e2e))
    record = AccuracyRecord(
        model=model, backend=name, dataset=dataset, count=len(texts),
        accuracy=float(np.mean(pred.label_ids == targets)), bucketing=bool(bucket), seconds=seconds,
        sentences_per_s=len(texts) / seconds, batch_size=int(max(len(f[0]) for f in recorder.feeds)),
        padding_fraction=pred.padding_fraction, pad_multiple=int(getattr(clf, "pad_multiple", 1)),
        batches=pred.batches, model_only_seconds=float(np.median(alone)), tokenize_seconds=float(np.median(tok)),
        rounds=len(e2e), min_agreement=agreement_floor(name), device=backend.device,
    )
    return record, pred.label_ids
