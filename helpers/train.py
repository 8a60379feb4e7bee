"""Training loop with a progress bar, evaluation, and the curves 01 plots.

Batches are drawn from length-sorted pools (shuffle, sort each pool of ``50 * batch_size`` sentences by
length, cut into batches, shuffle the batches): every batch is padded only to its own longest sentence, which
makes a CPU epoch several times faster than padding everything to ``max_len``.

Repeatability: :func:`seed_everything` seeds Python, NumPy and PyTorch; call it before a model is built (its
initial weights come from PyTorch's generator). The batch order comes from a NumPy generator seeded with
``TrainConfig.seed``. On a CPU the same parameters then give the same weights and metrics, run after run, on
the same machine and PyTorch build with the same number of threads (another CPU type may pick other kernels
and round differently). On a GPU, runs are close but not bit-identical (see 01).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

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


def train_config_from(model_size: ModelSize, *, epochs: int | None = None, batch_size: int | None = None,
                      lr: float | None = None, seed: int = 42, init: str = "mlm",
                      device: str | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from a model size's defaults; any argument given (not ``None``) wins.

    ``init`` (one of :data:`INITS`) picks the default learning rate: the model size's ``lr`` after 01's own
    pretraining, ``scratch_lr`` from scratch, :data:`FINETUNE_LR` for a ``pretrained_dir`` BERT.
    """
    if init not in INITS:
        raise ConfigError(f"init must be one of {sorted(INITS)}, got {init!r}.")
    default_lr = {"mlm": model_size.lr, "scratch": model_size.scratch_lr, "pretrained_dir": FINETUNE_LR}[init]
    return TrainConfig(epochs=epochs or model_size.epochs, batch_size=batch_size or model_size.batch_size,
                       lr=lr or default_lr, seed=seed, device=device or default_device())


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


def _tensors(tokenizer: SentenceTokenizer, rows: list[list[int]], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer.pad(rows)
    return torch.from_numpy(enc.input_ids).to(device), torch.from_numpy(enc.segment_ids).to(device)


def _logits(model: nn.Module, tokenizer: SentenceTokenizer, texts: list[str], batch_size: int, device: str) -> np.ndarray:
    from .backends import Classifier, TorchBackend

    labels = [str(i) for i in range(model.num_labels)]
    return Classifier(tokenizer, TorchBackend(model, device), labels, batch_size=batch_size).predict(texts).logits


def predict_label_ids(model: nn.Module, tokenizer: SentenceTokenizer, texts: list[str], batch_size: int = 128,
                      device: str = "cpu") -> np.ndarray:
    """The label id ``model`` predicts for each text (through the series' Classifier API)."""
    return _logits(model, tokenizer, texts, batch_size, device).argmax(1)


def evaluate(model: nn.Module, tokenizer: SentenceTokenizer, data: Dataset, batch_size: int = 128,
             device: str = "cpu") -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``data`` (through the series' Classifier API)."""
    logits = _logits(model, tokenizer, data.texts, batch_size, device)
    loss = nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(data.labels)).item()
    return {"accuracy": float((logits.argmax(1) == data.labels).mean()), "loss": float(loss)}


def train_classifier(model: SentimentClassifier, tokenizer: SentenceTokenizer, split: Split, cfg: TrainConfig,
                     progress: bool = True) -> History:
    """Train ``model`` on ``split.train``; keep the weights of the epoch with the best validation accuracy."""
    from .progress import tqdm

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    train = split.train
    model.to(cfg.device)
    rows, _ = tokenizer.encode_many(train.texts)  # tokenize once, not once per epoch
    lengths = np.array([len(r) for r in rows])
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warmup = max(1, int(cfg.warmup_fraction * total))
    opt = adamw(model, cfg.lr, cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    use_amp = cfg.device.startswith("cuda")
    hist, best_acc, best_state = History(), -1.0, None
    start = time.perf_counter()
    # at most one refresh a second (set_postfix below must not force one): an executed notebook stays small
    bar = tqdm(total=total, desc="training", unit="step", disable=not progress, mininterval=1.0)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        correct = seen = 0
        for idx in length_bucketed_batches(lengths, cfg.batch_size, rng):
            ids, seg = _tensors(tokenizer, [rows[i] for i in idx], cfg.device)
            y = torch.from_numpy(train.labels[idx]).to(cfg.device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                logits = model(ids, seg)
            loss = nn.functional.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            hist.step_loss.append(loss.item())
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}", refresh=False)  # shown at the next refresh
            bar.update(1)
        valid = evaluate(model, tokenizer, split.valid, cfg.eval_batch_size, cfg.device)
        hist.epochs.append({"epoch": epoch, "train_accuracy": correct / seen,
                            "train_loss": float(np.mean(hist.step_loss[-steps_per_epoch:])),
                            "valid_accuracy": valid["accuracy"], "valid_loss": valid["loss"]})
        if valid["accuracy"] > best_acc:
            best_acc, hist.best_epoch = valid["accuracy"], epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    bar.close()
    hist.seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return hist


def plot_history(hist: History):
    """Loss per step (smoothed) and accuracy per epoch, side by side; returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    loss = np.asarray(hist.step_loss)
    ax1.plot(loss, alpha=0.3, label="step")
    if len(loss) >= 10:
        w = max(5, len(loss) // 30)
        ax1.plot(np.arange(w - 1, len(loss)), np.convolve(loss, np.ones(w) / w, mode="valid"), label=f"mean of {w}")
    ax1.set(title="training loss", xlabel="step", ylabel="cross-entropy")
    ax1.legend()
    ep = [e["epoch"] for e in hist.epochs]
    ax2.plot(ep, [e["train_accuracy"] for e in hist.epochs], "o-", label="train")
    ax2.plot(ep, [e["valid_accuracy"] for e in hist.epochs], "s-", label="valid")
    ax2.set(title="accuracy", xlabel="epoch", ylabel="accuracy", xticks=ep)
    ax2.legend()
    fig.tight_layout()
    return fig
