"""Numerical parity between two backends: max |logit difference|, argmax agreement, NaN count.

Used by 02 (PyTorch vs ONNX Runtime variants) and by every later step that must prove it computes the same
function (TensorRT in 05 and 06). Results are plain numbers with their case names; formatting happens only
when they are shown.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .backends.base import Backend
from .errors import InputError
from .export import sample_feed


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
