"""The series' performance goals, checked against a benchmark result.

Latency (batch 1 x sequence 200, medians, the BERT-base model size):

* CPU: ONNX Runtime INT8 at least 6.5x faster than PyTorch fp32 eager; stretch: at most 29 ms (faster than
  the original article's PyTorch on a GPU).
* GPU: the deployed path (:func:`~helpers.backends.best_backend`'s GPU choice) at most 0.65 ms and faster
  than ``torch.compile`` without its compile time; stretch: at most 0.5 ms.

Texts to labels (the Classifier, length bucketing on):

* GPU, BERT-base, the whole corpus through the deployed backend: at least 30,000 sentences/s, and at least
  85 % of the same backend's rate on the same batches alone.
* CPU, the small model size, ONNX Runtime INT8: tokenizing at most 5 % of the Classifier's time.

Accuracy: INT8 loses at most 0.5 points of test accuracy against fp32 PyTorch.

One rule for every speed goal (the same as 07's): on a machine whose CPUs were busy when the run began
(:func:`~helpers.bench.system.cpus_busy`) the figures are shown and the verdict is withheld, with the reason.
A goal measured on another model size or text set than it is about is shown but not judged; a goal whose
backends did not run here is "not measured here", never met or missed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .results import AccuracyRecord, BenchResult
from .system import cpus_busy

#: The model size every latency and GPU text goal is about.
GOAL_SIZE = "base"


@dataclass(frozen=True)
class GoalCheck:
    """One goal, what was measured for it (text), whether it was met (None: no verdict) and, where a figure
    was measured but not judged, why."""

    goal: str
    measured: str
    met: bool | None
    not_judged: str | None = None

    @property
    def verdict(self) -> str:
        if self.met is not None:
            return "met" if self.met else "missed"
        return f"not judged: {self.not_judged}" if self.not_judged else "not measured here"


def model_size(model: str) -> str:
    """The model size in a benchmark's model name (``trained-small`` -> ``small``, ``arch-base`` -> ``base``)."""
    return model.split("-", 1)[1] if "-" in model else model


def _ms(value: float) -> str:
    return f"{value:.3g} ms" if value < 100 else f"{value:.0f} ms"


def _judge(goal: str, measured: str, met: bool | None, *why_not: str | None) -> GoalCheck:
    """``met`` unless one of ``why_not`` gives a reason not to judge (then shown with the figure)."""
    reason = next((w for w in why_not if w), None)
    if met is None or reason is None:
        return GoalCheck(goal, measured, met)
    return GoalCheck(goal, measured, None, reason)


def _text_record(result: BenchResult, backend: str | None) -> AccuracyRecord | None:
    return next((a for a in result.accuracy if a.backend == backend and a.bucketing and a.model_only_seconds), None)


def check_goals(result: BenchResult, *, gpu_backend: str | None = None, batch: int = 1,
                seq_len: int = 200) -> list[GoalCheck]:
    """Evaluate the series' goals on ``result`` (see the module docstring); ``gpu_backend`` names the deployed
    GPU path (None where this machine has no GPU backend)."""
    from ..backends.registry import BACKENDS

    if gpu_backend is not None and getattr(BACKENDS.get(gpu_backend), "device", None) != "gpu":
        gpu_backend = None  # best_backend's GPU choice fell back to a CPU backend: no GPU path here
    busy = cpus_busy(result.environment)
    withheld = f"the CPUs were busy ({busy})" if busy else None
    at = {}
    for m in result.select(batch=batch, seq_len=seq_len):
        at.setdefault(m.model, {})[m.backend] = m.latency.median_ms
    model = next((n for n in at if model_size(n) == GOAL_SIZE), next(iter(at), None))
    times = at.get(model, {})
    size = None if model is None or model_size(model) == GOAL_SIZE else \
        f"timed on the {model_size(model)} model size, the goal is for {GOAL_SIZE}"
    shape = f"{batch}x{seq_len}"
    checks: list[GoalCheck] = []

    torch_cpu, int8 = times.get("pytorch"), times.get("onnxruntime-int8")
    if torch_cpu and int8:
        ratio = torch_cpu / int8
        checks.append(_judge(f"CPU INT8 >= 6.5x PyTorch fp32 at {shape}", f"{ratio:.2f}x ({_ms(int8)} vs {_ms(torch_cpu)})",
                             ratio >= 6.5, size, withheld))
        checks.append(_judge(f"CPU INT8 <= 29 ms at {shape} (stretch)", _ms(int8), int8 <= 29.0, size, withheld))
    else:
        checks += [GoalCheck(f"CPU INT8 >= 6.5x PyTorch fp32 at {shape}", "-", None),
                   GoalCheck(f"CPU INT8 <= 29 ms at {shape} (stretch)", "-", None)]

    fp32 = next((a for a in result.accuracy if a.backend in ("pytorch", "pytorch-cuda") and a.bucketing
                 and a.dataset == "test"), None)
    quant = next((a for a in result.accuracy if a.backend == "onnxruntime-int8" and a.bucketing and a.dataset == "test"), None)
    if fp32 and quant:
        loss = 100 * (fp32.accuracy - quant.accuracy)
        checks.append(GoalCheck("INT8 accuracy loss <= 0.5 pt", f"{loss:+.2f} pt ({100 * quant.accuracy:.2f}% vs "
                                f"{100 * fp32.accuracy:.2f}%)", loss <= 0.5))
    else:
        checks.append(GoalCheck("INT8 accuracy loss <= 0.5 pt", "-", None))

    deployed = times.get(gpu_backend) if gpu_backend else None
    compiled = [ms for name, ms in times.items() if name.startswith("torch-compile")]
    gpu_goals = (f"GPU deployed path <= 0.65 ms at {shape}", "GPU deployed path faster than torch.compile",
                 f"GPU deployed path <= 0.5 ms at {shape} (stretch)")
    if deployed:
        checks.append(_judge(gpu_goals[0], f"{gpu_backend} {_ms(deployed)}", deployed <= 0.65, size, withheld))
        checks.append(_judge(gpu_goals[1], f"{_ms(deployed)} vs {_ms(min(compiled))}" if compiled else
                             "torch.compile not measured", deployed < min(compiled) if compiled else None, size, withheld))
        checks.append(_judge(gpu_goals[2], f"{gpu_backend} {_ms(deployed)}", deployed <= 0.5, size, withheld))
    else:
        what = f"{gpu_backend} was not timed at {shape}" if gpu_backend else "no GPU backend here"
        checks += [GoalCheck(g, what, None) for g in gpu_goals]

    texts = _text_record(result, gpu_backend) if gpu_backend else None
    text_goals = ("GPU texts to labels >= 30,000 sentences/s (whole corpus)", "GPU end to end >= 85% of model only")
    if texts:
        not_corpus = None if texts.dataset == "corpus" else f"measured on the {texts.dataset} texts, the goal is " \
                                                             "for the whole corpus"
        text_size = None if model_size(texts.model) == GOAL_SIZE else \
            f"the {model_size(texts.model)} model size, the goal is for {GOAL_SIZE}"
        checks.append(_judge(text_goals[0], f"{gpu_backend} {texts.sentences_per_s:,.0f}/s",
                             texts.sentences_per_s >= 30000, text_size, not_corpus, withheld))
        share = texts.share_of_model_only
        checks.append(_judge(text_goals[1], f"{100 * share:.0f}% ({texts.model_only_per_s:,.0f}/s model only)",
                             share >= 0.85, text_size, not_corpus, withheld))
    else:
        checks += [GoalCheck(g, "no GPU backend classified texts here", None) for g in text_goals]

    cpu = _text_record(result, "onnxruntime-int8")
    goal = "CPU tokenizing <= 5% of the Classifier's time (INT8)"
    if cpu:
        small = None if model_size(cpu.model) == "small" else f"the {model_size(cpu.model)} model size, the goal " \
                                                              "is for small"
        checks.append(_judge(goal, f"{100 * cpu.tokenizer_share:.1f}%", cpu.tokenizer_share <= 0.05, small, withheld))
    else:
        checks.append(GoalCheck(goal, "-", None))
    return checks
