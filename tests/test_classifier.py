"""The Classifier: order restoration, length bucketing, batch splitting, softmax, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.backends import Backend, Classifier, Prediction, softmax
from helpers.errors import BackendError, ConfigError, InputError
from helpers.tokenizer import SentenceTokenizer, build_vocab

TEXTS = ["我的心情很差", "好", "这家店的服务态度非常好，下次还会再来", "一般", "质量太差了，再也不买",
         "物流很快", "包装破损，客服也不理人，非常失望", "不错"]


class RecordingBackend(Backend):
    """Logits that identify the row: [number of real tokens, sum of ids]; records each call's shape."""

    name = "recording"

    def __init__(self, labels: int = 2, **limits):
        super().__init__(**limits)
        self.labels = labels
        self.shapes: list[tuple[int, int]] = []

    def _run(self, input_ids, segment_ids):
        self.shapes.append(input_ids.shape)
        real = (input_ids != 0).sum(axis=1).astype(np.float32)
        total = input_ids.sum(axis=1).astype(np.float32) / 100.0
        cols = [real, total] + [np.zeros_like(real)] * (self.labels - 2)
        return np.stack(cols, axis=1)


@pytest.fixture(scope="module")
def tokenizer():
    return SentenceTokenizer(build_vocab(TEXTS), max_len=16)


def expected_logits(tokenizer, texts):
    rows = []
    for t in texts:
        ids, _ = tokenizer.encode(t)
        rows.append([len(ids), sum(ids) / 100.0])
    return np.array(rows, dtype=np.float32)


@pytest.mark.parametrize("bucket", [True, False])
def test_results_come_back_in_the_callers_order(tokenizer, bucket):
    clf = Classifier(tokenizer, RecordingBackend(), ["a", "b"], batch_size=3, bucket=bucket)
    pred = clf.predict(TEXTS)
    assert isinstance(pred, Prediction) and len(pred) == len(TEXTS)
    np.testing.assert_allclose(pred.logits, expected_logits(tokenizer, TEXTS), rtol=1e-6)
    assert pred.label_ids.dtype == np.int64
    assert pred.labels == [["a", "b"][i] for i in pred.logits.argmax(1)]


def test_bucketing_sorts_by_length_and_pads_per_batch(tokenizer):
    backend = RecordingBackend()
    pred = Classifier(tokenizer, backend, ["a", "b"], batch_size=3).predict(TEXTS)
    widths = [w for _, w in backend.shapes]
    lengths = sorted(len(tokenizer.encode(t)[0]) for t in TEXTS)
    assert widths == [max(lengths[i:i + 3]) for i in range(0, len(lengths), 3)]  # ascending, no extra padding
    assert pred.batches == 3 and pred.real_tokens == sum(lengths)

    unsorted = RecordingBackend()
    plain = Classifier(tokenizer, unsorted, ["a", "b"], batch_size=3, bucket=False).predict(TEXTS)
    assert plain.padded_tokens > pred.padded_tokens
    assert plain.padding_fraction > pred.padding_fraction >= 0


def test_pad_multiple_rounds_widths_up_but_not_past_max_len(tokenizer):
    backend = RecordingBackend()
    clf = Classifier(tokenizer, backend, ["a", "b"], batch_size=3, pad_multiple=8)
    pred = clf.predict(TEXTS)
    lengths = sorted(len(tokenizer.encode(t)[0]) for t in TEXTS)
    longest = [max(lengths[i:i + 3]) for i in range(0, len(lengths), 3)]
    assert [w for _, w in backend.shapes] == [min(-(-n // 8) * 8, tokenizer.max_len) for n in longest]
    assert all(w % 8 == 0 or w == tokenizer.max_len for _, w in backend.shapes)
    # the extra positions are padding: every row's logits are what they are without rounding
    np.testing.assert_allclose(pred.logits, expected_logits(tokenizer, TEXTS), rtol=1e-6)
    assert pred.padded_tokens == sum(3 * w for _, w in backend.shapes[:-1]) + 2 * backend.shapes[-1][1]
    assert clf.width(15) == 16 and clf.width(16) == 16 and clf.width(3) == 8
    assert Classifier(tokenizer, backend, ["a", "b"], pad_multiple=64).width(5) == tokenizer.max_len
    with pytest.raises(ConfigError, match="pad_multiple must be at least 1"):
        Classifier(tokenizer, backend, ["a", "b"], pad_multiple=0)


def test_max_padding_cuts_batches_where_padding_would_pass_the_cap(tokenizer):
    texts = ["好", "不错", "一般", "物流很快", "这家店的服务态度非常好，下次还会再来", "包装破损，客服也不理人，非常失望"] * 2
    lengths = np.array([len(tokenizer.encode(t)[0]) for t in texts])
    uncapped = RecordingBackend()
    plain = Classifier(tokenizer, uncapped, ["a", "b"], batch_size=12).predict(texts)
    capped_backend = RecordingBackend()
    clf = Classifier(tokenizer, capped_backend, ["a", "b"], batch_size=12, max_padding=0.2)
    capped = clf.predict(texts)
    np.testing.assert_allclose(capped.logits, expected_logits(tokenizer, texts), rtol=1e-6)  # caller's order kept
    assert capped.padding_fraction <= 0.2 < plain.padding_fraction
    assert capped.batches > plain.batches and max(b for b, _ in capped_backend.shapes) <= 12
    for rows in clf.batch_rows(lengths):  # every call of several rows keeps its padding under the cap
        if len(rows) > 1:
            assert 1 - lengths[rows].sum() / (len(rows) * lengths[rows].max()) <= 0.2
    # 0: only rows of one length share a call; the order of rows inside stays sorted and complete
    groups = Classifier(tokenizer, RecordingBackend(), ["a", "b"], batch_size=12, max_padding=0).batch_rows(lengths)
    assert all(len(set(lengths[g])) == 1 for g in groups)
    assert sorted(np.concatenate(groups).tolist()) == list(range(len(texts)))
    # without bucketing the cap does not apply (rows keep their order)
    assert len(Classifier(tokenizer, RecordingBackend(), ["a", "b"], batch_size=12, bucket=False,
                          max_padding=0).batch_rows(lengths)) == 1
    for bad in (1.0, -0.1, 2):
        with pytest.raises(ConfigError, match="max_padding"):
            Classifier(tokenizer, RecordingBackend(), ["a", "b"], max_padding=bad)


def test_never_exceeds_the_backends_max_batch(tokenizer):
    backend = RecordingBackend(max_batch=3)
    clf = Classifier(tokenizer, backend, ["a", "b"], batch_size=32)
    assert clf.batch_size == 3
    pred = clf.predict(TEXTS * 2)
    assert max(b for b, _ in backend.shapes) <= 3 and sum(b for b, _ in backend.shapes) == 16
    assert pred.batches == 6


def test_tokenizer_longer_than_backend_is_refused(tokenizer):
    with pytest.raises(ConfigError, match="rows of up to 16 tokens but recording accepts at most 8"):
        Classifier(tokenizer, RecordingBackend(max_len=8), ["a", "b"])


def test_long_text_is_truncated_to_max_len(tokenizer):
    backend = RecordingBackend(max_len=16)
    pred = Classifier(tokenizer, backend, ["a", "b"]).predict(["很好" * 40, "好"])
    assert pred.truncated == 1 and max(w for _, w in backend.shapes) == 16


def test_probabilities_are_a_softmax():
    logits = np.array([[1000.0, -1000.0], [0.0, 0.0], [1.0, 2.0]], dtype=np.float32)
    p = softmax(logits)
    assert np.isfinite(p).all() and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p[1], [0.5, 0.5])
    np.testing.assert_allclose(p[2, 1], 1 / (1 + np.exp(-1.0)), rtol=1e-6)


def test_bad_input(tokenizer):
    clf = Classifier(tokenizer, RecordingBackend(), ["a", "b"])
    with pytest.raises(InputError, match="the list of texts is empty"):
        clf.predict([])
    with pytest.raises(InputError, match=r"got one str \(.*\); wrap it as \[text\]"):
        clf.predict("我的心情很差")
    with pytest.raises(InputError, match="text #1 is empty or whitespace only"):
        clf.predict(["好", "   "])
    with pytest.raises(InputError, match="text #0 is a int, not a str"):
        clf.predict([3])


def _texts_once():
    yield "好"


@pytest.mark.parametrize("texts, message", [
    (None, r"Classifier.predict: expected a list of texts \(str\), got None\."),
    (123, r"expected a list of texts \(str\), got a int\."),
    (4.5, r"got a float\."),
    (b"\xe5\xa5\xbd", r"got bytes; decode it first"),
    (bytearray(b"ok"), r"got bytearray; decode it first"),
    ({"a": "好"}, r"got a dict, whose keys would be taken for the texts; pass list\(d.values\(\)\)"),
    ({"好", "不错"}, r"got a set, which has no order"),
    (frozenset({"好"}), r"got a frozenset, which has no order"),
    (_texts_once(), r"got a generator \(an iterator.*pass list\(\.\.\.\) of it"),
    (iter(["好"]), r"got a list_iterator"),
    (map(str, [1]), r"got a map"),
    ("我的心情很差", r"got one str \('我的心情很差'\); wrap it as \[text\]"),
    ("很" * 30, r"got one str \('很很很很很很很很很很很很很很很很很很很很'\.\.\.\)"),
    (np.array([["好", "差"]]), r"got a ndarray of 2 dimensions"),
    (np.array("好"), r"got a ndarray of 0 dimensions"),
])
def test_the_texts_argument_itself_is_checked(tokenizer, texts, message):
    """Before: None, 123, a generator, a dict, bytes ... ended in a bare TypeError from tokenizer.py."""
    backend = RecordingBackend()
    clf = Classifier(tokenizer, backend, ["a", "b"])
    with pytest.raises(InputError, match=message):
        clf.predict(texts)
    assert backend.shapes == []  # refused before anything ran


def test_ordered_collections_of_texts_are_accepted(tokenizer):
    clf = Classifier(tokenizer, RecordingBackend(), ["a", "b"], batch_size=3)
    expected = clf.predict(TEXTS).logits
    for texts in (tuple(TEXTS), np.array(TEXTS)):
        np.testing.assert_array_equal(clf.predict(texts).logits, expected)


def test_bytes_items_are_told_to_decode(tokenizer):
    clf = Classifier(tokenizer, RecordingBackend(), ["a", "b"])
    with pytest.raises(InputError, match=r"text #1 is a bytes, not a str; decode it first"):
        clf.predict(["好", "差".encode()])


def test_labels_must_match_the_model(tokenizer):
    clf = Classifier(tokenizer, RecordingBackend(labels=3), ["a", "b"])
    with pytest.raises(BackendError, match=r"returned logits of shape \(1, 3\) for 1 texts and 2 labels"):
        clf.predict(["好"])


def test_bad_settings(tokenizer):
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        Classifier(tokenizer, RecordingBackend(), ["a", "b"], batch_size=0)
    with pytest.raises(ConfigError, match="at least 2 labels"):
        Classifier(tokenizer, RecordingBackend(), ["only"])
