"""Optimization profiles: which ``[batch, seq_len]`` shapes an engine accepts and which it is tuned for.

A TensorRT engine with dynamic inputs needs at least one optimization profile per input: a ``min``, an
``opt`` and a ``max`` shape. Any shape between min and max runs, but the builder times its kernels
(tactics) **at the opt shape only**. The original article built one profile with opt ``20 x 512``
(10,240 tokens per call) and ran ``1 x 200`` (200 tokens): every matrix multiply then used tile sizes and
split strategies chosen for a problem 51 times larger, most of the GPU sat idle, and the FP32 engine took
101 ms; a profile that matched the request (``1 x 512``) ran in 7 ms.

So opt shapes are chosen here from what the model will really see:

* the token-length statistics written by 01 (percentiles and histogram, ``[CLS]``/``[SEP]`` included);
* the batch sizes the reader expects, and how batches are formed. A batch is padded to its **longest**
  sentence. The :class:`~helpers.backends.Classifier` sorts texts by length before batching, so padded
  widths follow the length distribution itself: opt length = the median. Batches of ``b`` sentences taken
  in arrival order (a server) are padded to about the ``b/(b+1)`` quantile instead (the median for
  ``b = 1``, the 89th percentile for ``b = 8``). The quantile is rounded up to a multiple of 8.

When one range would be too wide (a maximum length far above the typical one, or batch sizes from 1 to
many) the engine gets several profiles, a grid of length bands times batch bands, so that every shape up to
the maxima is covered and each shape runs on the profile tuned nearest to it.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..config import INPUT_NAMES
from ..errors import BackendError, ConfigError, InputError, MissingArtifactError
from ..io import atomic_write_json, read_json


def round_up(value: float, multiple: int) -> int:
    """``value`` rounded up to a multiple of ``multiple`` (tensor cores like multiples of 8)."""
    return int(math.ceil(value / multiple) * multiple)


@dataclass(frozen=True)
class ShapeProfile:
    """One optimization profile for the two ``[batch, seq_len]`` inputs (both get the same shapes)."""

    min_batch: int
    opt_batch: int
    max_batch: int
    min_len: int
    opt_len: int
    max_len: int

    def __post_init__(self) -> None:
        for axis in ("batch", "len"):
            lo, opt, hi = (getattr(self, f"{k}_{axis}") for k in ("min", "opt", "max"))
            if not (isinstance(lo, int) and isinstance(opt, int) and isinstance(hi, int)) or not 1 <= lo <= opt <= hi:
                raise ConfigError(
                    f"profile {axis} range must satisfy 1 <= min <= opt <= max with integers, got "
                    f"min={lo!r}, opt={opt!r}, max={hi!r}.")

    @property
    def min_shape(self) -> tuple[int, int]:
        return (self.min_batch, self.min_len)

    @property
    def opt_shape(self) -> tuple[int, int]:
        return (self.opt_batch, self.opt_len)

    @property
    def max_shape(self) -> tuple[int, int]:
        return (self.max_batch, self.max_len)

    def shapes(self, names: Sequence[str] = INPUT_NAMES) -> dict[str, tuple[tuple[int, int], ...]]:
        """``{input name: (min, opt, max)}`` as TensorRT's ``set_shape`` and trtexec want them."""
        return {name: (self.min_shape, self.opt_shape, self.max_shape) for name in names}

    def covers(self, batch: int, seq_len: int) -> bool:
        return self.min_batch <= batch <= self.max_batch and self.min_len <= seq_len <= self.max_len

    def label(self) -> str:
        return (f"batch {self.min_batch}-{self.max_batch} (opt {self.opt_batch}) x "
                f"length {self.min_len}-{self.max_len} (opt {self.opt_len})")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ShapeProfile":
        try:
            return cls(**{k: int(data[k]) for k in cls.__dataclass_fields__})
        except KeyError as exc:
            raise ConfigError(f"profile record lacks {exc.args[0]!r}: {dict(data)}") from None


@dataclass(frozen=True)
class ProfileSet:
    """The profiles of one engine, in TensorRT's order (profile index = position), and why they were chosen."""

    profiles: tuple[ShapeProfile, ...]
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.profiles:
            raise ConfigError("a profile set needs at least one profile.")

    @property
    def max_batch(self) -> int:
        return max(p.max_batch for p in self.profiles)

    @property
    def max_len(self) -> int:
        return max(p.max_len for p in self.profiles)

    def select(self, batch: int, seq_len: int) -> int:
        """Index of the tightest profile covering ``batch x seq_len``; :class:`InputError` naming the range if none."""
        covering = [i for i, p in enumerate(self.profiles) if p.covers(batch, seq_len)]
        if not covering:
            ranges = "; ".join(f"profile {i}: {p.label()}" for i, p in enumerate(self.profiles))
            raise InputError(
                f"TensorRT engine: input shape {batch} x {seq_len} is outside every optimization profile ({ranges}). "
                f"Split the batch to at most {self.max_batch} rows and truncate to at most {self.max_len} tokens "
                "(the Classifier does both), or rebuild the engine in 04_build_engine with larger maxima.")
        return min(covering, key=lambda i: (self.profiles[i].max_len, self.profiles[i].max_batch, i))

    def envelope(self) -> ShapeProfile:
        """One profile spanning the whole set, for tools that take one profile (a trtexec line): the
        smallest minimum, the largest maximum, and opt = the largest opt batch at the first (typical)
        length band's opt length."""
        first = self.profiles[0]
        return ShapeProfile(min(p.min_batch for p in self.profiles), max(p.opt_batch for p in self.profiles),
                            self.max_batch, min(p.min_len for p in self.profiles), first.opt_len, self.max_len)

    def covers_everything_up_to_max(self) -> bool:
        """True when every ``batch <= max_batch`` x ``seq_len <= max_len`` falls in some profile."""
        return all(any(p.covers(b, s) for p in self.profiles)
                   for b in _edges(self.profiles, "batch") for s in _edges(self.profiles, "len"))

    def to_dicts(self) -> list[dict[str, int]]:
        return [p.to_dict() for p in self.profiles]

    @classmethod
    def from_dicts(cls, records: Iterable[Mapping[str, Any]], reason: str = "") -> "ProfileSet":
        return cls(tuple(ShapeProfile.from_dict(r) for r in records), reason)

    @classmethod
    def single(cls, min_shape: tuple[int, int], opt_shape: tuple[int, int], max_shape: tuple[int, int],
               reason: str = "") -> "ProfileSet":
        """One profile from its ``(batch, seq_len)`` min, opt and max shapes, as TensorRT's ``set_shape`` takes them."""
        (b0, l0), (b1, l1), (b2, l2) = min_shape, opt_shape, max_shape
        return cls((ShapeProfile(b0, b1, b2, l0, l1, l2),), reason)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the profiles and the reason for them as JSON (atomically)."""
        return atomic_write_json(path, {"profiles": self.to_dicts(), "reason": self.reason})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "ProfileSet":
        """Read what :meth:`save` wrote; :class:`MissingArtifactError` naming 04 when it is absent."""
        if not Path(path).is_file():
            raise MissingArtifactError(f"no optimization profiles at {path}; run notebook 04_build_engine first.")
        record = read_json(path)
        return cls.from_dicts(record["profiles"], record.get("reason", ""))

    def table(self) -> list[dict[str, Any]]:
        """Rows for a notebook table."""
        return [{"profile": i, "min": "x".join(map(str, p.min_shape)), "opt": "x".join(map(str, p.opt_shape)),
                 "max": "x".join(map(str, p.max_shape))} for i, p in enumerate(self.profiles)]


def _edges(profiles: Sequence[ShapeProfile], axis: str) -> set[int]:
    """Every boundary value of an axis (checking these suffices: coverage only changes at the edges)."""
    values = {1}
    for p in profiles:
        lo, hi = getattr(p, f"min_{axis}"), getattr(p, f"max_{axis}")
        values.update({lo, hi, max(1, lo - 1), hi + 1})
    top = max(getattr(p, f"max_{axis}") for p in profiles)
    return {v for v in values if 1 <= v <= top}


# ------------------------------------------------------------------------------------------ length statistics
def length_quantile(stats: Mapping[str, Any], q: float) -> float:
    """The ``q`` quantile (0..1) of token counts from 01's statistics.

    Interpolates linearly between the stored exact percentiles (50/90/95/99), the shortest possible input
    (3 tokens: ``[CLS]``, one token, ``[SEP]``) and the longest text seen. The histogram is used only when
    percentiles are absent: a few very long reviews make its bins too wide to read a median from.
    """
    if not 0.0 <= q <= 1.0:
        raise ConfigError(f"quantile must be within [0, 1], got {q}.")
    pct = stats.get("percentiles") or {}
    if pct:
        points = sorted((float(k) / 100.0, float(v)) for k, v in pct.items())
        top = max(float(stats.get("max", points[-1][1])), points[-1][1])
        xs, ys = zip(*([(0.0, min(3.0, points[0][1]))] + points + [(1.0, top)]))
        return float(np.interp(q, xs, ys))
    hist = stats.get("histogram") or {}
    edges, counts = hist.get("edges"), hist.get("counts")
    if edges and counts and len(edges) == len(counts) + 1 and sum(counts) > 0:
        cdf = np.concatenate([[0.0], np.cumsum(counts) / float(sum(counts))])
        return float(np.interp(q, cdf, np.asarray(edges, dtype=float)))
    raise ConfigError("length statistics hold neither percentiles nor a histogram; re-run 01_train.")


def padded_length(stats: Mapping[str, Any], batch: int, cap: int, multiple: int = 8, bucketed: bool = True,
                  band: tuple[float, float] = (0.0, 1.0)) -> int:
    """Typical padded width of a batch of ``batch`` sentences, rounded up to ``multiple`` and capped at ``cap``.

    Length-bucketed batches (sorted by length): the median length. Batches in arrival order: the
    ``b/(b+1)`` quantile, the expected longest of ``b`` sentences. ``band`` restricts both to a slice of
    the distribution given as quantiles (``(0.9, 1.0)``: the longest tenth of the texts).
    """
    low, high = band
    share = 0.5 if bucketed else batch / (batch + 1.0)
    return max(1, min(cap, round_up(length_quantile(stats, low + (high - low) * share), multiple)))


def _parse_batches(batch_sizes: Sequence[int] | str) -> list[int]:
    if isinstance(batch_sizes, str):
        try:
            batch_sizes = [int(x) for x in batch_sizes.replace(" ", "").split(",") if x]
        except ValueError:
            raise ConfigError(f"batch sizes must be integers separated by commas, e.g. '1,8,32'; got {batch_sizes!r}.") from None
    sizes = sorted({int(b) for b in batch_sizes})
    if not sizes or sizes[0] < 1:
        raise ConfigError(f"expected batch sizes must be positive integers, got {list(batch_sizes)!r}.")
    return sizes


def choose_profiles(
    stats: Mapping[str, Any],
    batch_sizes: Sequence[int] | str = (1, 8, 32),
    *,
    max_len: int | None = None,
    split_ratio: float = 4.0,
    multiple: int = 8,
    bucketed: bool = True,
) -> ProfileSet:
    """Profiles for the length statistics ``stats`` (01's ``length_stats.json``) and the expected batch sizes.

    * Lengths: ``1..max_len`` (the tokenizer's limit). If ``max_len`` is more than ``split_ratio`` times the
      median length, two bands: short ``1..p90`` and long ``p90+1..max_len``.
    * Batches: ``1..max(batch_sizes)``. If the largest expected batch is more than ``split_ratio`` times the
      smallest, two bands: ``1..smallest`` (latency, opt = smallest) and ``smallest+1..largest``
      (throughput, opt = largest: the Classifier sends full batches).
    * Opt length of each profile: :func:`padded_length` for its opt batch within its length band
      (``bucketed``: the Classifier sorts by length; ``False`` for batches in arrival order).
    """
    cap = int(max_len if max_len is not None else stats["max_len"])
    if cap < 1:
        raise ConfigError(f"max_len must be >= 1, got {cap}.")
    if split_ratio <= 1:
        raise ConfigError(f"split_ratio must be > 1, got {split_ratio}.")
    sizes = _parse_batches(batch_sizes)
    smallest, largest = sizes[0], sizes[-1]
    median = max(1.0, length_quantile(stats, 0.5))

    short_top = min(cap - 1, round_up(length_quantile(stats, 0.9), multiple))
    if cap > split_ratio * median and short_top >= 1:
        len_bands = [(1, short_top, (0.0, 0.9)), (short_top + 1, cap, (0.9, 1.0))]
        len_why = (f"max length {cap} is more than {split_ratio:g}x the median {median:.0f} tokens, so lengths are "
                   f"split at the 90th percentile ({short_top})")
    else:
        len_bands = [(1, cap, (0.0, 1.0))]
        len_why = f"max length {cap} is within {split_ratio:g}x the median {median:.0f} tokens: one length band"

    if largest > split_ratio * smallest:
        batch_bands = [(1, smallest, smallest), (smallest + 1, largest, largest)]
        batch_why = (f"expected batches {sizes} span more than {split_ratio:g}x, so batch {smallest} "
                     f"(latency) and {smallest + 1}-{largest} (throughput) get separate profiles")
    else:
        batch_bands = [(1, largest, largest)]
        batch_why = f"expected batches {sizes}: one batch band 1-{largest}, tuned for full batches of {largest}"

    profiles = []
    for lo_len, hi_len, quantiles in len_bands:
        for lo_b, hi_b, opt_b in batch_bands:
            opt_len = min(hi_len, max(lo_len, padded_length(stats, opt_b, cap, multiple, bucketed, quantiles)))
            profiles.append(ShapeProfile(lo_b, opt_b, hi_b, lo_len, opt_len, hi_len))
    return ProfileSet(tuple(profiles), f"{len_why}; {batch_why}.")


def profiles_from_engine(engine: Any, input_names: Sequence[str] = INPUT_NAMES) -> ProfileSet:
    """A deserialized engine's optimization profiles, read with ``engine.get_tensor_profile_shape(name, i)``
    from the first input and checked equal for every input (this project's inputs share one shape)."""
    profiles = []
    for index in range(engine.num_optimization_profiles):
        per_input = {}
        for name in input_names:
            low, opt, high = (tuple(int(d) for d in dims) for dims in engine.get_tensor_profile_shape(name, index))
            per_input[name] = (low, opt, high)
        first = per_input[input_names[0]]
        if any(v != first for v in per_input.values()):
            raise BackendError(f"engine profile {index} gives the inputs different shapes {per_input}; this project's "
                               "inputs always share one [batch, seq_len] shape. Rebuild with 04_build_engine.")
        (b0, l0), (b1, l1), (b2, l2) = first
        profiles.append(ShapeProfile(b0, b1, b2, l0, l1, l2))
    return ProfileSet(tuple(profiles), reason="read from the engine")


def draw_profiles(ax: Any, stats: Mapping[str, Any], profile_set: ProfileSet) -> None:
    """Draw where the profiles sit on the length distribution into the matplotlib axes ``ax``: the share of
    texts up to each length (01's percentiles marked), each profile's length range shaded, its opt length dashed."""
    q = np.linspace(0, 0.995, 400)
    ax.plot([length_quantile(stats, x) for x in q], q, color="#4c72b0", label="training texts (cumulative share)")
    points = sorted((float(k) / 100, float(v)) for k, v in (stats.get("percentiles") or {}).items())
    ax.scatter([v for _, v in points], [k for k, _ in points], color="#4c72b0", zorder=3)
    for i, p in enumerate(profile_set.profiles):
        ax.axvspan(p.min_len, p.max_len, alpha=0.06 + 0.05 * i, color="C1")
        ax.axvline(p.opt_len, color="C3", linestyle="--", linewidth=1)
        ax.text(p.opt_len, 0.05 + 0.1 * i, f" profile {i}: opt {p.opt_batch}x{p.opt_len}", fontsize=8)
    ax.axvline(stats["max_len"], color="k", linewidth=1, label=f"max_len {stats['max_len']} (longer texts are cut)")
    ax.set_xlim(0, max(stats["max_len"] * 1.2, max((v for _, v in points), default=0)))
    ax.set_ylim(0, 1)
    ax.set_xlabel("tokens per text ([CLS] and [SEP] included)")
    ax.set_ylabel("share of texts")
    ax.legend(loc="lower right", fontsize=8)
