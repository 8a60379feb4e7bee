"""Named model sizes, run parameters, environment overrides and the artifact layout.

Every notebook starts with a papermill ``parameters`` cell of plain variables and then calls
:func:`apply_env_overrides`, which replaces a parameter ``name`` by the environment variable
``SERIES_<NAME>`` when that is set (and prints that it did). The test suite uses this to run the series
with the ``tiny`` model size and a throw-away artifacts folder without editing a notebook.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import ConfigError

ENV_PREFIX = "SERIES_"

# The model's I/O contract, shared by the exporter and every backend.
INPUT_NAMES: tuple[str, str] = ("input_ids", "segment_ids")
OUTPUT_NAME = "logits"
#: One integer input dtype for ONNX Runtime and TensorRT alike. TensorRT prefers int32, and since TensorRT 9
#: an int64 input needs int64 buffers; the exported ONNX therefore takes int32 and casts inside the graph.
INPUT_DTYPE = np.dtype(np.int32)

#: Metadata files that tie 01's outputs together: the split's manifest (in ``data/``) and the checkpoint's
#: record (in ``checkpoint/``), which names the split it was trained on. Readers check one against the other.
SPLIT_META_FILE = "split.json"
CHECKPOINT_META_FILE = "checkpoint.json"


@dataclass(frozen=True)
class PretrainConfig:
    """Masked-language-model pretraining of the encoder before fine-tuning (``helpers.pretrain``).

    The learning rate warms up linearly for ``warmup_steps`` and then decays with the inverse square root of
    the step, a schedule that does not depend on ``steps``: the encoder after ``n`` steps of a longer run is
    the encoder a run of ``n`` steps makes, which is how the learning curve in ``results/`` was measured.
    """

    #: optimiser steps; 0 skips pretraining (the classifier then trains from scratch)
    steps: int = 0
    batch_size: int = 64
    #: tokens per packed training sequence, ``[CLS]`` and ``[SEP]`` included
    seq_len: int = 128
    lr: float = 5e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    #: share of tokens to predict; of those 80 % become ``[MASK]``, 10 % a random token, 10 % stay (BERT's recipe)
    mask_rate: float = 0.15
    #: a character joins the vocabulary when the pretraining text holds it at least this often
    vocab_min_count: int = 2

    def __post_init__(self) -> None:
        for name in ("steps", "warmup_steps"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"pretraining {name} must be 0 or more, got {getattr(self, name)!r}.")
        for name in ("batch_size", "vocab_min_count"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"pretraining {name} must be a positive integer, got {getattr(self, name)!r}.")
        if not 8 <= int(self.seq_len) <= 512:
            raise ConfigError(f"pretraining seq_len must be between 8 and 512 tokens, got {self.seq_len!r}.")
        if not self.lr > 0:
            raise ConfigError(f"pretraining lr must be positive, got {self.lr!r}.")
        if not 0 < self.mask_rate < 1:
            raise ConfigError(f"mask_rate must be between 0 and 1 (BERT uses 0.15), got {self.mask_rate!r}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelSize:
    """Size of the BERT encoder and the training defaults that suit it."""

    name: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_len: int = 128
    batch_size: int = 32
    epochs: int = 3
    #: fine-tuning learning rate after 01's own pretraining
    lr: float = 1e-4
    #: learning rate when the classifier trains from scratch (``pretrain_steps=0``)
    scratch_lr: float = 5e-4
    dropout: float = 0.1
    #: test accuracy a run of this model size must reach (01's assert cell); measured, see docs/results.md
    accuracy_floor: float = 0.70
    pretrain: PretrainConfig = PretrainConfig()

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MODEL_SIZES: dict[str, ModelSize] = {
    # Seconds on two CPU cores: enough to prove every step of the series, not a useful model.
    "tiny": ModelSize("tiny", 64, 2, 2, 256, max_len=64, batch_size=64, epochs=1, lr=2e-3, scratch_lr=2e-3,
                      pretrain=PretrainConfig(steps=20, batch_size=32, seq_len=64, lr=2e-3, warmup_steps=5)),
    # A CPU-sized model, pretrained and fine-tuned on the CPU.
    "small": ModelSize("small", 256, 4, 4, 1024, max_len=128, batch_size=64, epochs=3, lr=1e-4, scratch_lr=5e-4,
                       accuracy_floor=0.80,
                       pretrain=PretrainConfig(steps=1000, batch_size=64, seq_len=128, lr=5e-4, warmup_steps=100)),
    # The BERT-base architecture (12 x 768), for GPUs or for fine-tuning a pretrained checkpoint.
    # Fine-tuning: from scratch, 12 post-LayerNorm layers stay at chance with lr 5e-5 or 1e-4 on this corpus
    # (measured on an H100); 2e-5 with a 10 % warm-up learns, and is BERT's usual fine-tuning rate too.
    # Pretraining, sized for ~4 minutes on one H200 with bf16 autocast (not yet measured there): 2,500 steps of
    # 128 x 128 tokens = 41 M tokens, 14 passes over the text. A step is ~10 TFLOP (6 x 86 M encoder parameters
    # x 16,384 tokens, plus attention and the MLM head): 25-40 % of the H200's ~990 TFLOPS dense bf16 gives
    # 25-40 ms, and the H100's fine-tuning steps (launch-bound, ~60 ms each for 3 epochs in 78-100 s) put the
    # floor near 60 ms, so 2,500 steps should take 150-200 s and stay under 240 s up to 95 ms a step.
    # lr 1e-4 is BERT's own pretraining rate (post-LayerNorm, 10 % warm-up).
    "base": ModelSize("base", 768, 12, 12, 3072, max_len=128, batch_size=32, epochs=3, lr=2e-5, scratch_lr=2e-5,
                      accuracy_floor=0.80,
                      pretrain=PretrainConfig(steps=2500, batch_size=128, seq_len=128, lr=1e-4, warmup_steps=250)),
}


def has_cuda() -> bool:
    """True when PyTorch sees a CUDA device."""
    import torch

    return bool(torch.cuda.is_available())


def resolve_model_size(name: str) -> ModelSize:
    """Return the model size called ``name``; ``auto`` means ``base`` on a GPU and ``small`` on a CPU."""
    key = str(name).strip().lower()
    if key == "auto":
        key = "base" if has_cuda() else "small"
    if key not in MODEL_SIZES:
        raise ConfigError(
            f"Unknown model size {name!r}. Choose one of {sorted(MODEL_SIZES) + ['auto']} "
            "(tiny for tests, small for CPUs, base for GPUs, auto to pick by hardware)."
        )
    return MODEL_SIZES[key]


def _coerce(name: str, raw: str, current: Any) -> Any:
    """Turn the environment string ``raw`` into the type of the parameter's current value."""
    if raw.lower() in {"none", "null"} and not isinstance(current, str):
        return None
    if current is None:  # no type to follow: a number if it reads as one, else the string
        for kind in (int, float):
            try:
                return kind(raw)
            except ValueError:
                pass
        return raw
    try:
        if isinstance(current, bool):
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
    except ValueError:
        raise ConfigError(
            f"Environment variable {ENV_PREFIX}{name.upper()}={raw!r} is not a valid "
            f"{type(current).__name__} for parameter {name!r}; unset it or give a value like {current!r}."
        ) from None
    return raw


def apply_env_overrides(params: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return a copy of ``params`` where each ``SERIES_<NAME>`` environment variable replaces ``name``.

    Values are converted to the type of the parameter's current value (int, float, bool or str); every
    override is printed so that an executed notebook shows what it really ran with.
    """
    env = os.environ if environ is None else environ
    out = dict(params)
    for name, current in params.items():
        key = ENV_PREFIX + name.upper()
        if key in env:
            out[name] = _coerce(name, env[key], current)
            print(f"[override] {name} = {out[name]!r} (from {key})")
    return out


@dataclass(frozen=True)
class ArtifactPaths:
    """Where each notebook leaves its outputs, below one root folder."""

    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str]) -> "ArtifactPaths":
        return cls(Path(root).expanduser().resolve())

    @property
    def data(self) -> Path:
        """Split manifest and token-length statistics (01)."""
        return self.root / "data"

    @property
    def checkpoint(self) -> Path:
        """The trained classifier: weights, config, vocab, labels, metrics (01)."""
        return self.root / "checkpoint"

    @property
    def pretrain(self) -> Path:
        """Pretrained encoders, one folder per corpus and settings, reused by later runs (01)."""
        return self.root / "pretrain"

    @property
    def onnx(self) -> Path:
        """ONNX exports and their parity reports (02)."""
        return self.root / "onnx"

    @property
    def trt(self) -> Path:
        """TensorRT engines, metadata sidecars, timing cache, environment report (03-05)."""
        return self.root / "trt"

    @property
    def bench(self) -> Path:
        """Benchmark results and plots (06)."""
        return self.root / "bench"

    def ensure(self) -> "ArtifactPaths":
        self.root.mkdir(parents=True, exist_ok=True)
        return self


def resolve_max_len(value: int | None, model_size: ModelSize, max_position: int = 512) -> int:
    """``value`` or the model size's default, checked against the model's position table."""
    max_len = model_size.max_len if value is None else int(value)
    if not 3 <= max_len <= max_position:
        raise ConfigError(
            f"max_len={value!r} must be between 3 and {max_position} (BERT's position table); "
            "longer texts are truncated to max_len, so pick e.g. the 95th percentile of token lengths."
        )
    return max_len
