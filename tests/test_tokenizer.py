"""The tokenizer: the Rust tokenizer against bert4torch's (the reference), its rules, its checks of the
vocabulary file and of the texts."""

from __future__ import annotations

import hashlib
import json
import random
import re

import numpy as np
import pytest

from helpers.data import load_corpus
from helpers.errors import CheckpointError, InputError
from helpers.pretrain import pretraining_corpus
from helpers.tokenizer import (SPECIAL_TOKENS, VOCAB_FILE, SentenceTokenizer, build_vocab, checked_vocab,
                               checkpoint_tokenizer, load_tokenizer, load_vocab, save_vocab)

#: Texts that are not ordinary sentences. Each one's reference encoding is compared; the ones bert4torch
#: leaves without a token are refused here (see test_awkward_texts_match_the_reference).
AWKWARD = [
    "\x00", "\u200b", "   ", "", "\t\n\r", "\x00\u200b\ufeff \x07", "\ufffd", "\ue000\U000e0001",  # nothing left
    "好的good👍", "good 👍", "😀 hello ☃", "👍👍👍", "🇨🇳中国",                           # emoji
    "好\x07的\x1b[0m很\x00好", "\t\n好\r", "好\u200b的", "\u00a0好\u2028差\u3000!",       # control and odd spaces
    "a" * 100, "a" * 101, "Pneumonoultramicroscopicsilicovolcanoconiosis" * 3,           # long Latin words
    "supercalifragilistic" * 5 + " 好", "x" * 99 + "好" + "y" * 150,
    "日本語のテキスト한국어 Русский текст العربية हिन्दी ไทย",                               # mixed scripts
    "İstanbul Ærøskøbing ß ΣΑΣ",
    "Ｆｕｌｌｗｉｄｔｈ１２３！", "x\u0301y café naïve", "①②③ ½ ² Ⅻ", "ǅ ﬁ ﬀ",
    "好,good.行!?（括号）【】《》“引号”…—", "a.b,c;d:e'f\"g(h)i[j]k{l}m<n>o~p`q^r$s@t#u%v&w*x+y=z|\\/_-",
    "[MASK]很好", "好[SEP]差", "[cls]", "[UNK]", "1234567890 3.14 -2e10 0x1f",
    "好" * 5000, ("这家酒店的服务很好，good! " * 250)[:5000],                             # 5,000 characters
]


@pytest.fixture(scope="module")
def split():
    return load_corpus(None, seed=42)[0]


@pytest.fixture(scope="module")
def vocabularies(split):
    """The two vocabularies 01 builds: the training split's characters (a model trained from scratch) and
    the pretraining corpus's characters seen twice (01's own pretraining)."""
    return {"scratch": build_vocab(split.train.texts),
            "pretraining": build_vocab(pretraining_corpus(split).texts, min_count=2)}


def reference(vocab, texts, max_len):
    """bert4torch's encoding of ``texts``: ids (cut to ``max_len`` with its own truncate_sequences) and
    whether each was cut."""
    from bert4torch.snippets import truncate_sequences
    from bert4torch.tokenizers import Tokenizer

    tok = Tokenizer({t: i for i, t in enumerate(vocab)}, do_lower_case=True)
    rows, cut = [], []
    for text in texts:
        tokens = tok.tokenize(text)
        cut.append(len(tokens) > max_len)
        truncate_sequences([tokens], max_len, -2)  # bert4torch's encode(maxlen=...): drop from the end, keep [SEP]
        rows.append(tok.tokens_to_ids(tokens))
    return rows, cut


def rows_of(enc):
    return [row[:n].tolist() for row, n in zip(enc.input_ids, enc.lengths)]


# ------------------------------------------------------------------------------------------ same as bert4torch
@pytest.mark.parametrize("which, max_len", [("scratch", 64), ("pretraining", 128)])
def test_same_ids_as_bert4torch_on_the_whole_corpus(split, vocabularies, which, max_len):
    vocab = vocabularies[which]
    texts = split.train.texts + split.valid.texts + split.test.texts
    expected, cut = reference(vocab, texts, max_len)
    enc = SentenceTokenizer(vocab, max_len).encode_batch(texts)
    assert len(texts) == 17_361 and enc.input_ids.shape == (len(texts), max(map(len, expected)))
    assert enc.lengths.tolist() == [len(r) for r in expected]
    assert enc.truncated == sum(cut) > 0
    assert rows_of(enc) == expected
    assert (enc.input_ids[np.arange(enc.input_ids.shape[1]) >= enc.lengths[:, None]] == 0).all()  # [PAD] = 0


def test_awkward_texts_match_the_reference(vocabularies):
    vocab, max_len = vocabularies["scratch"], 64
    tok = SentenceTokenizer(vocab, max_len)
    expected, cut = reference(vocab, AWKWARD, max_len)
    kept = [i for i, row in enumerate(expected) if len(row) > 2]
    refused = [AWKWARD[i] for i, row in enumerate(expected) if len(row) == 2]
    assert refused == AWKWARD[:8]  # exactly the texts with nothing left after cleaning
    enc = tok.encode_batch([AWKWARD[i] for i in kept])
    assert rows_of(enc) == [expected[i] for i in kept]
    assert enc.truncated == sum(cut) and all(cut[i] for i, t in enumerate(AWKWARD) if len(t) == 5000)
    for i, text in enumerate(refused):  # refused, where bert4torch would have encoded [CLS] [SEP]
        with pytest.raises(InputError, match=re.escape(f"text #1 is empty or has no token left ({text[:20]!r})")):
            tok.encode_batch(["好", text])


def test_rules_the_docstring_states(vocabularies):
    vocab = vocabularies["scratch"]
    tok = SentenceTokenizer(vocab, 64)
    unk, ids = tok.unk_id, {t: i for i, t in enumerate(vocab)}

    def tokens(text):
        return tok.token_ids(text)

    assert tokens("好的good👍") == [ids["好"], ids["的"], unk]  # one unknown character: the whole word is [UNK]
    assert tokens("好的good 👍") == [ids["好"], ids["的"], ids["g"], ids["##o"], ids["##o"], ids["##d"], unk]
    assert tokens("a" * 101) == [unk] and len(tokens("a" * 100)) == 100  # more than 100 letters: one [UNK]
    assert tokens("GOOD") == tokens("good") and tokens("É") == tokens("e")  # lower case, no accents
    assert tokens("好\x00\u200b的") == [ids["好"], ids["的"]]  # control and zero-width characters dropped
    assert tokens("[MASK]") == [ids["[MASK]"]]  # a special token written in the text stays one
    assert tokens("##a") == [ids["#"], ids["#"], ids["a"]]  # bert4torch alone would keep the piece ##a
    assert tok.token_count("好" * 300) == 302  # token_count never truncates


def test_a_random_sample_of_texts_with_every_kind_of_character(vocabularies):
    """Random strings of CJK, Latin, punctuation, emoji, digits, spaces and control characters."""
    vocab, max_len = vocabularies["scratch"], 32
    rng = random.Random(7)
    pool = "好的很差不错质量服务ABCxyz0123 ,.!?，。！？（）…👍😀\t\n\x00\u200b\u3000é中文ー한"
    texts = ["".join(rng.choice(pool) for _ in range(rng.randint(1, 60))) for _ in range(2000)]
    expected, cut = reference(vocab, texts, max_len)
    kept = [i for i, row in enumerate(expected) if len(row) > 2]
    assert 0 < len(texts) - len(kept) < 100  # a few have nothing left after cleaning
    enc = SentenceTokenizer(vocab, max_len).encode_batch([texts[i] for i in kept])
    assert rows_of(enc) == [expected[i] for i in kept] and enc.truncated == sum(cut) > 0


# ------------------------------------------------------------------------------------------ encoding
def test_vocab_has_specials_first_and_no_duplicates(tmp_path):
    vocab = build_vocab(["我的心情很差", "Good 好"])
    assert tuple(vocab[:5]) == SPECIAL_TOKENS
    assert len(vocab) == len(set(vocab)) and "心" in vocab and "##o" in vocab
    save_vocab(vocab, tmp_path / "vocab.txt")
    assert load_vocab(tmp_path / "vocab.txt") == vocab


def test_encode_batch_pads_right_with_int32(tokenizer):
    enc = tokenizer.encode_batch(["我的心情很差", "很好"])
    assert enc.input_ids.dtype == np.int32 and enc.input_ids.shape == (2, 8)
    assert enc.lengths.tolist() == [8, 4]
    assert (enc.input_ids[1, 4:] == tokenizer.pad_id).all() and not enc.segment_ids.any()
    cls, sep = tokenizer.vocab.index("[CLS]"), tokenizer.vocab.index("[SEP]")
    assert enc.input_ids[0, 0] == cls and enc.input_ids[0, 7] == sep
    padded = tokenizer.encode_batch(["很好"], pad_to=20)
    assert padded.input_ids.shape == (1, 20) and (padded.input_ids[0, :4] == enc.input_ids[1, :4]).all()
    with pytest.raises(InputError, match="pad_to=3 is shorter than the longest encoded text"):
        tokenizer.encode_batch(["很好"], pad_to=3)


def test_long_text_is_truncated_keeping_its_start(tokenizer):
    enc = tokenizer.encode_batch(["很好" * 100, "好"])
    assert enc.input_ids.shape == (2, tokenizer.max_len) and enc.truncated == 1
    assert enc.input_ids[0, -1] == tokenizer.vocab.index("[SEP]")
    assert enc.input_ids[0, 1] == tokenizer.vocab.index("很") and enc.lengths.tolist() == [tokenizer.max_len, 3]
    exact = tokenizer.encode_batch(["好" * (tokenizer.max_len - 2), "好" * (tokenizer.max_len - 1)])
    assert exact.lengths.tolist() == [tokenizer.max_len] * 2 and exact.truncated == 1  # max_len fits; one more is cut


def test_encode_many_and_pad_agree_with_encode_batch(tokenizer):
    texts = ["我的心情很差", "很好" * 40, "好"]
    rows, truncated = tokenizer.encode_many(texts)
    batch = tokenizer.encode_batch(texts)
    assert truncated == batch.truncated == 1 and rows == rows_of(batch)
    again = tokenizer.pad(rows, truncated=truncated)
    np.testing.assert_array_equal(again.input_ids, batch.input_ids)
    np.testing.assert_array_equal(again.lengths, batch.lengths)


@pytest.mark.parametrize("texts, message", [
    ([], "list of texts is empty"),
    (["好", "  \n"], r"text #1 is empty or has no token left \('  \\n'\)"),
    (["好", "\x00"], r"text #1 is empty or has no token left \('\\x00'\)"),
    (["\u200b", "好"], r"text #0 is empty or has no token left \('\\u200b'\)"),
    ("我的心情很差", "got one str"),
    (["好", 3], r"text #1 is a int, not a str; pass a list of strings"),
    (["好", b"x"], r"text #1 is a bytes, not a str; decode it first"),
    ([("好", "差")], r"text #0 is a tuple, not a str"),
    (None, r"tokenizer: expected a list of texts \(str\), got None"),
    ((t for t in ["好"]), r"got a generator"),
])
def test_bad_text_input(tokenizer, texts, message):
    with pytest.raises(InputError, match=message):
        tokenizer.encode_batch(texts)


def test_positions_name_the_callers_texts(tokenizer):
    with pytest.raises(InputError, match="text #17 is empty"):
        tokenizer.encode_batch(["好", "\u200b"], positions=np.array([4, 17]))


def test_vocab_without_specials_is_rejected():
    with pytest.raises(InputError, match="special tokens"):
        SentenceTokenizer(["a", "b"], max_len=8)
    with pytest.raises(InputError, match="max_len must be at least 3"):
        SentenceTokenizer(list(SPECIAL_TOKENS), max_len=2)


# ------------------------------------------------------------------------------------------ the vocabulary file
@pytest.fixture()
def checkpoint_dir(tmp_path, sentences):
    """A checkpoint folder's vocabulary part: vocab.txt and checkpoint.json with its sha256 and max_len."""
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    save_vocab(build_vocab(sentences[0]), folder / VOCAB_FILE)
    sha = hashlib.sha256((folder / VOCAB_FILE).read_bytes()).hexdigest()
    (folder / "checkpoint.json").write_text(json.dumps({"max_len": 24, "sha256": {VOCAB_FILE: sha}}))
    return folder


def shuffle_lines(path):
    """Shuffle a vocabulary's lines: same size, same tokens, other ids (what broke 05 unnoticed)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    random.Random(0).shuffle(lines)
    before = path.stat().st_size
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert path.stat().st_size == before


CHANGED = (r"vocab.txt is not the file this checkpoint was saved with \(its sha256 differs from checkpoint.json's\); "
           r"it was edited or copied from another run. Re-run 01_train.")


def test_checkpoint_tokenizer_reads_the_checked_vocabulary(checkpoint_dir, sentences):
    tok = checkpoint_tokenizer(checkpoint_dir)
    assert tok.max_len == 24 and tok.vocab == build_vocab(sentences[0])
    sha = json.loads((checkpoint_dir / "checkpoint.json").read_text())["sha256"][VOCAB_FILE]
    assert load_tokenizer(checkpoint_dir / VOCAB_FILE, 24, sha).vocab == tok.vocab


def test_a_shuffled_vocabulary_is_refused_by_every_reader(tmp_path, tiny_model, tokenizer):
    """05 read vocab.txt unchecked: with its lines shuffled it ran to the end with accuracy 0.53 instead of 0.84."""
    from helpers.model import load_checkpoint, save_checkpoint

    folder = save_checkpoint(tmp_path / "checkpoint", tiny_model, tokenizer.vocab, labels=["negative", "positive"],
                             max_len=tokenizer.max_len)
    assert checkpoint_tokenizer(folder).vocab == load_checkpoint(folder).tokenizer.vocab == tokenizer.vocab
    sha = json.loads((folder / "checkpoint.json").read_text())["sha256"][VOCAB_FILE]
    shuffle_lines(folder / VOCAB_FILE)
    for read in (lambda: checkpoint_tokenizer(folder), lambda: load_checkpoint(folder),
                 lambda: load_tokenizer(folder / VOCAB_FILE, tokenizer.max_len, sha),
                 lambda: checked_vocab(folder / VOCAB_FILE, sha)):
        with pytest.raises(CheckpointError, match=CHANGED):
            read()


def test_vocabulary_without_a_recorded_hash_or_file(checkpoint_dir, tmp_path):
    with pytest.raises(CheckpointError, match=r"no sha256 is recorded for .*vocab.txt"):
        load_tokenizer(checkpoint_dir / VOCAB_FILE, 24, None)
    (checkpoint_dir / "checkpoint.json").write_text(json.dumps({"max_len": 24}))
    with pytest.raises(CheckpointError, match="no sha256 is recorded"):
        checkpoint_tokenizer(checkpoint_dir)
    with pytest.raises(CheckpointError, match=r"cannot be read"):
        load_tokenizer(tmp_path / "absent.txt", 24, "0" * 64)
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*run notebook 01_train first"):
        checkpoint_tokenizer(tmp_path / "nowhere")
    (checkpoint_dir / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="is unreadable"):
        checkpoint_tokenizer(checkpoint_dir)
