"""Benchmark results as data: dataclasses that round-trip through one JSON file, written atomically.

Nothing here formats numbers for people; :mod:`helpers.bench.report` and :mod:`helpers.bench.plots` do
that when a result is shown. A result file is self-contained: the environment (hardware, versions,
threads), the timing configuration, every measurement, every skip with its reason, accuracy and
throughput records, and free-form notes.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import MissingArtifactError
from ..io import atomic_write_json, read_json
from .harness import Measurement, Skip

SCHEMA_VERSION = 1


@dataclass
class AccuracyRecord:
    """One backend's classification of a labelled set through the Classifier: accuracy, the end-to-end rate
    (texts in, labels out), the rate of the same batches through the backend alone, and the tokenizer's time
    (:mod:`helpers.bench.texts`). Times are medians over ``rounds`` passes, in seconds."""

    model: str
    backend: str
    dataset: str
    count: int
    accuracy: float
    bucketing: bool
    seconds: float
    sentences_per_s: float
    batch_size: int
    agreement_with_reference: float | None = None  # share of predictions equal to the reference backend's
    reference: str | None = None
    padding_fraction: float | None = None  # share of computed positions that were padding
    pad_multiple: int = 1  # batch widths rounded up to a multiple of this (Classifier.pad_multiple)
    batches: int | None = None  # backend calls the Classifier made
    model_only_seconds: float | None = None  # the same batches straight to predict_logits
    tokenize_seconds: float | None = None  # tokenizer.encode_batch on the same texts
    rounds: int = 1
    min_agreement: float | None = None  # the least agreement with the reference expected of this backend
    device: str | None = None

    @property
    def model_only_per_s(self) -> float | None:
        """Sentences per second of the backend alone on the Classifier's batches."""
        return self.count / self.model_only_seconds if self.model_only_seconds else None

    @property
    def share_of_model_only(self) -> float | None:
        """End-to-end rate as a share of the model-only rate (1.0: text handling costs nothing)."""
        return self.model_only_seconds / self.seconds if self.model_only_seconds and self.seconds else None

    @property
    def tokenizer_share(self) -> float | None:
        """The tokenizer's time as a share of the end-to-end time."""
        return self.tokenize_seconds / self.seconds if self.tokenize_seconds is not None and self.seconds else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchResult:
    """Everything one benchmark run produced."""

    environment: dict[str, Any]
    timing: dict[str, Any]
    measurements: list[Measurement] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    accuracy: list[AccuracyRecord] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    schema: int = SCHEMA_VERSION

    @classmethod
    def start(cls, threads: int = 0, **timing: Any) -> "BenchResult":
        """A new result for a run timed with ``timing`` (the fields of :class:`~helpers.bench.TimingConfig`:
        ``warmup``, ``iters``, ``rounds``, ...): pins PyTorch's CPU threads (0: every usable CPU) and records the
        machine, versions and how busy its CPUs are now."""
        from .harness import TimingConfig
        from .system import capture_environment, fix_cpu_threads

        return cls(environment=capture_environment(fix_cpu_threads(threads)), timing=TimingConfig(**timing).to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "BenchResult":
        """Read a result file written by :meth:`save`."""
        p = Path(path)
        if not p.is_file():
            raise MissingArtifactError(f"no benchmark result at {p}; run notebook 06_benchmark first.")
        return cls.from_dict(read_json(p))

    def add(self, measurements: Iterable[Measurement] = (), skipped: Iterable[Skip] = (),
            accuracy: Iterable[AccuracyRecord] = ()) -> "BenchResult":
        self.measurements.extend(measurements)
        self.skipped.extend(skipped)
        self.accuracy.extend(accuracy)
        return self

    def select(self, *, model: str | None = None, backend: str | None = None, batch: int | None = None,
               seq_len: int | None = None) -> list[Measurement]:
        """Measurements matching every given field."""
        return [m for m in self.measurements
                if (model is None or m.model == model) and (backend is None or m.backend == backend)
                and (batch is None or m.batch == batch) and (seq_len is None or m.seq_len == seq_len)]

    def median_ms(self, model: str, backend: str, batch: int, seq_len: int) -> float:
        """The median end-to-end latency of one measurement; KeyError naming what was asked if absent."""
        found = self.select(model=model, backend=backend, batch=batch, seq_len=seq_len)
        if not found:
            raise KeyError(f"no measurement of {backend} on {model} at {batch}x{seq_len}")
        return found[0].latency.median_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "environment": self.environment,
            "timing": self.timing,
            "parameters": self.parameters,
            "measurements": [m.to_dict() for m in self.measurements],
            "skipped": [s.to_dict() for s in self.skipped],
            "accuracy": [a.to_dict() for a in self.accuracy],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BenchResult":
        return cls(
            environment=dict(d["environment"]),
            timing=dict(d["timing"]),
            parameters=dict(d.get("parameters", {})),
            measurements=[Measurement.from_dict(m) for m in d.get("measurements", [])],
            skipped=[Skip(**s) for s in d.get("skipped", [])],
            accuracy=[AccuracyRecord(**a) for a in d.get("accuracy", [])],
            notes=list(d.get("notes", [])),
            schema=int(d.get("schema", SCHEMA_VERSION)),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the result as JSON, atomically."""
        return atomic_write_json(path, self.to_dict())
