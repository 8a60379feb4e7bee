"""Each backend's accuracy on a labelled set, and the whole-set throughput with and without length bucketing.

Texts go through :class:`~helpers.backends.classifier.Classifier` exactly as a user's would: tokenize,
batch, pad each batch to its longest row, run, softmax. With bucketing the texts are sorted by length
first, so a batch holds similar lengths and little padding; without it they keep their order and every
batch is padded to its longest member. The wall time of the pass (tokenizing included) gives
sentences per second; the predictions give accuracy and the share that agrees with a reference backend.

GPU backends that capture a CUDA graph (or compile) per input shape pay that once per new width; with
bucketing every text length can become its own width. ``gpu_pad_multiple`` rounds the widths of GPU
backends' batches up (see :class:`~helpers.backends.classifier.Classifier`) to bound how many there are.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..backends.base import Backend
from ..backends.classifier import Classifier
from ..errors import ConfigError
from .harness import Skip
from .results import AccuracyRecord


def classify_with_each(
    backends: Mapping[str, Backend],
    tokenizer: Any,
    labels: Sequence[str],
    texts: Sequence[str],
    targets: np.ndarray,
    *,
    model: str,
    dataset: str = "test",
    batch_size: int = 32,
    reference: str | None = None,
    bucketing: Sequence[bool] = (True, False),
    gpu_pad_multiple: int = 1,
    exclude: Callable[[str], str | None] | None = None,
    log: Callable[[str], None] | None = print,
) -> tuple[list[AccuracyRecord], list[Skip]]:
    """Classify ``texts`` with every backend, once per ``bucketing`` setting; accuracy against ``targets``.

    ``exclude(name)`` may return a reason to leave a backend out (recorded as a skip). The reference
    backend, when given and present, runs first so that the others can be compared with its predictions.
    Backends on ``cuda`` get ``pad_multiple=gpu_pad_multiple``; the others pad to the longest row.
    """
    targets = np.asarray(targets)
    if len(texts) == 0 or len(texts) != len(targets):
        raise ConfigError(f"need as many targets as texts (>0); got {len(texts)} texts and {len(targets)} targets.")
    records: list[AccuracyRecord] = []
    skipped: list[Skip] = []
    chosen: dict[str, Backend] = {}
    for name, b in backends.items():
        reason = exclude(name) if exclude else None
        if reason:
            skipped.append(Skip(model, name, dataset, reason))
        else:
            chosen[name] = b
    order = sorted(chosen, key=lambda n: n != reference)  # reference first, others in their order
    for bucket in bucketing:
        ref_ids: np.ndarray | None = None
        for name in order:
            multiple = gpu_pad_multiple if chosen[name].device == "cuda" else 1
            clf = Classifier(tokenizer, chosen[name], labels, batch_size=batch_size, bucket=bucket, pad_multiple=multiple)
            t0 = time.perf_counter()
            pred = clf.predict(list(texts))
            seconds = time.perf_counter() - t0
            if name == reference:
                ref_ids = pred.label_ids
            agree = float(np.mean(pred.label_ids == ref_ids)) if ref_ids is not None else None
            rec = AccuracyRecord(
                model=model, backend=name, dataset=dataset, count=len(texts),
                accuracy=float(np.mean(pred.label_ids == targets)), bucketing=bool(bucket), seconds=seconds,
                sentences_per_s=len(texts) / seconds if seconds > 0 else float("inf"), batch_size=clf.batch_size,
                agreement_with_reference=agree, reference=reference if agree is not None else None,
                padding_fraction=pred.padding_fraction, pad_multiple=multiple,
            )
            records.append(rec)
            if log is not None:
                log(f"{name} (bucketing {'on' if bucket else 'off'}): accuracy {100 * rec.accuracy:.2f}%, "
                    f"{rec.sentences_per_s:,.0f} sentences/s, padding {100 * pred.padding_fraction:.0f}%")
    return records, skipped
