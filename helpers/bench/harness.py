"""Side-by-side latency measurement of several backends in one process.

How a number is made (and why):

* **One process, interleaved rounds.** Every backend of a line-up is timed at one shape in ``rounds``
  rounds; in each round every backend runs its share of iterations, in an order rotated round by round.
  Thermal drift, a noisy neighbour or a clock change then hits all backends alike, so their *ratios* are
  trustworthy even when the absolute numbers move. The spread of the per-round medians is recorded as
  ``drift``.
* **Warm-up first.** The first call (graph capture, compilation, memory-pool growth, lazy kernel loading)
  is timed on its own as ``first_call_ms`` and then ``warmup`` more calls run untimed.
* **End-to-end latency.** A timed call is ``backend.predict_logits(ids, segments)``: host numpy arrays in,
  host float32 logits out. For a GPU backend that includes the host->device copies, the launch, the
  device->host copy and the synchronisation that the copy implies: what a caller waits for.
* **GPU compute beside it.** A backend that can also time its device work alone (inputs already on the
  device, timed with CUDA events or a synchronised clock) has a method
  ``device_compute_ms(input_ids, segment_ids, iters) -> list[float]`` (one that raises
  ``NotImplementedError`` cannot, this time); its samples are recorded as ``device_compute``.
* **Real inputs.** Token ids are random (never zeros, never padding), drawn from ``input_sets`` different
  feeds that rotate, so no backend is timed on a single cached input. Outputs are checked to be finite
  and, where a reference backend is in the line-up, compared with it (``max_abs_diff``).
* **Garbage collection is paused** during timed loops (as :mod:`timeit` does).

The module knows nothing about PyTorch, ONNX Runtime or TensorRT: it sees only :class:`~helpers.backends.base.Backend`.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ..backends.base import Backend
from ..config import INPUT_DTYPE
from ..errors import BackendError, ConfigError
from .stats import LatencyStats, relative_spread

#: Ids below this are special tokens ([PAD], [UNK], [CLS], [SEP], [MASK]) in the series' vocabularies.
FIRST_ORDINARY_ID = 5


@dataclass(frozen=True)
class Shape:
    """One input shape: ``batch`` rows of ``seq_len`` tokens."""

    batch: int
    seq_len: int

    def __post_init__(self) -> None:
        if self.batch < 1 or self.seq_len < 1:
            raise ConfigError(f"a benchmark shape needs batch >= 1 and seq_len >= 1, got {self.batch}x{self.seq_len}.")

    @property
    def label(self) -> str:
        return f"{self.batch}x{self.seq_len}"

    @classmethod
    def parse(cls, text: str) -> "Shape":
        """``"1x200"`` -> ``Shape(1, 200)``."""
        parts = str(text).strip().lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ConfigError(f"a shape is written BATCHxSEQ_LEN, e.g. 1x200; got {text!r}.")
        return cls(int(parts[0]), int(parts[1]))

    @property
    def tokens(self) -> int:
        return self.batch * self.seq_len


def parse_shapes(text: str) -> list[Shape]:
    """``"1x200, 8x128"`` -> ``[Shape(1, 200), Shape(8, 128)]``; an empty text gives no shapes."""
    return [Shape.parse(p) for p in str(text).split(",") if p.strip()]


@dataclass(frozen=True)
class TimingConfig:
    """How long and how carefully to time each backend at each shape."""

    warmup: int = 10          # untimed calls after the first call (fewer if they exceed time_budget_s)
    iters: int = 50           # timed end-to-end calls per backend and shape, spread over the rounds
    rounds: int = 5           # interleaved rounds
    input_sets: int = 4       # different random feeds, rotated
    time_budget_s: float = 0.0  # > 0: fewer iterations for a backend whose calls are slow (never below min_iters)
    min_iters: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.iters < 1 or self.rounds < 1 or self.input_sets < 1 or self.min_iters < 1:
            raise ConfigError(f"iters, rounds, input_sets and min_iters must be >= 1; got {self}.")
        if self.warmup < 0 or self.time_budget_s < 0:
            raise ConfigError(f"warmup and time_budget_s must be >= 0; got {self}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Measurement:
    """The timing of one backend at one shape of one model. Latencies in ms; throughput in rows/s."""

    model: str
    backend: str
    device: str
    precision: str
    batch: int
    seq_len: int
    latency: LatencyStats
    throughput_per_s: float
    first_call_ms: float
    round_medians_ms: list[float]
    drift: float
    device_compute: LatencyStats | None = None
    includes_copies: bool = True
    max_abs_diff: float | None = None
    reference: str | None = None
    backend_info: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> Shape:
        return Shape(self.batch, self.seq_len)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Measurement":
        d = dict(d)
        d["latency"] = LatencyStats(**d["latency"])
        if d.get("device_compute") is not None:
            d["device_compute"] = LatencyStats(**d["device_compute"])
        return cls(**d)


@dataclass(frozen=True)
class Skip:
    """A backend (at a shape, or ``*`` for all) that was not measured, and why."""

    model: str
    backend: str
    shape: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def device_kind(device: str) -> str:
    """``cpu`` or ``cuda`` for a backend's device (``cuda:1`` is ``cuda``)."""
    return device.split(":")[0]


def random_feed(shape: Shape, vocab_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random ordinary token ids (no padding, no specials) and all-zero segment ids of ``shape``."""
    if vocab_size <= FIRST_ORDINARY_ID:
        raise ConfigError(f"vocab_size {vocab_size} leaves no ordinary tokens (ids {FIRST_ORDINARY_ID}+).")
    ids = rng.integers(FIRST_ORDINARY_ID, vocab_size, size=(shape.batch, shape.seq_len), dtype=np.int64)
    return ids.astype(INPUT_DTYPE), np.zeros((shape.batch, shape.seq_len), dtype=INPUT_DTYPE)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector inside the block (restored even on error)."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def device_times(backend: Backend, ids: np.ndarray, seg: np.ndarray, iters: int) -> list[float]:
    """``backend.device_compute_ms(ids, seg, iters)`` where the backend times its device work alone, else []."""
    timer = getattr(backend, "device_compute_ms", None)
    if timer is None:
        return []
    try:
        return list(timer(ids, seg, iters))
    except NotImplementedError:
        return []


def _call_ms(backend: Backend, ids: np.ndarray, seg: np.ndarray) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter_ns()
    out = backend.predict_logits(ids, seg)
    t1 = time.perf_counter_ns()
    return (t1 - t0) / 1e6, out


def _check_output(name: str, shape: Shape, out: np.ndarray) -> None:
    if not isinstance(out, np.ndarray) or out.ndim != 2 or out.shape[0] != shape.batch:
        got = getattr(out, "shape", type(out).__name__)
        raise BackendError(f"{name}: expected logits [{shape.batch}, labels] at {shape.label}, got {got}.")
    if not np.all(np.isfinite(out)):
        raise BackendError(
            f"{name}: non-finite logits at {shape.label} ({int((~np.isfinite(out)).sum())} of {out.size}); "
            "the backend's numerics are broken (an FP16 overflow?), so its timing would be meaningless."
        )


def shape_limit_reason(backend: Backend, shape: Shape) -> str | None:
    """Why ``backend`` cannot take ``shape`` (its max_batch / max_len), or None when it can."""
    if backend.max_batch is not None and shape.batch > backend.max_batch:
        return f"batch {shape.batch} is above this backend's maximum {backend.max_batch}"
    if backend.max_len is not None and shape.seq_len > backend.max_len:
        return f"sequence length {shape.seq_len} is above this backend's maximum {backend.max_len}"
    return None


def _iterations(config: TimingConfig, est_ms: float) -> int:
    if config.time_budget_s <= 0 or est_ms <= 0:
        return config.iters
    fit = int(config.time_budget_s * 1000.0 / est_ms)
    return max(config.min_iters, min(config.iters, fit))


def time_shape(
    backends: Mapping[str, Backend],
    shape: Shape,
    config: TimingConfig,
    *,
    model: str,
    vocab_size: int,
    reference: str | None = None,
) -> list[Measurement]:
    """Time every backend of ``backends`` (name -> backend) at ``shape``, side by side; see the module doc."""
    if not backends:
        return []
    rng = np.random.default_rng([config.seed, shape.batch, shape.seq_len])
    feeds = [random_feed(shape, vocab_size, rng) for _ in range(config.input_sets)]
    names = list(backends)
    first_ms: dict[str, float] = {}
    est_ms: dict[str, float] = {}
    outputs: dict[str, np.ndarray] = {}
    for name in names:  # first call + warm-up, backend by backend
        b = backends[name]
        first_ms[name], outputs[name] = _call_ms(b, *feeds[0])
        _check_output(name, shape, outputs[name])
        warm: list[float] = []
        while len(warm) < config.warmup and not (config.time_budget_s and sum(warm) > 1000 * config.time_budget_s):
            warm.append(_call_ms(b, *feeds[(len(warm) + 1) % len(feeds)])[0])
        est_ms[name] = float(np.median(warm)) if warm else first_ms[name]
    iters = {n: _iterations(config, est_ms[n]) for n in names}
    per_round = {n: max(1, math.ceil(iters[n] / config.rounds)) for n in names}
    samples: dict[str, list[list[float]]] = {n: [] for n in names}
    device: dict[str, list[float]] = {n: [] for n in names}
    with gc_paused():
        for r in range(config.rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                b = backends[name]
                round_samples = []
                for i in range(per_round[name]):
                    ids, seg = feeds[(r * per_round[name] + i) % len(feeds)]
                    round_samples.append(_call_ms(b, ids, seg)[0])
                samples[name].append(round_samples)
                device[name].extend(device_times(b, *feeds[r % len(feeds)], per_round[name]))
    ref_out = outputs.get(reference) if reference else None
    result = []
    for name in names:
        b = backends[name]
        flat = [s for rnd in samples[name] for s in rnd]
        lat = LatencyStats.from_samples(flat)
        medians = [float(np.median(rnd)) for rnd in samples[name]]
        diff = None
        if ref_out is not None and outputs[name].shape == ref_out.shape:
            diff = float(np.max(np.abs(outputs[name].astype(np.float64) - ref_out.astype(np.float64))))
        result.append(Measurement(
            model=model, backend=name, device=b.device, precision=b.precision,
            batch=shape.batch, seq_len=shape.seq_len, latency=lat, throughput_per_s=lat.throughput(shape.batch),
            first_call_ms=first_ms[name], round_medians_ms=medians, drift=relative_spread(medians),
            device_compute=LatencyStats.from_samples(device[name]) if device[name] else None,
            max_abs_diff=diff, reference=reference if diff is not None else None,
            backend_info=b.describe(),
        ))
    return result


SkipRule = Callable[[str, Backend, Shape], "str | None"]


def time_side_by_side(
    backends: Mapping[str, Backend],
    shapes: Sequence[Shape],
    config: TimingConfig,
    *,
    model: str,
    vocab_size: int,
    reference: str | None = None,
    skip_rule: SkipRule | None = None,
    log: Callable[[str], None] | None = print,
) -> tuple[list[Measurement], list[Skip]]:
    """Time ``backends`` at each of ``shapes``; return the measurements and the (backend, shape) pairs skipped.

    A backend is skipped at a shape above its ``max_batch``/``max_len``, or where ``skip_rule(name, backend,
    shape)`` returns a reason (for example: CPU backends above a token budget). Each shape prints one line of
    medians when ``log`` is given.
    """
    if not shapes:
        raise ConfigError("no shapes to time; give at least one Shape(batch, seq_len).")
    measurements: list[Measurement] = []
    skipped: list[Skip] = []
    for shape in shapes:
        chosen: dict[str, Backend] = {}
        for name, b in backends.items():
            reason = shape_limit_reason(b, shape) or (skip_rule(name, b, shape) if skip_rule else None)
            if reason:
                skipped.append(Skip(model, name, shape.label, reason))
            else:
                chosen[name] = b
        ref = reference if reference in chosen else None
        got = time_shape(chosen, shape, config, model=model, vocab_size=vocab_size, reference=ref)
        measurements.extend(got)
        if log is not None and got:
            log(f"{model} {shape.label}: " + " | ".join(f"{m.backend} {m.latency.median_ms:.3g} ms" for m in got))
    return measurements, skipped
