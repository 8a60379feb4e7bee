"""Text -> token ids, with bert4torch's BERT tokenizer and a vocabulary built from the corpus.

Documented behaviour for awkward text:

* empty or whitespace-only text raises :class:`~helpers.errors.InputError` naming its position;
* text longer than ``max_len - 2`` tokens is truncated (``[CLS]`` and ``[SEP]`` take two places) and
  :meth:`SentenceTokenizer.encode_batch` counts how many texts were cut;
* characters outside the vocabulary (emoji, rare symbols, scripts the corpus never showed) become
  ``[UNK]``; Latin letters and digits are split into single characters (``good`` -> ``g ##o ##o ##d``);
* the texts of a batch come as a list (a tuple, a 1-D numpy array or a pandas Series of str work too).
  Anything else raises :class:`~helpers.errors.InputError` naming what came and what to pass instead
  (:func:`check_text_list`). One bare ``str`` is refused rather than taken as one text: a variable that
  should hold a list but holds a string (a file read whole instead of line by line, a loop variable) would
  otherwise be classified silently as one long, truncated text.
"""

from __future__ import annotations

import os
import string
from collections import Counter
from collections.abc import Iterator, Mapping, Set, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .config import INPUT_DTYPE
from .errors import InputError
from .io import atomic_write_text

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_ALNUM = string.ascii_lowercase + string.digits


def build_vocab(texts: Iterable[str], min_count: int = 1) -> list[str]:
    """Vocabulary for a model pretrained or trained here: BERT's special tokens, the characters of ``texts``
    seen at least ``min_count`` times (most frequent first; rarer ones become ``[UNK]``) and ``##`` pieces
    for ASCII letters and digits."""
    counts = Counter(ch for text in texts for ch in text.lower() if not ch.isspace())
    chars = [ch for ch, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_count]
    vocab = list(SPECIAL_TOKENS)
    seen = set(vocab)
    for tok in [*_ALNUM, *chars, *("##" + c for c in _ALNUM)]:
        if tok not in seen:
            vocab.append(tok)
            seen.add(tok)
    return vocab


def save_vocab(vocab: Sequence[str], path: str | os.PathLike[str]) -> Path:
    """Write ``vocab.txt`` (one token per line, id = line number) atomically."""
    return atomic_write_text(path, "\n".join(vocab) + "\n")


def load_vocab(path: str | os.PathLike[str]) -> list[str]:
    """Read a BERT ``vocab.txt``."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.rstrip("\r") for line in lines if line.strip() != ""]


def check_text_list(texts: Any, step: str = "tokenizer") -> Sequence[str]:
    """Return ``texts`` if it is an ordered, sized collection of texts; raise :class:`InputError` otherwise.

    Only the container is checked here (cheap); each item is checked where it is encoded. ``step`` names
    the caller in the message (e.g. ``Classifier.predict``).
    """
    what = type(texts).__name__
    hint = None
    if texts is None:
        hint = "got None"
    elif isinstance(texts, str):
        hint = (f"got one str ({texts[:20]!r}{'...' if len(texts) > 20 else ''}); wrap it as [text] "
                "(text read from a file: split it into lines first)")
    elif isinstance(texts, (bytes, bytearray, memoryview)):
        hint = f"got {what}; decode it first and wrap it as [data.decode('utf-8')]"
    elif isinstance(texts, Mapping):
        hint = f"got a {what}, whose keys would be taken for the texts; pass list(d.values()) or list(d)"
    elif isinstance(texts, Set):
        hint = f"got a {what}, which has no order for the results to follow; pass a list (e.g. sorted(s))"
    elif isinstance(texts, Iterator):
        hint = f"got a {what} (an iterator, read once and without a length); pass list(...) of it"
    elif not isinstance(texts, Sized) or not isinstance(texts, Iterable):
        hint = f"got a {what}"
    elif getattr(texts, "ndim", 1) != 1:
        hint = f"got a {what} of {texts.ndim} dimensions; pass a flat list of strings"  # type: ignore[attr-defined]
    if hint is not None:
        raise InputError(f"{step}: expected a list of texts (str), {hint}.")
    return texts  # type: ignore[return-value]


@dataclass
class EncodedBatch:
    """Padded int32 arrays for one batch plus how many texts were truncated."""

    input_ids: np.ndarray
    segment_ids: np.ndarray
    lengths: np.ndarray
    truncated: int


class SentenceTokenizer:
    """bert4torch's ``Tokenizer`` with a fixed ``max_len`` and input checks.

    ``max_len`` counts every token including ``[CLS]`` and ``[SEP]``.
    """

    def __init__(self, vocab: Sequence[str], max_len: int, do_lower_case: bool = True) -> None:
        from bert4torch.tokenizers import Tokenizer

        if max_len < 3:
            raise InputError(f"max_len must be at least 3 ([CLS], one token, [SEP]); got {max_len}.")
        missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]") if t not in vocab]
        if missing:
            raise InputError(f"vocabulary lacks the special tokens {missing}; is this a BERT vocab.txt?")
        self.vocab = list(vocab)
        self.max_len = int(max_len)
        self.pad_id = self.vocab.index("[PAD]")
        self.unk_id = self.vocab.index("[UNK]")
        self._tok = Tokenizer({tok: i for i, tok in enumerate(self.vocab)}, do_lower_case=do_lower_case)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], max_len: int) -> "SentenceTokenizer":
        return cls(load_vocab(path), max_len)

    def token_ids(self, text: str) -> list[int]:
        """Ids of every token of ``text``, without ``[CLS]``/``[SEP]`` and never truncated (pretraining packs
        these into sequences of its own length)."""
        return self._tok.tokens_to_ids(self._tok.tokenize(text)[1:-1])

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def token_count(self, text: str) -> int:
        """Tokens in ``text`` with ``[CLS]``/``[SEP]`` and without truncation (for length statistics)."""
        if not isinstance(text, str):
            raise InputError(f"token_count: expected one text (str), got {type(text).__name__}.")
        return len(self._tok.tokenize(text))

    def encode(self, text: str, index: int = 0) -> tuple[list[int], bool]:
        """Token ids of one text (cut to ``max_len``, keeping the start) and whether it was cut."""
        if not isinstance(text, str):
            fix = "decode it first (.decode('utf-8'))" if isinstance(text, (bytes, bytearray)) else "pass a list of strings"
            raise InputError(f"text #{index} is a {type(text).__name__}, not a str; {fix}.")
        if not text.strip():
            raise InputError(f"text #{index} is empty or whitespace only; remove it or give it some content.")
        tokens = self._tok.tokenize(text)  # [CLS] ... [SEP], tokenized once
        cut = len(tokens) > self.max_len
        if cut:
            tokens = tokens[: self.max_len - 1] + tokens[-1:]
        return self._tok.tokens_to_ids(tokens), cut

    def encode_many(self, texts: Sequence[str], step: str = "tokenizer") -> tuple[list[list[int]], int]:
        """Token ids of every text (unpadded) and how many texts were truncated.

        ``texts`` must pass :func:`check_text_list`; ``step`` names the caller in error messages."""
        check_text_list(texts, step)
        if len(texts) == 0:
            raise InputError(f"{step}: the list of texts is empty; give at least one sentence.")
        rows, truncated = [], 0
        for i, text in enumerate(texts):
            ids, cut = self.encode(text, i)
            rows.append(ids)
            truncated += int(cut)
        return rows, truncated

    def pad(self, rows: Sequence[Sequence[int]], pad_to: int | None = None, truncated: int = 0) -> EncodedBatch:
        """Right-pad encoded rows to the longest (or ``pad_to``); segment ids are all 0."""
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        width = int(lengths.max()) if pad_to is None else int(pad_to)
        if width < lengths.max():
            raise InputError(f"pad_to={pad_to} is shorter than the longest encoded text ({lengths.max()} tokens).")
        ids = np.full((len(rows), width), self.pad_id, dtype=INPUT_DTYPE)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
        return EncodedBatch(ids, np.zeros_like(ids), lengths, truncated)

    def encode_batch(self, texts: Sequence[str], pad_to: int | None = None, step: str = "tokenizer") -> EncodedBatch:
        """Encode and right-pad ``texts`` to the longest row (or ``pad_to``); segment ids are all 0."""
        rows, truncated = self.encode_many(texts, step)
        return self.pad(rows, pad_to, truncated)
