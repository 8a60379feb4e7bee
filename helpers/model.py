"""The bert4torch classifier and its self-describing checkpoint.

Two bert4torch 0.6.0 traps are handled here once, for every notebook:

* ``bias=True``: without it bert4torch builds the feed-forward layers without bias and silently drops a
  pretrained checkpoint's biases;
* ``norm_mode="torch_buildin"``: bert4torch's default LayerNorm is hand-written (mean/pow/sqrt) and does not
  export as ONNX ``LayerNormalization``; the built-in one does (opset >= 17), which TensorRT needs to keep
  the normalisation in FP32 inside an FP16 engine.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from .config import CHECKPOINT_META_FILE, ArtifactPaths, ModelSize
from .data import Split, save_length_stats, save_split, split_mismatch
from .errors import CheckpointError, ConfigError
from .io import atomic_dir, atomic_write_json, read_json, sha256_file
from .tokenizer import VOCAB_FILE, SentenceTokenizer, changed_file_error, checkpoint_tokenizer, load_vocab, save_vocab

#: Files of a checkpoint folder.
WEIGHTS_FILE = "model.pt"
META_FILE = CHECKPOINT_META_FILE
#: Version of checkpoint.json's layout; 2 added the sha256 of model.pt and vocab.txt.
CHECKPOINT_FORMAT = 2

#: bert4torch keyword arguments fixed by this project (see the module docstring).
BERT4TORCH_FIXED = {"bias": True, "norm_mode": "torch_buildin", "with_pool": True}


def bert_config(model_size: ModelSize, vocab_size: int, max_position: int = 512) -> dict[str, Any]:
    """bert4torch configuration for ``model_size`` with a vocabulary of ``vocab_size`` tokens."""
    return {
        "vocab_size": int(vocab_size),
        "hidden_size": model_size.hidden_size,
        "num_hidden_layers": model_size.num_hidden_layers,
        "num_attention_heads": model_size.num_attention_heads,
        "intermediate_size": model_size.intermediate_size,
        "hidden_act": "gelu",
        "max_position": int(max_position),
        "dropout_rate": model_size.dropout,
        "attention_probs_dropout_prob": model_size.dropout,
        "segment_vocab_size": 2,
        "layer_norm_eps": 1e-12,
    }


def bert_config_from_hf(hf_config: Mapping[str, Any]) -> dict[str, Any]:
    """Translate a ``transformers`` BERT ``config.json`` into bert4torch keyword arguments."""
    try:
        return {
            "vocab_size": int(hf_config["vocab_size"]),
            "hidden_size": int(hf_config["hidden_size"]),
            "num_hidden_layers": int(hf_config["num_hidden_layers"]),
            "num_attention_heads": int(hf_config["num_attention_heads"]),
            "intermediate_size": int(hf_config["intermediate_size"]),
            "hidden_act": str(hf_config.get("hidden_act", "gelu")),
            "max_position": int(hf_config.get("max_position_embeddings", 512)),
            "dropout_rate": float(hf_config.get("hidden_dropout_prob", 0.1)),
            "attention_probs_dropout_prob": float(hf_config.get("attention_probs_dropout_prob", 0.1)),
            "segment_vocab_size": int(hf_config.get("type_vocab_size", 2)),
            "layer_norm_eps": float(hf_config.get("layer_norm_eps", 1e-12)),
        }
    except KeyError as exc:
        raise CheckpointError(f"pretrained config.json lacks {exc.args[0]!r}; is it a BERT config?") from None


class SentimentClassifier(nn.Module):
    """bert4torch BERT encoder + dropout + linear head on the pooled ``[CLS]`` vector; returns logits.

    ``forward(input_ids, segment_ids)`` accepts int32 or int64 ids and casts them to int64 inside, so the
    exported ONNX graph takes int32 inputs (see :data:`helpers.config.INPUT_DTYPE`).
    """

    def __init__(self, config: Mapping[str, Any], num_labels: int) -> None:
        super().__init__()
        from bert4torch.models import build_transformer_model

        if num_labels < 2:
            raise ConfigError(f"a classifier needs at least 2 labels, got {num_labels}.")
        self.config = dict(config)
        self.num_labels = int(num_labels)
        self.bert = build_transformer_model(
            config_path=None, checkpoint_path=None, **BERT4TORCH_FIXED, **self.config
        )
        self.dropout = nn.Dropout(float(self.config.get("dropout_rate", 0.1)))
        self.dense = nn.Linear(int(self.config["hidden_size"]), self.num_labels)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
        _, pooled = self.bert([input_ids.long(), segment_ids.long()])
        return self.dense(self.dropout(pooled))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------- checkpoint
def versions() -> dict[str, str]:
    """Versions of the packages a checkpoint depends on. bert4torch has no ``__version__``: its version comes
    from the installed distribution's metadata ("unknown" for a source tree on ``sys.path``)."""
    import numpy

    try:
        b4t = importlib.metadata.version("bert4torch")
    except importlib.metadata.PackageNotFoundError:
        b4t = "unknown"
    return {"python": platform.python_version(), "torch": torch.__version__, "bert4torch": b4t,
            "numpy": numpy.__version__}


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (in eval mode), its tokenizer and its metadata."""

    model: SentimentClassifier
    tokenizer: SentenceTokenizer
    meta: dict[str, Any]
    path: Path
    labels: list[str] = field(default_factory=list)

    @property
    def max_len(self) -> int:
        return int(self.meta["max_len"])


def _fingerprint(meta: Mapping[str, Any]) -> str:
    keys = ("model_size", "config", "labels", "max_len", "split_hash", "train_params")
    blob = json.dumps({k: meta.get(k) for k in keys}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def refuse_to_replace(path: str | os.PathLike[str], overwrite: bool) -> None:
    """Raise :class:`CheckpointError` when ``path`` already holds a trained model and ``overwrite`` is False.

    01 calls this in its first cell, before it writes anything, and again when it saves: a run that would be
    refused at the end is refused before it spends minutes training.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise CheckpointError(
            f"{path} already holds a trained model ({describe_checkpoint(path)}). Nothing was written. "
            "Set overwrite=True to replace it (the old model and its data split are kept as .previous-<time> "
            "folders), or choose another artifacts_dir."
        )


def _checkpoint_writer(model: SentimentClassifier, vocab: Sequence[str], labels: Sequence[str], max_len: int,
                       meta: Mapping[str, Any] | None) -> Callable[[Path], None]:
    """A function that writes the checkpoint's three files into an empty folder."""
    record = {
        "format": CHECKPOINT_FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": model.config,
        "num_labels": model.num_labels,
        "labels": list(labels),
        "max_len": int(max_len),
        "bert4torch_fixed": BERT4TORCH_FIXED,
        "versions": versions(),
        **dict(meta or {}),
    }
    record["fingerprint"] = _fingerprint(record)

    def write(folder: Path) -> None:
        torch.save(model.state_dict(), folder / WEIGHTS_FILE)
        save_vocab(vocab, folder / VOCAB_FILE)
        record["sha256"] = {name: sha256_file(folder / name) for name in (WEIGHTS_FILE, VOCAB_FILE)}
        atomic_write_json(folder / META_FILE, record)

    return write


def _replace_folders(writers: Mapping[Path, Callable[[Path], None]], keep_previous: bool) -> None:
    """Write every target folder completely under a temporary name, then move all of them into place.

    Nothing is moved until every folder is complete, so an error while writing leaves the existing folders
    byte for byte as they were. With ``keep_previous`` an existing target is kept as
    ``<name>.previous-<time>`` (one time stamp for all); otherwise it is removed.
    """
    ready: dict[Path, Path] = {}
    try:
        for target, write in writers.items():
            new = target.with_name(target.name + ".new")
            shutil.rmtree(new, ignore_errors=True)  # left over from an interrupted save
            with atomic_dir(new) as tmp:
                write(tmp)
            ready[target] = new
    except BaseException:
        for new in ready.values():
            shutil.rmtree(new, ignore_errors=True)
        raise
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for target, new in ready.items():
        if target.exists():
            if keep_previous:
                backup = target.with_name(f"{target.name}.previous-{stamp}")
                os.replace(target, backup)
                print(f"kept the previous {target.name} as {backup}")
            else:
                shutil.rmtree(target)
        os.replace(new, target)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: SentimentClassifier,
    vocab: Sequence[str],
    *,
    labels: Sequence[str],
    max_len: int,
    meta: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a self-describing checkpoint folder atomically.

    The folder holds ``model.pt`` (state dict), ``vocab.txt`` and ``checkpoint.json`` (config, labels,
    max_len, metrics, split hash, versions, the sha256 of the other two files, ...). An existing checkpoint is
    never replaced silently: with ``overwrite=False`` this raises :class:`CheckpointError`; with
    ``overwrite=True`` the old folder is kept beside the new one as ``<name>.previous-<timestamp>``.
    01 saves through :func:`save_trained_model`, which writes the data split in the same step.
    """
    path = Path(path)
    refuse_to_replace(path, overwrite)
    _replace_folders({path: _checkpoint_writer(model, vocab, labels, max_len, meta)}, keep_previous=True)
    return path


def save_trained_model(
    paths: ArtifactPaths,
    model: SentimentClassifier,
    vocab: Sequence[str],
    *,
    split: Split,
    length_stats: Mapping[str, Any],
    max_len: int,
    meta: Mapping[str, Any] | None = None,
    split_extra: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Keep what 01 made: ``data/`` (the split and its token-length statistics) and ``checkpoint/``, together.

    Both folders are written completely under temporary names before either replaces anything, so a run that
    fails or is refused leaves the model already kept - checkpoint and data alike - byte for byte as it was.
    The checkpoint records ``split``'s hash, which every reader of ``data/`` and ``checkpoint/`` compares
    (see :func:`helpers.data.split_mismatch`).
    """
    refuse_to_replace(paths.checkpoint, overwrite)
    meta = {**dict(meta or {}), "split_hash": split.hash, "data_source": split.source}

    def write_data(folder: Path) -> None:
        save_split(split, folder, extra=dict(split_extra or {}))
        save_length_stats(dict(length_stats), folder, split.hash)

    had_model = paths.checkpoint.exists()
    _replace_folders({paths.data: write_data,
                      paths.checkpoint: _checkpoint_writer(model, vocab, split.labels, max_len, meta)},
                     keep_previous=had_model)
    return paths.checkpoint


def describe_checkpoint(path: str | os.PathLike[str]) -> str:
    """One line about a checkpoint folder (model size, date, test accuracy) for messages."""
    try:
        meta = read_json(Path(path) / META_FILE)
    except Exception:
        return "unreadable metadata"
    acc = (meta.get("metrics") or {}).get("test_accuracy")
    acc_s = f", test accuracy {acc:.4f}" if isinstance(acc, (int, float)) else ""
    return f"model size {meta.get('model_size')}, created {meta.get('created')}{acc_s}"


def _verify_files(path: Path, meta: Mapping[str, Any]) -> None:
    """checkpoint.json must record the sha256 of model.pt and vocab.txt, and model.pt must match it (vocab.txt
    is checked where it is read: :func:`helpers.tokenizer.checkpoint_tokenizer`)."""
    recorded = meta.get("sha256")
    if not isinstance(recorded, Mapping):
        raise CheckpointError(
            f"checkpoint {path} records no sha256 of its files (format {meta.get('format')}, older than "
            f"{CHECKPOINT_FORMAT}), so a changed model.pt or vocab.txt could not be detected; re-run 01_train."
        )
    if sha256_file(path / WEIGHTS_FILE) != recorded.get(WEIGHTS_FILE):
        raise changed_file_error(path / WEIGHTS_FILE)


def load_checkpoint(path: str | os.PathLike[str], device: str = "cpu") -> Checkpoint:
    """Load a checkpoint folder written by :func:`save_checkpoint`; clear errors for anything wrong.

    Checks, in order: the files are there, ``checkpoint.json`` reads, ``model.pt`` and ``vocab.txt`` have the
    sha256 it records, the checkpoint was trained on the split in the ``data/`` folder beside it (when it sits
    in an artifacts folder), and the weights fit the config.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(
            f"no checkpoint folder at {path}; run notebook 01_train first (or point artifacts_dir at one)."
        )
    for name in (META_FILE, WEIGHTS_FILE, VOCAB_FILE):
        if not (path / name).is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {name} is missing; re-run 01_train.")
    try:
        meta = read_json(path / META_FILE)
        config, num_labels = meta["config"], int(meta["num_labels"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint metadata {path / META_FILE} is unreadable ({exc}); re-run 01_train.") from None
    _verify_files(path, meta)
    tokenizer = checkpoint_tokenizer(path)
    root = path.resolve().parent
    if ArtifactPaths(root).checkpoint == path.resolve():
        problem = split_mismatch(root)
        if problem:
            raise CheckpointError(problem)
    try:
        state = torch.load(path / WEIGHTS_FILE, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise CheckpointError(
            f"checkpoint weights {path / WEIGHTS_FILE} cannot be read ({type(exc).__name__}); the file is "
            "corrupt or not a PyTorch state dict. Re-run 01_train."
        ) from None
    model = SentimentClassifier(config, num_labels)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"checkpoint weights {path / WEIGHTS_FILE} do not fit the config in {META_FILE} ({first}); "
            "the folder mixes two runs. Re-run 01_train."
        ) from None
    model.to(device).eval()
    if tokenizer.vocab_size != int(config["vocab_size"]):
        raise CheckpointError(
            f"vocab.txt has {tokenizer.vocab_size} tokens but the model expects {config['vocab_size']}; re-run 01_train."
        )
    return Checkpoint(model, tokenizer, meta, path, list(meta.get("labels", [])))


# ---------------------------------------------------------------------------------------------- pretrained
def _read_state_dict(weights: Path) -> dict[str, torch.Tensor]:
    try:
        if weights.suffix == ".safetensors":
            try:
                from safetensors.torch import load_file
            except ImportError:
                raise CheckpointError(f"{weights} is a safetensors file; run `pip install safetensors` to read it.") from None
            return load_file(str(weights))
        return torch.load(weights, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"cannot read pretrained weights {weights} ({type(exc).__name__}: {exc}).") from None


def bert_state_from_transformers(model: SentimentClassifier, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a ``transformers`` BERT state dict (``BertModel`` or ``BertForPreTraining`` names, old
    ``gamma``/``beta`` LayerNorm names too) onto ``model.bert``'s parameter names; every encoder parameter
    must be found, so a mismatch fails loudly instead of leaving random weights in place."""
    norm = {}
    for key, value in state.items():
        key = key.replace(".gamma", ".weight").replace(".beta", ".bias")
        norm[key if key.startswith(("bert.", "cls.")) else f"bert.{key}"] = value
    mapping = model.bert.variable_mapping()
    out, missing = {}, []
    for name in model.bert.state_dict():
        src = mapping.get(name)
        if src in norm:
            out[name] = norm[src]
        else:
            missing.append(src or name)
    if missing:
        raise CheckpointError(
            f"the pretrained weights lack {len(missing)} BERT parameters (e.g. {missing[:3]}); "
            "is this a BERT checkpoint with the same number of layers as its config.json?"
        )
    return out


def load_pretrained(pretrained_dir: str | os.PathLike[str], num_labels: int) -> tuple[SentimentClassifier, list[str]]:
    """Build a classifier on a pretrained Chinese BERT folder (``config.json``, weights, ``vocab.txt``).

    Weights may be ``pytorch_model.bin`` or ``model.safetensors`` as written by ``transformers``. Returns the
    model (encoder loaded, classification head new) and the checkpoint's vocabulary.
    """
    d = Path(pretrained_dir)
    if not d.is_dir():
        raise CheckpointError(f"pretrained_dir {d} does not exist; give a folder with config.json, weights and vocab.txt.")
    cfg_file = d / "config.json"
    weights = next((d / n for n in ("model.safetensors", "pytorch_model.bin") if (d / n).is_file()), None)
    if not cfg_file.is_file() or weights is None or not (d / VOCAB_FILE).is_file():
        raise CheckpointError(
            f"pretrained_dir {d} must hold config.json, model.safetensors (or pytorch_model.bin) and vocab.txt; "
            f"found {sorted(p.name for p in d.iterdir())}."
        )
    model = SentimentClassifier(bert_config_from_hf(read_json(cfg_file)), num_labels)
    model.bert.load_state_dict(bert_state_from_transformers(model, _read_state_dict(weights)), strict=True)
    vocab = load_vocab(d / VOCAB_FILE)
    if len(vocab) != model.config["vocab_size"]:
        raise CheckpointError(f"{d / VOCAB_FILE} has {len(vocab)} tokens but config.json says vocab_size={model.config['vocab_size']}.")
    return model, vocab
