"""The Classifier: order restoration, length bucketing, batch splitting, softmax, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.backends import Backend, Classifier, Prediction, softmax
from helpers.backends.classifier import DEVICE_BATCH_SETTINGS, BatchSettings, batch_settings
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


def token_lengths(tokenizer, texts):
    return tokenizer.encode_batch(texts).lengths


def expected_logits(tokenizer, texts):
    enc = tokenizer.encode_batch(texts)
    return np.stack([enc.lengths, enc.input_ids.sum(axis=1) / 100.0], axis=1).astype(np.float32)


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
    lengths = sorted(token_lengths(tokenizer, TEXTS).tolist())
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
    lengths = sorted(token_lengths(tokenizer, TEXTS).tolist())
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
    lengths = token_lengths(tokenizer, texts)
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
    for blank in ("   ", "\x00", "\u200b"):  # nothing left after cleaning: refused, not classified from [CLS] [SEP]
        with pytest.raises(InputError, match="text #1 is empty or has no token left"):
            clf.predict(["好", blank])
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


# ------------------------------------------------------------------------------------------ device defaults
class GpuRecordingBackend(RecordingBackend):
    device = "cuda:0"


def test_batching_defaults_follow_the_backends_device(tokenizer):
    cpu = Classifier(tokenizer, RecordingBackend(), ["a", "b"])
    assert (cpu.batch_size, cpu.max_tokens, cpu.pad_multiple, cpu.chunk, cpu.prefetch) == (32, 0, 1, 0, False)
    assert DEVICE_BATCH_SETTINGS["cpu"] == BatchSettings() == batch_settings("cpu")
    gpu = Classifier(tokenizer, GpuRecordingBackend(), ["a", "b"])
    want = DEVICE_BATCH_SETTINGS["cuda"]
    assert batch_settings("cuda:1") is want and want.pad_multiple == 16 and want.prefetch and want.max_tokens > 0
    assert (gpu.batch_size, gpu.max_tokens, gpu.pad_multiple, gpu.chunk, gpu.prefetch) == (
        want.batch_size, want.max_tokens, want.pad_multiple, want.chunk, want.prefetch)
    mine = Classifier(tokenizer, GpuRecordingBackend(max_batch=64), ["a", "b"], pad_multiple=1, max_tokens=0,
                      chunk=0, prefetch=False)
    assert (mine.batch_size, mine.max_tokens, mine.pad_multiple, mine.chunk, mine.prefetch) == (64, 0, 1, 0, False)
    for bad in (dict(max_tokens=-1), dict(chunk=-5)):
        with pytest.raises(ConfigError, match="must be 0 \\(off\\) or positive"):
            Classifier(tokenizer, RecordingBackend(), ["a", "b"], **bad)


# ------------------------------------------------------------------------------------------ token budget
def test_token_budget_makes_fewer_fuller_sorted_batches(tokenizer):
    texts = [TEXTS[i % len(TEXTS)] * (1 + i % 2) for i in range(120)]
    lengths = token_lengths(tokenizer, texts)
    backend = RecordingBackend()
    clf = Classifier(tokenizer, backend, ["a", "b"], batch_size=100, max_tokens=256, pad_multiple=4)
    pred = clf.predict(texts)
    np.testing.assert_allclose(pred.logits, expected_logits(tokenizer, texts), rtol=1e-6)
    assert all(rows * width <= 256 for rows, width in backend.shapes)
    assert [w for _, w in backend.shapes] == sorted(w for _, w in backend.shapes)  # still length-sorted
    groups = clf.batch_rows(lengths)
    for rows, (size, width) in zip(groups, backend.shapes):  # each batch ends where one more row would break the budget
        assert len(rows) == size and width == clf.width(int(lengths[rows].max()))
    for rows, following in zip(groups, groups[1:]):
        longer = clf.width(int(lengths[following[0]]))
        assert (len(rows) + 1) * max(longer, clf.width(int(lengths[rows].max()))) > 256 or len(rows) == 100
    fixed = RecordingBackend()
    Classifier(tokenizer, fixed, ["a", "b"], batch_size=8, pad_multiple=4).predict(texts)
    assert len(backend.shapes) < len(fixed.shapes)  # fewer calls than batches of 8
    # one row wider than the budget still goes, alone
    one = RecordingBackend()
    Classifier(tokenizer, one, ["a", "b"], max_tokens=4).predict(["很好" * 5, "好"])
    assert [b for b, _ in one.shapes] == [1, 1]


def test_token_budget_without_bucketing_keeps_the_order(tokenizer):
    texts = TEXTS * 4
    clf = Classifier(tokenizer, RecordingBackend(), ["a", "b"], batch_size=32, max_tokens=40, bucket=False)
    groups = clf.batch_rows(token_lengths(tokenizer, texts))
    assert np.concatenate(groups).tolist() == list(range(len(texts)))
    lengths = token_lengths(tokenizer, texts)
    assert all(len(g) * lengths[g].max() <= 40 or len(g) == 1 for g in groups) and len(groups) > 1


# ------------------------------------------------------------------------------------------ chunks and prefetching
def many_texts(n=200):
    rng = np.random.default_rng(3)
    return ["".join(rng.choice(list("好的很差不错质量服务物流包装客服"), size=int(rng.integers(1, 14)))) for _ in range(n)]


@pytest.mark.parametrize("bucket", [True, False])
def test_chunks_restore_the_callers_order_with_and_without_the_worker(tokenizer, bucket):
    texts = many_texts()
    whole = Classifier(tokenizer, RecordingBackend(), ["a", "b"], batch_size=16, bucket=bucket).predict(texts)
    calls = {}
    for prefetch in (False, True):
        backend = RecordingBackend()
        clf = Classifier(tokenizer, backend, ["a", "b"], batch_size=16, chunk=32, prefetch=prefetch, bucket=bucket)
        pred = clf.predict(texts)
        np.testing.assert_array_equal(pred.logits, whole.logits)
        assert pred.labels == whole.labels and pred.real_tokens == whole.real_tokens
        calls[prefetch] = (backend.shapes, pred.batches, pred.padded_tokens)
    assert calls[False] == calls[True]  # the same calls with and without the worker thread
    chunks = Classifier(tokenizer, RecordingBackend(), ["a", "b"], chunk=32)._chunks(200, np.arange(200))
    assert [len(c) for c in chunks] == [4, 8, 16, 32, 32, 32, 32, 32, 12]  # small first, so the device starts early


def test_identical_logits_with_and_without_the_worker_on_onnx_runtime(tmp_path):
    from helpers.backends import OrtBackend
    from helpers.bench.models import architecture_model
    from helpers.export import onnx_from_classifier

    tok = SentenceTokenizer(build_vocab(TEXTS), max_len=16)
    path = onnx_from_classifier(architecture_model("tiny", tok.vocab_size, seed=1).model, tmp_path / "m.onnx",
                                labels=["a", "b"], max_len=16, model_size="tiny").path
    texts = many_texts(300) + ["很好" * 20]
    with OrtBackend(path) as backend:
        preds = [Classifier(tok, backend, ["a", "b"], batch_size=16, max_tokens=96, pad_multiple=4, chunk=64,
                            prefetch=prefetch).predict(texts) for prefetch in (False, True)]
        single = Classifier(tok, backend, ["a", "b"], batch_size=1).predict(texts[:40])
    np.testing.assert_array_equal(preds[0].logits, preds[1].logits)  # bit for bit: the same batches
    assert preds[0].truncated == preds[1].truncated == 1
    np.testing.assert_allclose(preds[1].logits[:40], single.logits, atol=1e-5)  # and what each text gives alone


def test_the_worker_tokenizes_the_next_chunk_while_the_backend_runs(tokenizer):
    """The tokenizer's second call (chunk 2) waits until the backend is inside its first call, and that call
    waits until chunk 2 is being tokenized: both happen only when a worker thread prepares chunk 2 while the
    backend runs chunk 1."""
    import threading

    for prefetch in (True, False):
        running, tokenizing = threading.Event(), threading.Event()
        patience = 10 if prefetch else 0.3  # seconds; the waits time out only where no overlap is expected
        calls = []

        class Watched(SentenceTokenizer):
            def encode_batch(self, *args, **kwargs):
                calls.append(1)
                if len(calls) == 2 and running.wait(timeout=patience):
                    tokenizing.set()
                return super().encode_batch(*args, **kwargs)

        class Waiting(RecordingBackend):
            def _run(self, input_ids, segment_ids):
                if not self.shapes:
                    running.set()
                    self.overlapped = tokenizing.wait(timeout=patience)
                return super()._run(input_ids, segment_ids)

        backend = Waiting()
        tok = Watched(tokenizer.vocab, tokenizer.max_len)
        pred = Classifier(tok, backend, ["a", "b"], chunk=16, prefetch=prefetch).predict(many_texts(100))
        assert backend.overlapped is prefetch and len(pred) == 100 and len(calls) > 2


def test_errors_in_the_worker_and_in_the_backend_reach_the_caller(tokenizer):
    import threading

    texts = many_texts(100)
    texts[57] = "\u200b" * 30  # nothing left after cleaning; 30 characters: sorted into the last chunk
    backend = RecordingBackend()
    with pytest.raises(InputError, match=r"text #57 is empty or has no token left"):
        Classifier(tokenizer, backend, ["a", "b"], chunk=16, prefetch=True).predict(texts)
    assert backend.shapes  # raised by the worker after earlier chunks had run

    class Failing(RecordingBackend):
        def _run(self, input_ids, segment_ids):
            if len(self.shapes) == 2:
                raise BackendError("recording: the device fell over")
            return super()._run(input_ids, segment_ids)

    before = threading.active_count()
    with pytest.raises(BackendError, match="the device fell over"):
        Classifier(tokenizer, Failing(), ["a", "b"], chunk=16, prefetch=True).predict(many_texts(100))
    assert threading.active_count() == before  # the worker stopped with the call
    assert not [t for t in threading.enumerate() if t.name.startswith("classifier-prefetch")]
