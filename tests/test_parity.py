"""02's parity check: a candidate backend against fp32 PyTorch on a test split and at edge shapes, held to the
bound of its precision (fp32, FP16, INT8)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers.backends import TorchBackend
from helpers.backends.base import Backend
from helpers.errors import ConfigError
from helpers.parity import BOUNDS, FP32_MAX_ABS_DIFF, check_parity


class Shifted(Backend):
    """Another backend's logits, changed by ``change(logits)``, under a precision of our choosing."""

    def __init__(self, inner: Backend, precision: str, change) -> None:
        super().__init__()
        self.inner, self.precision, self.change, self.name = inner, precision, change, f"shifted-{precision}"

    def _run(self, input_ids, segment_ids):
        return self.change(self.inner.predict_logits(input_ids, segment_ids)).astype(np.float32)


@pytest.fixture()
def setting(tiny_model, tokenizer, sentences):
    texts, labels = sentences
    return TorchBackend(tiny_model), tokenizer, texts, np.array(labels)


def check(setting, candidate, **kw):
    reference, tokenizer, texts, truth = setting
    return check_parity(reference, candidate, tokenizer, texts, truth, labels=["negative", "positive"], **kw)


def test_the_same_model_passes_the_fp32_bound_on_the_split_and_the_edges(setting, tmp_path):
    result = check(setting, Shifted(setting[0], "fp32", lambda x: x), large_batch=8)
    assert result.passed and result.bound == BOUNDS["fp32"]
    assert [r.case for r in result.cases] == ["test split (12 sentences)", "1x1", "1x32", "8x32 (padding inside rows)"]
    assert result.accuracy == result.reference_accuracy
    saved = json.loads(result.save(tmp_path / "parity.json").read_text(encoding="utf-8"))
    assert saved["passed"] and saved["candidate"]["precision"] == "fp32" and len(saved["cases"]) == 4


def test_an_fp32_graph_off_by_more_than_the_tolerance_fails(setting):
    result = check(setting, Shifted(setting[0], "fp32", lambda x: x + np.array([3 * FP32_MAX_ABS_DIFF, 0])))
    assert not result.passed and "max |diff| 3.00e-04" in result.failures[0]
    assert result.summary()[-1] == "NO"


class Oracle(Backend):
    """Answers every known sentence right (by its token ids); ``wrong`` names sentences it answers wrongly."""

    def __init__(self, tokenizer, texts, truth, precision="fp32", wrong=()) -> None:
        super().__init__()
        self.precision, self.name = precision, f"oracle-{precision}"
        rows, _ = tokenizer.encode_many(list(texts))
        self.answer = {tuple(r): int(y) ^ (t in wrong) for r, t, y in zip(rows, texts, truth)}

    def _run(self, input_ids, segment_ids):
        rows = [tuple(int(i) for i in row if i != 0) for row in input_ids]
        return np.array([[1.0, 0.0] if self.answer[r] == 0 else [0.0, 1.0] for r in rows], np.float32)


def test_int8_may_lose_half_a_point_and_no_more(setting):
    _, tokenizer, texts, truth = setting
    perfect = Oracle(tokenizer, texts, truth)
    same = check_parity(perfect, Oracle(tokenizer, texts, truth, "int8"), tokenizer, texts, truth,
                        labels=["negative", "positive"])
    assert same.passed and same.accuracy == same.reference_accuracy == 1.0
    one_wrong = check_parity(perfect, Oracle(tokenizer, texts, truth, "int8", wrong=texts[:1]), tokenizer, texts,
                             truth, labels=["negative", "positive"])
    assert one_wrong.accuracy == pytest.approx(11 / 12) and not one_wrong.passed
    assert one_wrong.failures == ["test accuracy 0.9167 is 8.33 points below 1.0000"]
    near = check(setting, Shifted(setting[0], "int8", lambda x: x + 0.01))
    assert near.passed, "INT8 is held to accuracy, not to the fp32 tolerance"


def test_fp16_must_keep_the_labels_and_never_nan(setting):
    nan = check(setting, Shifted(setting[0], "fp16", lambda x: np.where(np.arange(len(x))[:, None] == 2, np.nan, x)))
    assert not nan.passed and nan.failures[0].endswith("1 rows with NaN")
    swapped = check(setting, Shifted(setting[0], "fp16", lambda x: x[:, ::-1]))
    assert not swapped.passed and "labels agree on 0.00%" in swapped.failures[0]


def test_a_reference_prediction_is_reused_and_unknown_precisions_refused(setting):
    first = check(setting, Shifted(setting[0], "fp32", lambda x: x))

    class Counting(Shifted):
        calls = 0

        def _run(self, ids, seg):
            Counting.calls += 1
            return super()._run(ids, seg)

    reference = Counting(setting[0], "fp32", lambda x: x)
    again = check_parity(reference, Shifted(setting[0], "fp32", lambda x: x), setting[1], setting[2], setting[3],
                         labels=["negative", "positive"], reference_prediction=first.reference)
    assert again.passed and Counting.calls == 0
    with pytest.raises(ConfigError, match="no bound for precision 'int4'"):
        check(setting, Shifted(setting[0], "int4", lambda x: x))
    assert torch.is_grad_enabled()


def test_an_onnx_file_is_checked_on_onnx_runtime(tiny_model, tokenizer, sentences, tmp_path):
    from helpers.export import onnx_from_classifier

    path = onnx_from_classifier(tiny_model, tmp_path / "model.onnx", labels=["negative", "positive"], max_len=32).path
    texts, labels = sentences
    result = check_parity(TorchBackend(tiny_model), path, tokenizer, texts, np.array(labels),
                          labels=["negative", "positive"], name="file", large_batch=4)
    assert result.passed and result.name == "file" and result.backends["candidate"]["path"] == str(path)
