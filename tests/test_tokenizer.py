import numpy as np
import pytest

from helpers.errors import InputError
from helpers.tokenizer import SPECIAL_TOKENS, SentenceTokenizer, build_vocab, load_vocab, save_vocab


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


def test_long_text_is_truncated_keeping_its_start(tokenizer):
    enc = tokenizer.encode_batch(["很好" * 100])
    assert enc.input_ids.shape == (1, tokenizer.max_len) and enc.truncated == 1
    assert enc.input_ids[0, -1] == tokenizer.vocab.index("[SEP]")
    assert enc.input_ids[0, 1] == tokenizer.vocab.index("很")


def test_unknown_characters_become_unk(tokenizer):
    ids, cut = tokenizer.encode("😀 hello ☃")
    assert not cut and tokenizer.unk_id in ids
    assert ids[0] == tokenizer.vocab.index("[CLS]")


@pytest.mark.parametrize("texts, message", [
    ([], "list of texts is empty"),
    (["好", "  \n"], r"text #1 is empty or whitespace"),
    ("我的心情很差", "got one str"),
    (["好", 3], r"text #1 is a int"),
    (None, r"tokenizer: expected a list of texts \(str\), got None"),
    ((t for t in ["好"]), r"got a generator"),
])
def test_bad_text_input(tokenizer, texts, message):
    with pytest.raises(InputError, match=message):
        tokenizer.encode_batch(texts)


def test_vocab_without_specials_is_rejected():
    with pytest.raises(InputError, match="special tokens"):
        SentenceTokenizer(["a", "b"], max_len=8)
