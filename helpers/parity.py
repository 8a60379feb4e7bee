"""Numerical parity between two backends: max |logit difference|, argmax agreement, NaN count.

Used by 02 (PyTorch vs ONNX Runtime variants: :func:`check_parity`, one bound per precision) and by every later
step that must prove it computes the same function (TensorRT in 05 and 06). Results are plain numbers with their
case names; formatting happens only when they are shown.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backends.base import Backend
from .errors import ConfigError, InputError
from .export import sample_feed
from .io import atomic_write_json


#: fp32 ONNX vs PyTorch: largest |logit difference| allowed (and argmax must agree everywhere).
FP32_MAX_ABS_DIFF = 1e-4
#: FP16 graph vs fp32: least share of test sentences whose predicted label must agree.
FP16_MIN_AGREEMENT = 0.995
#: Dynamic INT8: largest test-accuracy loss allowed against fp32 PyTorch (0.5 percentage points).
INT8_MAX_ACCURACY_DROP = 0.005
#: A TensorRT engine against ONNX Runtime fp32 on the same ONNX, per engine precision: (largest |logit
#: difference|, least share of equal predicted labels). FP32 engines use TF32 tensor-core math by default on
#: Ampere and newer (10-bit mantissa), hence 5e-3 rather than fp32's 1e-4; FP16 engines keep LayerNorm and
#: Softmax in FP32 (02's FP16 graph) and stay within 5e-2 on logits of order 1-10.
TENSORRT_TOLERANCE: dict[str, tuple[float, float]] = {"fp32": (5e-3, 0.999), "fp16": (5e-2, FP16_MIN_AGREEMENT)}


@dataclass(frozen=True)
class ParityResult:
    """One comparison of candidate logits with reference logits on the same inputs."""

    case: str
    shape: tuple[int, int]  # (rows, labels) of the logits compared
    max_abs_diff: float
    mean_abs_diff: float
    argmax_agreement: float
    nan_count: int

    def passed(self, max_abs_diff: float, min_agreement: float = 1.0) -> bool:
        """True when there is no NaN, the difference is within ``max_abs_diff`` and agreement reaches ``min_agreement``."""
        return (self.nan_count == 0 and self.max_abs_diff <= max_abs_diff
                and self.argmax_agreement >= min_agreement)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape)}


def compare_logits(case: str, reference: np.ndarray, candidate: np.ndarray) -> ParityResult:
    """Compare two ``[rows, labels]`` logit arrays. A candidate row with NaN disagrees and makes the
    differences infinite (NaN must never pass a tolerance check)."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.ndim != 2 or ref.shape != cand.shape:
        raise InputError(f"parity {case}: reference {ref.shape} and candidate {cand.shape} must be equal [rows, labels].")
    nan_rows = np.isnan(cand).any(axis=1)
    diff = np.abs(ref - cand)
    same = (ref.argmax(axis=1) == np.nan_to_num(cand, nan=-np.inf).argmax(axis=1)) & ~nan_rows
    nan = int(nan_rows.sum())
    return ParityResult(case, (int(ref.shape[0]), int(ref.shape[1])),
                        float(np.inf) if nan else float(diff.max()),
                        float(np.inf) if nan else float(diff.mean()),
                        float(same.mean()), nan)


def edge_feeds(vocab_size: int, max_len: int, large_batch: int = 64, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Feeds at the edge shapes: 1 x 1, 1 x max_len, and large_batch x max_len with id 0 inside rows."""
    return {
        "1x1": sample_feed(1, 1, vocab_size, seed=seed, pad_inside=False),
        f"1x{max_len}": sample_feed(1, max_len, vocab_size, seed=seed + 1, pad_inside=False),
        f"{large_batch}x{max_len} (padding inside rows)": sample_feed(large_batch, max_len, vocab_size, seed=seed + 2),
    }


def edge_parity(reference: Backend, candidate: Backend, feeds: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[ParityResult]:
    """Run both backends on each feed (whole feed in one call) and compare."""
    return [compare_logits(case, reference.predict_logits(ids, seg), candidate.predict_logits(ids, seg))
            for case, (ids, seg) in feeds.items()]


def padding_route_parity(router: Any, vocab_size: int, batch: int = 16, seq_len: int = 64,
                         seed: int = 0) -> dict[str, Any]:
    """Check a :class:`~helpers.backends.padding.RightPaddingRouter` where its two graphs differ.

    Right-padded rows (random lengths) go to the fast graph and must agree with the exact graph on them; rows
    with id 0 inside go to the exact graph, so the router's logits must equal the exact graph's bit for bit.
    Returns both comparisons and the routes the router took."""
    ids, seg = sample_feed(batch, seq_len, vocab_size, seed=seed, pad_inside=False)
    keep = np.random.default_rng(seed).integers(1, seq_len + 1, size=batch)
    for row, k in enumerate(keep):
        ids[row, k:] = 0
    before = dict(router.calls)
    right = compare_logits(f"{batch}x{seq_len} right-padded", router.exact.predict_logits(ids, seg),
                           router.predict_logits(ids, seg))
    inner_ids, inner_seg = sample_feed(batch, seq_len, vocab_size, seed=seed + 1, pad_inside=True)
    inner = compare_logits(f"{batch}x{seq_len} id 0 inside rows", router.exact.predict_logits(inner_ids, inner_seg),
                           router.predict_logits(inner_ids, inner_seg))
    routes = {k: router.calls[k] - before[k] for k in before}
    return {"right_padded": right.to_dict(), "inner_zeros": inner.to_dict(), "routes": routes,
            "passed": routes == {"fast": 1, "exact": 1} and inner.max_abs_diff == 0.0}


def accuracy(label_ids: np.ndarray, truth: np.ndarray) -> float:
    """Share of predictions equal to the true label ids."""
    return float(np.mean(np.asarray(label_ids) == np.asarray(truth)))


def parity_report(reference: Backend, candidate: Backend, results: list[ParityResult], *,
                  max_abs_diff: float = FP32_MAX_ABS_DIFF, min_agreement: float = 1.0) -> dict[str, Any]:
    """A JSON-able record of ``results``: both backends, the tolerance, each case and whether all passed."""
    return {
        "reference": reference.describe(),
        "candidate": candidate.describe(),
        "tolerance": {"max_abs_diff": max_abs_diff, "min_argmax_agreement": min_agreement},
        "passed": all(r.passed(max_abs_diff, min_agreement) for r in results),
        "cases": [r.to_dict() for r in results],
    }


#: What each precision of an ONNX graph must keep against fp32 PyTorch on the test split, in words.
BOUNDS = {"fp32": f"max |logit diff| <= {FP32_MAX_ABS_DIFF:g}, every label the same",
          "fp16": f"no NaN, >= {FP16_MIN_AGREEMENT:.1%} of the labels the same",
          "int8": f"no NaN, test accuracy at most {100 * INT8_MAX_ACCURACY_DROP:g} points lower"}


@dataclass
class ParityCheck:
    """A candidate backend against the reference (fp32 PyTorch) on a whole test split, and at edge shapes.

    ``reference`` and ``candidate`` are the :class:`~helpers.backends.Prediction` of each on the split; the
    bound is the candidate's precision's (:data:`BOUNDS`)."""

    name: str
    precision: str
    cases: list[ParityResult]
    reference: Any
    candidate: Any
    reference_accuracy: float
    accuracy: float
    failures: list[str] = field(default_factory=list)
    backends: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def bound(self) -> str:
        return BOUNDS[self.precision]

    def rows(self) -> list[tuple[Any, ...]]:
        """One table row per case: case, logits compared, max |diff|, argmax agreement, NaN rows."""
        return [(r.case, "x".join(map(str, r.shape)), f"{r.max_abs_diff:.2e}", f"{r.argmax_agreement:.2%}", r.nan_count)
                for r in self.cases]

    def summary(self) -> tuple[Any, ...]:
        """One table row for the candidate: name, test accuracy, change in points, agreement, max |diff|, passed."""
        split = self.cases[0]
        return (self.name, f"{self.accuracy:.4f}", f"{100 * (self.accuracy - self.reference_accuracy):+.2f}",
                f"{split.argmax_agreement:.2%}", f"{split.max_abs_diff:.1e}", "yes" if self.passed else "NO")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "precision": self.precision, "bound": self.bound, "passed": self.passed,
                "failures": list(self.failures), "test_accuracy": self.accuracy,
                "reference_test_accuracy": self.reference_accuracy, **self.backends,
                "cases": [r.to_dict() for r in self.cases]}

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON, atomically."""
        return atomic_write_json(path, self.to_dict())


def check_parity(reference: Backend, candidate: Backend | str | os.PathLike[str], tokenizer: Any, texts: list[str],
                 truth: np.ndarray, *,
                 labels: list[str], name: str | None = None, reference_prediction: Any = None,
                 large_batch: int | None = None, batch_size: int = 64) -> ParityCheck:
    """Classify ``texts`` with both backends through the series' ``Classifier`` and compare, and with
    ``large_batch`` also the edge shapes of :func:`edge_feeds` fed to the backends directly; the candidate must
    keep its precision's bound (:data:`BOUNDS`: fp32 within :data:`FP32_MAX_ABS_DIFF` on every case, FP16
    :data:`FP16_MIN_AGREEMENT`, INT8 :data:`INT8_MAX_ACCURACY_DROP`). ``reference_prediction`` (an earlier
    check's ``reference``) saves classifying the split with the reference again; ``name`` labels the candidate
    (default: its backend's name). ``candidate`` may be an ONNX file: ONNX Runtime runs it on the CPU, with the
    session settings its metadata records (an FP16 graph meant for GPUs too: slowly, but the numbers count)."""
    from .backends import Classifier, OrtBackend

    if not isinstance(candidate, Backend):
        with OrtBackend(candidate) as backend:
            return check_parity(reference, backend, tokenizer, texts, truth, labels=labels, name=name,
                                reference_prediction=reference_prediction, large_batch=large_batch,
                                batch_size=batch_size)
    precision = str(getattr(candidate, "precision", "fp32"))
    if precision not in BOUNDS:
        raise ConfigError(f"parity: no bound for precision {precision!r}; known: {sorted(BOUNDS)}.")
    truth = np.asarray(truth)
    ref = reference_prediction
    if ref is None:
        ref = Classifier(tokenizer, reference, labels, batch_size=batch_size).predict(texts)
    got = Classifier(tokenizer, candidate, labels, batch_size=batch_size).predict(texts)
    cases = [compare_logits(f"test split ({len(texts)} sentences)", ref.logits, got.logits)]
    if large_batch:
        cases += edge_parity(reference, candidate, edge_feeds(tokenizer.vocab_size, tokenizer.max_len, large_batch))
    ref_acc, acc = accuracy(ref.label_ids, truth), accuracy(got.label_ids, truth)
    failures = [f"{r.case}: {r.nan_count} rows with NaN" for r in cases if r.nan_count]
    if precision == "fp32":
        failures += [f"{r.case}: max |diff| {r.max_abs_diff:.2e}, agreement {r.argmax_agreement:.4f}"
                     for r in cases if not r.passed(FP32_MAX_ABS_DIFF, 1.0) and not r.nan_count]
    elif precision == "fp16" and cases[0].argmax_agreement < FP16_MIN_AGREEMENT:
        failures.append(f"labels agree on {cases[0].argmax_agreement:.2%} < {FP16_MIN_AGREEMENT:.1%}")
    elif precision == "int8" and ref_acc - acc > INT8_MAX_ACCURACY_DROP:
        failures.append(f"test accuracy {acc:.4f} is {100 * (ref_acc - acc):.2f} points below {ref_acc:.4f}")
    return ParityCheck(name or candidate.name, precision, cases, ref, got, ref_acc, acc, failures,
                       {"reference": reference.describe(), "candidate": candidate.describe()})
