"""Text -> token ids: BERT's WordPiece tokenizer, run by Hugging Face ``tokenizers`` (Rust).

One class, :class:`SentenceTokenizer`, serves training and every inference path (the Classifier, the served
model, 05, 06, the bulk command). It is the pipeline of ``tokenizers``' ``BertWordPieceTokenizer``
(``BertNormalizer`` with lower casing, ``BertPreTokenizer``, ``WordPiece``, ``[CLS] ... [SEP]``), built here
from its parts so that whole batches are encoded in Rust, on every core, without the Python GIL.
bert4torch's ``Tokenizer(vocab, do_lower_case=True)`` is the reference: ``tests/test_tokenizer.py`` asserts
the same ids, lengths and truncation counts on the whole corpus and on awkward texts.

Inference reads a kept vocabulary only through :func:`load_tokenizer` or :func:`checkpoint_tokenizer`, which
refuse a ``vocab.txt`` whose sha256 is not the one recorded when it was saved (:func:`checked_vocab`).

The rules, as they are (bert4torch's and BERT's):

* text is lower-cased and accents are removed (``É`` -> ``e``);
* control and format characters (``\\x00``, zero-width space, U+FFFD, ...) are dropped; every other
  whitespace separates words;
* every CJK ideograph is a word of its own, and so is every punctuation mark (ASCII non-alphanumerics and
  Unicode punctuation);
* any other run of characters - Latin letters, digits, emoji, kana, Hangul, symbols - is one word, split
  into the vocabulary's longest pieces (``good`` -> ``g ##o ##o ##d`` with this project's character
  vocabulary). A word of more than 100 characters, or a word with one character the vocabulary lacks,
  becomes ONE ``[UNK]`` and its letters are lost: ``好的good👍`` -> ``好 的 [UNK]`` (a space before the emoji
  keeps ``good``); ``a`` x 101 -> ``[UNK]``;
* ``[CLS]`` and ``[SEP]`` enclose every text; ``max_len`` counts them; a longer text is cut keeping its
  start, and :meth:`SentenceTokenizer.encode_batch` counts how many texts were cut;
* the special tokens written in a text (``[MASK]``, ``[SEP]``, upper case exactly) stay special tokens;
* a text with no token left - empty, whitespace only, or only characters that are dropped (``"\\x00"``,
  ``"\\u200b"``) - raises :class:`~helpers.errors.InputError` naming its position;
* the texts of a batch come as a list (a tuple, a 1-D numpy array or a pandas Series of str work too).
  Anything else raises :class:`~helpers.errors.InputError` naming what came and what to pass instead
  (:func:`check_text_list`). One bare ``str`` is refused rather than taken as one text: a variable that
  should hold a list but holds a string (a file read whole instead of line by line, a loop variable) would
  otherwise be classified silently as one long, truncated text.

Where it differs from bert4torch (no sentence of the corpus is affected):

* bert4torch takes a whole text (or a piece between special tokens) that is itself an entry of the
  vocabulary as one token before applying BERT's rules, so the text ``##a`` is the piece ``##a`` there and
  ``# # a`` here;
* the two read character classes from different Unicode tables. Compared on every code point (each inside a
  word and beside a CJK character), they differ only on code points that Python's Unicode database leaves
  unassigned (bert4torch drops them, here they are unknown characters) and on 759 rare characters: the CJK
  extension E ideographs U+2B820-U+2B91F and about 500 marks, punctuation and format characters of historic
  and minority scripts added in recent Unicode versions.
"""

from __future__ import annotations

import hashlib
import os
import string
from collections import Counter
from collections.abc import Iterator, Mapping, Set, Sized
from dataclasses import dataclass
from itertools import chain, repeat
from operator import attrgetter
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .config import CHECKPOINT_META_FILE, INPUT_DTYPE
from .errors import CheckpointError, InputError
from .io import atomic_write_text, read_json

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
#: The vocabulary's file name in a checkpoint folder (and wherever a copy of it is kept).
VOCAB_FILE = "vocab.txt"
#: WordPiece's longest word; a longer one becomes one [UNK] (bert4torch and BERT use 100).
MAX_WORD_CHARS = 100
_ALNUM = string.ascii_lowercase + string.digits
_IDS = attrgetter("ids")


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


def parse_vocab(text: str) -> list[str]:
    """The tokens of a BERT ``vocab.txt``'s text (one per line; blank lines skipped)."""
    return [line.rstrip("\r") for line in text.splitlines() if line.strip() != ""]


def load_vocab(path: str | os.PathLike[str]) -> list[str]:
    """Read a BERT ``vocab.txt`` that no hash describes (a pretrained model's folder being imported).

    A vocabulary this project kept (a checkpoint's, a served model's copy) is read with :func:`checked_vocab`.
    """
    return parse_vocab(Path(path).read_text(encoding="utf-8"))


def changed_file_error(path: str | os.PathLike[str]) -> CheckpointError:
    """The error every reader of a checkpoint's file raises when the file is not the one saved (its sha256
    differs from the one ``checkpoint.json`` records): :func:`checked_vocab` for ``vocab.txt``,
    :func:`helpers.model.load_checkpoint` for the weights."""
    return CheckpointError(
        f"{path} is not the file this checkpoint was saved with (its sha256 differs from "
        f"{CHECKPOINT_META_FILE}'s); it was edited or copied from another run. Re-run 01_train."
    )


def checked_vocab(path: str | os.PathLike[str], sha256: str | None) -> list[str]:
    """The vocabulary at ``path``, read once and refused unless its bytes have the ``sha256`` recorded when it
    was saved: the one check every reader of a kept vocabulary goes through.

    A shuffled ``vocab.txt`` has the same size and tokens but gives every token another id; the model would
    run on and answer wrongly (05 reported accuracy 0.53 instead of 0.84). The bytes that are hashed are the
    bytes that are parsed, so the file cannot change in between.
    """
    path = Path(path)
    if not sha256:
        raise CheckpointError(
            f"no sha256 is recorded for {path}, so a changed vocabulary could not be detected; read it with the "
            f"hash its {CHECKPOINT_META_FILE} records (checkpoint_tokenizer does), or re-run 01_train."
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"the vocabulary {path} cannot be read ({exc.strerror or exc}); re-run 01_train.") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise changed_file_error(path)
    return parse_vocab(data.decode("utf-8"))


def check_text_list(texts: Any, step: str = "tokenizer") -> Sequence[str]:
    """Return ``texts`` if it is an ordered, sized collection of texts; raise :class:`InputError` otherwise.

    Only the container is checked here (cheap); :meth:`SentenceTokenizer.checked_texts` checks the items. ``step``
    names the caller in the message (e.g. ``Classifier.predict``).
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


class EmptyTextError(InputError):
    """A text with no token left after cleaning (empty, whitespace, control or zero-width characters only);
    ``position`` is its index in the caller's list, for callers that name it their own way (a file's line)."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


@dataclass
class EncodedBatch:
    """Padded int32 arrays for one batch plus how many texts were truncated."""

    input_ids: np.ndarray
    segment_ids: np.ndarray
    lengths: np.ndarray
    truncated: int


class SentenceTokenizer:
    """BERT WordPiece tokenizer over ``vocab`` with a fixed ``max_len`` and input checks (module docstring).

    ``max_len`` counts every token including ``[CLS]`` and ``[SEP]``. Batches are encoded by the Rust
    tokenizer in one call and padded with numpy, with no Python loop per text. Inference creates it with
    :func:`load_tokenizer` or :func:`checkpoint_tokenizer`, which check the vocabulary file first.
    """

    def __init__(self, vocab: Sequence[str], max_len: int) -> None:
        from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
        from tokenizers.models import WordPiece

        if max_len < 3:
            raise InputError(f"max_len must be at least 3 ([CLS], one token, [SEP]); got {max_len}.")
        missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]") if t not in vocab]
        if missing:
            raise InputError(f"vocabulary lacks the special tokens {missing}; is this a BERT vocab.txt?")
        self.vocab = list(vocab)
        self.max_len = int(max_len)
        ids = {tok: i for i, tok in enumerate(self.vocab)}  # a repeated token keeps its last id, as in bert4torch
        self.pad_id, self.unk_id = ids["[PAD]"], ids["[UNK]"]
        self.cls_id, self.sep_id = ids["[CLS]"], ids["[SEP]"]

        def pipeline() -> Any:  # tokenizers' BertWordPieceTokenizer, part by part
            tok = Tokenizer(WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=MAX_WORD_CHARS))
            tok.add_special_tokens([t for t in SPECIAL_TOKENS if t in ids])
            tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                        strip_accents=None, lowercase=True)
            tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
            tok.post_processor = processors.BertProcessing(("[SEP]", self.sep_id), ("[CLS]", self.cls_id))
            return tok

        # One token more than max_len: a row that reaches it was longer than max_len (see _encode).
        self._rust = pipeline()
        self._rust.enable_truncation(self.max_len + 1)
        self._whole = pipeline()  # never truncated: token_count, token_ids

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def token_ids(self, text: str) -> list[int]:
        """Ids of every token of ``text``, without ``[CLS]``/``[SEP]`` and never truncated (pretraining packs
        these into sequences of its own length)."""
        if not isinstance(text, str):
            raise InputError(f"token_ids: expected one text (str), got {type(text).__name__}.")
        return self._whole.encode(text, add_special_tokens=False).ids

    def token_count(self, text: str) -> int:
        """Tokens in ``text`` with ``[CLS]``/``[SEP]`` and without truncation (for length statistics)."""
        if not isinstance(text, str):
            raise InputError(f"token_count: expected one text (str), got {type(text).__name__}.")
        return len(self._whole.encode(text).ids)

    def checked_texts(self, texts: Any, step: str = "tokenizer") -> list[str]:
        """``texts`` as a list of str after every check that needs no tokenizing: the container
        (:func:`check_text_list`), at least one text, and every item a ``str``."""
        check_text_list(texts, step)
        if len(texts) == 0:
            raise InputError(f"{step}: the list of texts is empty; give at least one sentence.")
        items = texts if type(texts) is list else list(texts)
        if not all(map(isinstance, items, repeat(str))):
            index, bad = next((i, t) for i, t in enumerate(items) if not isinstance(t, str))
            fix = "decode it first (.decode('utf-8'))" if isinstance(bad, (bytes, bytearray)) else "pass a list of strings"
            raise InputError(f"text #{index} is a {type(bad).__name__}, not a str; {fix}.")
        return items

    def _encode(self, texts: list[str], positions: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, int]:
        """Token ids of checked ``texts``, all rows end to end (int32), each row's length, and how many were cut.

        The Rust tokenizer truncates at ``max_len + 1`` tokens, so a row of that length is exactly a text
        longer than ``max_len``: its last kept token is dropped to end it at ``max_len`` with ``[SEP]``, as
        bert4torch cuts (``tokens[:max_len - 1] + [SEP]``). ``positions`` names the texts in messages
        (default: their index in ``texts``).
        """
        rows = list(map(_IDS, self._rust.encode_batch_fast(texts)))
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        flat = np.fromiter(chain.from_iterable(rows), dtype=INPUT_DTYPE, count=int(lengths.sum()))
        cut = lengths > self.max_len
        truncated = int(cut.sum())
        if truncated:
            flat = np.delete(flat, np.cumsum(lengths)[cut] - 2)
            lengths[cut] = self.max_len
        empty = np.flatnonzero(lengths <= 2)
        if empty.size:
            i = int(empty[0])
            where = i if positions is None else int(positions[i])
            raise EmptyTextError(
                f"text #{where} is empty or has no token left ({texts[i][:20]!r}): whitespace, control and "
                "zero-width characters are dropped; remove it or give it some content.", where
            )
        return flat, lengths, truncated

    def _padded(self, flat: np.ndarray, lengths: np.ndarray, pad_to: int | None, truncated: int) -> EncodedBatch:
        width = int(lengths.max()) if pad_to is None else int(pad_to)
        if width < lengths.max():
            raise InputError(f"pad_to={pad_to} is shorter than the longest encoded text ({lengths.max()} tokens).")
        ids = np.full((len(lengths), width), self.pad_id, dtype=INPUT_DTYPE)
        ids[np.arange(width) < lengths[:, None]] = flat  # row-major: each row's tokens, then its padding
        return EncodedBatch(ids, np.zeros_like(ids), lengths, truncated)

    def encode_batch(self, texts: Sequence[str], pad_to: int | None = None, step: str = "tokenizer",
                     positions: np.ndarray | None = None) -> EncodedBatch:
        """Encode and right-pad ``texts`` to the longest row (or ``pad_to``); segment ids are all 0.

        ``positions`` (optional) are the texts' places in the caller's list, for error messages.
        """
        items = self.checked_texts(texts, step)
        flat, lengths, truncated = self._encode(items, positions)
        return self._padded(flat, lengths, pad_to, truncated)

    def encode_many(self, texts: Sequence[str], step: str = "tokenizer") -> tuple[list[list[int]], int]:
        """Token ids of every text (unpadded rows) and how many texts were truncated (training batches
        pad them with :meth:`pad`)."""
        flat, lengths, truncated = self._encode(self.checked_texts(texts, step), None)
        return [row.tolist() for row in np.split(flat, np.cumsum(lengths)[:-1])], truncated

    def pad(self, rows: Sequence[Sequence[int]], pad_to: int | None = None, truncated: int = 0) -> EncodedBatch:
        """Right-pad encoded rows to the longest (or ``pad_to``); segment ids are all 0."""
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        flat = np.fromiter(chain.from_iterable(rows), dtype=INPUT_DTYPE, count=int(lengths.sum()))
        return self._padded(flat, lengths, pad_to, truncated)

    def __repr__(self) -> str:
        return f"SentenceTokenizer({self.vocab_size} tokens, max_len={self.max_len})"


def load_tokenizer(vocab_path: str | os.PathLike[str], max_len: int, sha256: str | None) -> SentenceTokenizer:
    """The tokenizer of a kept ``vocab.txt``, after :func:`checked_vocab` has compared its sha256 with
    ``sha256`` (the hash recorded when it was saved)."""
    return SentenceTokenizer(checked_vocab(vocab_path, sha256), max_len)


def checkpoint_tokenizer(checkpoint_dir: str | os.PathLike[str]) -> SentenceTokenizer:
    """The tokenizer of a checkpoint folder (01's ``checkpoint/``): its ``vocab.txt`` checked against the
    sha256 that ``checkpoint.json`` records, with the ``max_len`` the model was trained with."""
    folder = Path(checkpoint_dir)
    meta_path = folder / CHECKPOINT_META_FILE
    if not meta_path.is_file():
        raise CheckpointError(f"no checkpoint at {folder} ({CHECKPOINT_META_FILE} is missing); run notebook "
                              "01_train first (or point artifacts_dir at its output).")
    try:
        meta = read_json(meta_path)
        max_len = int(meta["max_len"])
        recorded = meta.get("sha256") or {}
        sha256 = recorded.get(VOCAB_FILE) if isinstance(recorded, Mapping) else None
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint metadata {meta_path} is unreadable ({exc}); re-run 01_train.") from None
    return load_tokenizer(folder / VOCAB_FILE, max_len, sha256)
