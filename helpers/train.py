"""Fine-tuning 01's classifier: the optimizer, the schedule, length-bucketed batches, and the loop.

01 writes the first training step out in its own cells (forward, loss, ``backward``, ``step``,
``zero_grad``); :meth:`FineTuning.run` then takes the same step for every other batch
(:meth:`FineTuning.step`), validates after each epoch and keeps the weights of the best one.

Batches are drawn from length-sorted pools (shuffle, sort each pool of ``50 * batch_size`` sentences by
length, cut into batches, shuffle the batches): every batch is padded only to its own longest sentence, which
makes a CPU epoch several times faster than padding everything to ``max_len``.

Learning rate: each model size's rate was chosen for its own batch size. With another ``batch_size`` and no
``lr`` given, :func:`train_config_from` scales it by the square root of the ratio of batch sizes (the rule
for Adam-type optimizers: the gradient noise grows as batches shrink). A tiny model trained with batch 7 at
the rate chosen for batch 64 stayed at chance.

Repeatability: :func:`seed_everything` seeds Python, NumPy and PyTorch; call it before a model is built (its
initial weights come from PyTorch's generator). The batch order comes from a NumPy generator seeded with
``TrainConfig.seed``. On a CPU the same parameters then give the same weights and metrics, run after run, on
the same machine and PyTorch build with the same number of threads (another CPU type may pick other kernels
and round differently). On a GPU, runs are close but not bit-identical: embedding gradients are summed with
atomic additions in whatever order the threads finish, cuBLAS may choose other algorithms, and bf16 autocast
rounds the differences up (the base model size's runs on an H100 spread over about one point of accuracy).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .config import ModelSize
from .data import Dataset, Split
from .errors import ConfigError
from .model import SentimentClassifier
from .tokenizer import SentenceTokenizer


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; defaults come from the model size."""

    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    seed: int = 42
    device: str = "cpu"
    eval_batch_size: int = 128
    #: where ``lr`` came from, in words (shown with the config and kept in the checkpoint)
    lr_rule: str = "given"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}.")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr!r}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Learning rate for fine-tuning a Chinese BERT from ``pretrained_dir`` (01's own pretraining and training from
#: scratch use the model size's ``lr`` and ``scratch_lr``).
FINETUNE_LR = 2e-5

#: Where the encoder's weights come from, with the words 01 shows for it: 01's own masked-language-model
#: pretraining, nowhere (random), or a pretrained Chinese BERT folder (``pretrained_dir``).
INITS = {"mlm": "pretrained here", "scratch": "from scratch", "pretrained_dir": "from pretrained_dir"}


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and PyTorch (CPU and every GPU).

    Call it before building a model: bert4torch draws the initial weights from PyTorch's generator, so a model
    built before seeding differs from run to run even when training itself is seeded.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds every CUDA device too


def default_device() -> str:
    """``cuda`` when PyTorch sees a GPU, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def scaled_lr(lr: float, batch_size: int, reference_batch: int) -> float:
    """``lr`` (chosen for batches of ``reference_batch``) for batches of ``batch_size``: square-root scaling."""
    return float(lr) * math.sqrt(int(batch_size) / int(reference_batch))


def train_config_from(model_size: ModelSize, init: str = "mlm", *, epochs: int | None = None,
                      batch_size: int | None = None, lr: float | None = None, seed: int = 42,
                      device: str | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from a model size's defaults; any argument given (not ``None``) wins.

    ``init`` (one of :data:`INITS`) picks the default learning rate: the model size's ``lr`` after 01's own
    pretraining, ``scratch_lr`` from scratch, :data:`FINETUNE_LR` for a ``pretrained_dir`` BERT. That rate
    belongs to the model size's batch size; for another ``batch_size`` it is scaled by :func:`scaled_lr`.
    """
    if init not in INITS:
        raise ConfigError(f"init must be one of {sorted(INITS)}, got {init!r}.")
    batch = batch_size or model_size.batch_size
    if lr:
        rate, rule = float(lr), "given"
    else:
        base = {"mlm": model_size.lr, "scratch": model_size.scratch_lr, "pretrained_dir": FINETUNE_LR}[init]
        rate, rule = base, f"{model_size.name} default, encoder {INITS[init]}"
        if batch != model_size.batch_size:
            rate = scaled_lr(base, batch, model_size.batch_size)
            rule += f": {base:g} at batch {model_size.batch_size} x sqrt({batch}/{model_size.batch_size})"
    return TrainConfig(epochs=epochs or model_size.epochs, batch_size=batch, lr=rate, seed=seed,
                       device=device or default_device(), lr_rule=rule)


def adamw(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with BERT's grouping: no weight decay on biases and LayerNorm weights."""
    no_decay = ("bias", "Bias", "LayerNorm", "layerNorm", "Norm.weight")  # Bias: bert4torch's mlmBias
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if not any(k in n for k in no_decay)], "weight_decay": weight_decay},
        {"params": [p for n, p in named if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr)


@dataclass
class History:
    """What happened during training: per-step loss, per-epoch metrics, wall time."""

    step_loss: list[float] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    best_epoch: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "seconds": self.seconds, "best_epoch": self.best_epoch,
                "steps": len(self.step_loss)}


def length_bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                            pool: int = 50) -> list[np.ndarray]:
    """Index batches of similar length, in random order (see module docstring)."""
    order = rng.permutation(len(lengths))
    batches = []
    for start in range(0, len(order), batch_size * pool):
        chunk = order[start:start + batch_size * pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _logits(model: nn.Module, tokenizer: SentenceTokenizer, texts: Sequence[str], batch_size: int,
            device: str) -> np.ndarray:
    """``model``'s logits for ``texts``, through the series' Classifier API (the model is left in eval mode)."""
    from .backends import Classifier, TorchBackend

    labels = [str(i) for i in range(model.num_labels)]
    clf = Classifier(tokenizer, TorchBackend(model, device), labels, batch_size=batch_size)
    return clf.predict(list(texts)).logits


def evaluate(model: nn.Module, tokenizer: SentenceTokenizer, data: Dataset, batch_size: int = 128,
             device: str = "cpu") -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``data`` (through the series' Classifier API)."""
    logits = _logits(model, tokenizer, data.texts, batch_size, device)
    loss = nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(data.labels)).item()
    return {"accuracy": float((logits.argmax(1) == data.labels).mean()), "loss": float(loss)}


#: Largest gradient norm of a step (BERT's own fine-tuning clips at 1.0).
CLIP_NORM = 1.0


class FineTuning:
    """One fine-tuning run of ``model`` on ``split.train``, step by step.

    Creating it seeds PyTorch (dropout) with ``cfg.seed``, tokenizes the training texts once, and makes the
    optimizer (:func:`adamw`) and the schedule (linear warm-up over ``cfg.warmup_fraction`` of the steps, then
    linear decay to 0). :meth:`next_batch` hands out length-bucketed batches; :meth:`step` is one optimisation
    step, which 01 writes out for the first batch; :meth:`run` takes every remaining step, validates after each
    epoch and keeps the weights of the epoch with the best validation accuracy.
    """

    def __init__(self, model: SentimentClassifier, tokenizer: SentenceTokenizer, split: Split,
                 cfg: TrainConfig) -> None:
        torch.manual_seed(cfg.seed)
        self.model, self.tokenizer, self.split, self.cfg = model, tokenizer, split, cfg
        self._rng = np.random.default_rng(cfg.seed)
        self._start = time.perf_counter()
        self._rows, _ = tokenizer.encode_many(split.train.texts)  # tokenize once, not once per epoch
        self._lengths = np.array([len(r) for r in self._rows])
        self.steps_per_epoch = math.ceil(len(split.train) / cfg.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        warmup = max(1, int(cfg.warmup_fraction * self.total_steps))
        total = self.total_steps
        self.optimizer = adamw(model, cfg.lr, cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
        self.history = History()
        self.epoch = 0
        self._batches: list[np.ndarray] = []
        self._correct = self._seen = 0
        self._best_accuracy, self._best_state = -1.0, None
        model.to(cfg.device).train()

    @property
    def steps_done(self) -> int:
        return len(self.history.step_loss)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(input_ids, segment_ids, labels)`` of the next batch, on ``cfg.device``. When an epoch's batches
        are used up, that epoch is validated first and the next one's batches are drawn."""
        if not self._batches:
            if self.epoch == self.cfg.epochs:
                raise ConfigError(f"fine-tuning: all {self.cfg.epochs} epochs are done; there is no next batch.")
            self._end_epoch()
            self.epoch += 1
            self._batches = length_bucketed_batches(self._lengths, self.cfg.batch_size, self._rng)
            self.model.train()
        idx = self._batches.pop(0)
        enc = self.tokenizer.pad([self._rows[i] for i in idx])
        device = self.cfg.device
        return (torch.from_numpy(enc.input_ids).to(device), torch.from_numpy(enc.segment_ids).to(device),
                torch.from_numpy(self.split.train.labels[idx]).to(device))

    def step(self, input_ids: torch.Tensor, segment_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One optimisation step on one batch (bf16 autocast on a GPU); returns the loss."""
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cfg.device.startswith("cuda")):
            logits = self.model(input_ids, segment_ids)
        loss = nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=CLIP_NORM)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.record(loss, logits, labels)
        return loss

    def record(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a finished step's loss and correct answers to the history."""
        self.history.step_loss.append(loss.item())
        self._correct += int((logits.argmax(1) == labels).sum())
        self._seen += len(labels)

    def run(self, progress: bool = True) -> History:
        """Take every remaining step of every epoch, validate after each epoch, and keep the best epoch's
        weights; returns the history (the model is left in eval mode)."""
        from .progress import tqdm

        # at most one refresh a second (set_postfix must not force one): an executed notebook stays small
        bar = tqdm(total=self.total_steps, initial=self.steps_done, desc="training", unit="step",
                   disable=not progress, mininterval=1.0)
        while self.steps_done < self.total_steps:
            loss = self.step(*self.next_batch())
            bar.set_postfix(epoch=self.epoch, loss=f"{loss.item():.3f}", refresh=False)
            bar.update(1)
        bar.close()
        self._end_epoch()
        self.history.seconds = time.perf_counter() - self._start
        if self._best_state is not None:
            self.model.load_state_dict(self._best_state)
        self.model.eval()
        return self.history

    def _end_epoch(self) -> None:
        if self.epoch == 0 or len(self.history.epochs) == self.epoch:
            return
        valid = self.evaluate(self.split.valid)
        steps = self.history.step_loss[-self.steps_per_epoch:]
        self.history.epochs.append({"epoch": self.epoch, "train_accuracy": self._correct / max(1, self._seen),
                                    "train_loss": float(np.mean(steps)),
                                    "valid_accuracy": valid["accuracy"], "valid_loss": valid["loss"]})
        self._correct = self._seen = 0
        if valid["accuracy"] > self._best_accuracy:
            self._best_accuracy, self.history.best_epoch = valid["accuracy"], self.epoch
            self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def evaluate(self, data: Dataset) -> dict[str, float]:
        """Accuracy and mean cross-entropy of the model on ``data``."""
        return evaluate(self.model, self.tokenizer, data, self.cfg.eval_batch_size, self.cfg.device)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """The label id the model predicts for each text."""
        return _logits(self.model, self.tokenizer, texts, self.cfg.eval_batch_size, self.cfg.device).argmax(1)

    def below_floor(self, test_accuracy: float, floor: float) -> str:
        """Why a run missed its model size's accuracy floor, and what to change."""
        cfg = self.cfg
        other = " or lr=None (the model size's rate, scaled to batch_size)" if cfg.lr_rule == "given" else ""
        return (f"test accuracy {test_accuracy:.4f} is below the floor {floor} (chance is "
                f"{1 / self.model.num_labels:.2f}): the model did not learn. It trained {cfg.epochs} epoch(s) of "
                f"batch_size {cfg.batch_size} with lr {cfg.lr:.3g} ({cfg.lr_rule}). A rate too large for the batch "
                f"keeps the loss at chance as surely as one too small: try lr={cfg.lr / 10:.2g}{other}, or more "
                "epochs. Nothing was saved.")

    def to_dict(self) -> dict[str, Any]:
        """What a checkpoint records about the run: its settings and history."""
        return {"train_params": self.cfg.to_dict(), "history": self.history.to_dict()}


