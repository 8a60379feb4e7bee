"""helpers.bench.texts: each backend's Classifier end to end beside the same batches alone, and the tokenizer's
share, on a tiny model (CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.backends import Classifier
from helpers.backends.base import Backend
from helpers.bench import BenchResult, build_lineup
from helpers.bench.models import architecture_model, ensure_onnx_set
from helpers.bench.texts import agreement_floor, time_texts
from helpers.errors import BackendError, ConfigError
from helpers.parity import FP16_MIN_AGREEMENT

LABELS = ["negative", "positive"]


class Counting(Backend):
    """Logits from the ids (so labels depend on the text); counts calls and rows; may shrink its batches."""

    name = "counting"

    def __init__(self, shrink_after_first: bool = False) -> None:
        super().__init__()
        self.calls, self.rows, self.shrink = 0, 0, shrink_after_first

    def _run(self, input_ids, segment_ids):
        self.calls += 1
        self.rows += len(input_ids)
        if self.shrink:
            self.max_batch = 2
        score = (input_ids % 7).sum(axis=1, keepdims=True).astype(np.float32)
        return np.concatenate([score, 20 - score], axis=1)


@pytest.fixture(scope="module")
def lineup(tmp_path_factory, tokenizer):
    arch = architecture_model("tiny", vocab_size=300)
    assert tokenizer.vocab_size <= arch.vocab_size  # the architecture model's vocabulary covers the fixture's ids
    onnx = ensure_onnx_set(arch, tmp_path_factory.mktemp("arch"), ("plain", "fused", "int8"), log=None)
    with build_lineup(arch.model, onnx, name="trained-tiny", threads=1, cuda=False,
                      names=("pytorch", "onnxruntime", "onnxruntime-int8")) as built:
        yield built


def test_every_backend_end_to_end_and_model_only(lineup, tokenizer, sentences):
    # short and long texts in turn: sorted by length, a batch holds one kind; in their order, both
    texts = [t if i % 2 else t[:2] for i, t in enumerate(sentences[0] * 12)]
    labels = sentences[1] * 12
    result = BenchResult({"host": {"usable_cpus": 2}}, {})
    records = lineup.classify(result, tokenizer, LABELS, texts, np.array(labels), dataset="test", rounds=2,
                              only="pytorch,onnxruntime", log=None)
    assert [(r.backend, r.bucketing) for r in records] == [("pytorch", True), ("onnxruntime", True),
                                                           ("pytorch", False), ("onnxruntime", False)]
    assert result.accuracy == records and [(s.backend, s.shape) for s in result.skipped] == [("onnxruntime-int8", "test")]
    expected = Classifier(tokenizer, lineup.backends["pytorch"], LABELS).predict(texts)
    for r in records:
        assert r.count == 144 and r.rounds == 2 and r.dataset == "test" and r.device == "cpu"
        assert r.seconds > 0 and r.model_only_seconds > 0 and r.tokenize_seconds > 0
        assert 0 < r.tokenizer_share < 1 and r.share_of_model_only > 0
        assert r.sentences_per_s == pytest.approx(144 / r.seconds) and r.model_only_per_s == pytest.approx(144 / r.model_only_seconds)
        assert r.agreement_with_reference == 1.0 and r.reference == "pytorch" and r.min_agreement == 0.995
    assert records[0].batches == expected.batches and records[0].accuracy == np.mean(expected.label_ids == labels)
    assert records[0].padding_fraction < records[2].padding_fraction  # bucketing pads less


def test_the_model_only_pass_replays_the_classifiers_batches(tokenizer, sentences):
    texts, labels = sentences
    backend = Counting()
    records, skipped = time_texts({"counting": backend}, tokenizer, LABELS, texts, labels, model="m", dataset="test",
                                  rounds=3, bucketing=(True,), log=None)
    batches = Classifier(tokenizer, Counting(), LABELS).predict(texts).batches
    # one recording pass, then per round one end-to-end pass and one model-only pass, on the same batches
    assert records[0].batches == batches and backend.calls == batches * (1 + 2 * 3) and backend.rows == len(texts) * 7
    assert skipped == [] and records[0].agreement_with_reference is None and records[0].reference is None


def test_a_time_budget_cuts_the_rounds_of_a_slow_backend(tokenizer, sentences):
    import time

    class Slow(Counting):
        def _run(self, input_ids, segment_ids):
            time.sleep(0.01)
            return super()._run(input_ids, segment_ids)

    texts, labels = sentences
    records, _ = time_texts({"slow": Slow()}, tokenizer, LABELS, texts, labels, model="m", dataset="test", rounds=5,
                            time_budget_s=0.001, bucketing=(True,), log=None)
    assert records[0].rounds == 1  # the first round spent the budget
    records, _ = time_texts({"slow": Slow()}, tokenizer, LABELS, texts, labels, model="m", dataset="test", rounds=2,
                            time_budget_s=60, bucketing=(True,), log=None)
    assert records[0].rounds == 2


def test_a_timed_pass_on_other_batches_stops_the_run(tokenizer, sentences):
    texts, labels = sentences
    with pytest.raises(BackendError, match="a timed pass made .* batches .* the model-only figure would not be"):
        time_texts({"shrinking": Counting(shrink_after_first=True)}, tokenizer, LABELS, texts, labels, model="m",
                   dataset="test", rounds=1, log=None)


def test_bad_input_is_refused(tokenizer, sentences):
    texts, labels = sentences
    with pytest.raises(ConfigError, match="as many targets as texts"):
        time_texts({"c": Counting()}, tokenizer, LABELS, texts, labels[:-1], model="m", dataset="test", log=None)
    with pytest.raises(ConfigError, match="rounds must be >= 1"):
        time_texts({"c": Counting()}, tokenizer, LABELS, texts, labels, model="m", dataset="test", rounds=0, log=None)


def test_agreement_floors_follow_the_backend_kind():
    assert agreement_floor("onnxruntime") == agreement_floor("pytorch-cuda") == 0.995
    assert agreement_floor("onnxruntime-int8") == 0.95
    assert agreement_floor("ort-cuda-fused-fp16-rightpad-graph") == FP16_MIN_AGREEMENT
    assert agreement_floor("tensorrt-fp32") == 0.999
