"""The series' performance goals, checked against a benchmark result.

Goals (BERT-base architecture, batch 1 x sequence 200, medians; accuracy on the trained model's test set):

* CPU: ONNX Runtime INT8 at least 6.5x faster than PyTorch fp32 eager, losing at most 0.5 points of
  accuracy; stretch: at most 29 ms (faster than the original article's PyTorch on a GPU).
* GPU: the series' deployed ONNX path (ONNX Runtime CUDA or TensorRT) at most 0.65 ms, faster than
  ``torch.compile`` without its compile time; stretch: at most 0.5 ms.

A goal whose backends did not run here is reported as "not measured here", never as met or missed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .report import fmt_ms, markdown_table
from .results import BenchResult
from .system import cpus_busy


@dataclass(frozen=True)
class GoalCheck:
    """One goal, what was measured for it (text) and whether it was met (None: not measured here)."""

    goal: str
    measured: str
    met: bool | None

    @property
    def verdict(self) -> str:
        return {True: "met", False: "missed", None: "not measured here"}[self.met]


def _median(result: BenchResult, model: str, backend: str, batch: int, seq_len: int) -> float | None:
    found = result.select(model=model, backend=backend, batch=batch, seq_len=seq_len)
    return found[0].latency.median_ms if found else None


def _accuracy(result: BenchResult, model: str, backend: str) -> float | None:
    found = [a for a in result.accuracy if a.model == model and a.backend == backend and a.bucketing]
    return found[0].accuracy if found else None


#: Name the benchmark gives the BERT-base architecture model; latency goals are about it alone.
BERT_BASE_MODEL = "arch-base"


def _not_judged(result: BenchResult, arch_model: str) -> str | None:
    """Why latency goals cannot be judged on this result (another architecture than BERT-base), or None."""
    if arch_model != BERT_BASE_MODEL:
        return f"not judged: the architecture timed was {arch_model}, the goals are for {BERT_BASE_MODEL}"
    return None


def check_goals(result: BenchResult, *, arch_model: str, trained_model: str, batch: int = 1,
                seq_len: int = 200) -> list[GoalCheck]:
    """Evaluate the series' goals on ``result`` (see the module docstring).

    Latency goals are judged only for the BERT-base architecture, and CPU latency goals only when the CPUs
    were quiet at the start of the run (:func:`~helpers.bench.system.cpus_busy`); otherwise their
    verdict is "not measured here" and the measured column says why.
    """
    checks = _checks(result, arch_model=arch_model, trained_model=trained_model, batch=batch, seq_len=seq_len)
    reason = _not_judged(result, arch_model)
    busy = cpus_busy(result.environment)
    out = []
    for c in checks:
        latency_goal = "accuracy" not in c.goal
        if c.met is not None and latency_goal and reason:
            c = GoalCheck(c.goal, f"{c.measured}; {reason}", None)
        elif c.met is not None and c.goal.startswith("CPU") and busy:
            c = GoalCheck(c.goal, f"{c.measured}; not judged: the CPUs were busy ({busy})", None)
        out.append(c)
    return out


def _checks(result: BenchResult, *, arch_model: str, trained_model: str, batch: int, seq_len: int) -> list[GoalCheck]:
    checks: list[GoalCheck] = []
    torch_cpu = _median(result, arch_model, "pytorch", batch, seq_len)
    int8 = _median(result, arch_model, "onnxruntime-int8", batch, seq_len)
    if torch_cpu and int8:
        ratio = torch_cpu / int8
        checks.append(GoalCheck("CPU INT8 >= 6.5x PyTorch fp32", f"{ratio:.2f}x ({fmt_ms(int8)} vs {fmt_ms(torch_cpu)} ms)", ratio >= 6.5))
        checks.append(GoalCheck("CPU INT8 <= 29 ms (stretch)", f"{fmt_ms(int8)} ms", int8 <= 29.0))
    else:
        checks += [GoalCheck("CPU INT8 >= 6.5x PyTorch fp32", "-", None), GoalCheck("CPU INT8 <= 29 ms (stretch)", "-", None)]
    fp32 = [_accuracy(result, trained_model, n) for n in ("pytorch", "pytorch-cuda")]
    acc_fp32 = next((a for a in fp32 if a is not None), None)
    acc_int8 = _accuracy(result, trained_model, "onnxruntime-int8")
    if acc_fp32 is not None and acc_int8 is not None:
        loss = 100 * (acc_fp32 - acc_int8)
        checks.append(GoalCheck("INT8 accuracy loss <= 0.5 pt", f"{loss:+.2f} pt ({100 * acc_int8:.2f}% vs {100 * acc_fp32:.2f}%)", loss <= 0.5))
    else:
        checks.append(GoalCheck("INT8 accuracy loss <= 0.5 pt", "-", None))
    onnx_gpu = {m.backend: m.latency.median_ms for m in result.select(model=arch_model, batch=batch, seq_len=seq_len)
                if m.device == "cuda" and m.backend.startswith(("ort-cuda", "tensorrt"))}
    compiled = [m.latency.median_ms for m in result.select(model=arch_model, batch=batch, seq_len=seq_len)
                if m.backend.startswith("torch-compile")]
    if onnx_gpu:
        best_name = min(onnx_gpu, key=onnx_gpu.get)
        best = onnx_gpu[best_name]
        checks.append(GoalCheck("GPU ONNX path <= 0.65 ms", f"{best_name} {fmt_ms(best)} ms", best <= 0.65))
        checks.append(GoalCheck("GPU ONNX path faster than torch.compile",
                                f"{fmt_ms(best)} vs {fmt_ms(min(compiled))} ms" if compiled else "torch.compile not measured",
                                best < min(compiled) if compiled else None))
        checks.append(GoalCheck("GPU ONNX path <= 0.5 ms (stretch)", f"{fmt_ms(best)} ms", best <= 0.5))
    else:
        checks += [GoalCheck(g, "no ONNX Runtime CUDA or TensorRT backend ran", None) for g in
                   ("GPU ONNX path <= 0.65 ms", "GPU ONNX path faster than torch.compile", "GPU ONNX path <= 0.5 ms (stretch)")]
    return checks


def goals_table(checks: list[GoalCheck]) -> str:
    """The checks as a Markdown table."""
    return markdown_table(["goal", "measured", "verdict"], [[c.goal, c.measured, c.verdict] for c in checks])
