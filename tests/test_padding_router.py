"""helpers.backends.padding: the fast 1-D mask-index graph only where it is right, the exact graph elsewhere.

The two graphs here are ONNX Runtime's fused fp32 graphs of a tiny model on the CPU (the same fusion as the
GPU's FP16 ones, the mask format being the only difference), with weights scaled up so that masking a position
changes the logits. On a GPU the router holds two ONNX Runtime CUDA backends instead (06's
``ort-cuda-fused-fp16-rightpad-graph``).
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.backends import Classifier, OrtBackend
from helpers.backends.padding import RightPaddingRouter, right_padded
from helpers.bench.harness import device_times
from helpers.bench.models import architecture_model, ensure_onnx_set
from helpers.errors import ConfigError
from helpers.export import sample_feed
from helpers.onnx_variants import FusionConfig, fused_onnx_from_plain
from helpers.parity import padding_route_parity

VOCAB = 300


@pytest.mark.parametrize("rows, expected", [
    ([[2, 5, 6, 0, 0], [2, 7, 0, 0, 0]], True),   # the tokenizer's batches
    ([[2, 5, 6, 7, 8]], True),                    # no padding at all
    ([[2, 5, 0, 7, 0]], False),                   # id 0 inside a row
    ([[0, 5, 6, 0, 0]], False),                   # a row that starts with padding
    ([[2, 5, 6, 0, 0], [2, 0, 9, 0, 0]], False),  # one bad row is enough
])
def test_right_padded(rows, expected):
    assert right_padded(np.array(rows, dtype=np.int32)) is expected


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    import torch

    arch = architecture_model("tiny", VOCAB, seed=3)
    with torch.no_grad():
        for p in arch.model.parameters():
            p.mul_(4.0)
    folder = tmp_path_factory.mktemp("router")
    plain = ensure_onnx_set(arch, folder, ("plain",), log=None)["plain"]
    exact = fused_onnx_from_plain(plain, folder / "raw.onnx", FusionConfig(raw_attention_mask=True)).path
    fast = fused_onnx_from_plain(plain, folder / "index.onnx", FusionConfig(raw_attention_mask=False)).path
    return exact, fast


@pytest.fixture()
def router(graphs):
    exact, fast = graphs
    with RightPaddingRouter(OrtBackend(exact), OrtBackend(fast), name="router") as r:
        yield r


def test_the_classifier_runs_on_the_fast_graph_with_the_exact_answers(router, tokenizer, sentences):
    texts = sentences[0] * 3
    labels = ["negative", "positive"]
    routed = Classifier(tokenizer, router, labels, batch_size=8).predict(texts)
    exact = Classifier(tokenizer, router.exact, labels, batch_size=8).predict(texts)
    assert router.calls == {"fast": routed.batches, "exact": 0}  # the tokenizer pads on the right only
    assert np.abs(routed.logits - exact.logits).max() < 1e-4 and routed.labels == exact.labels


def test_rows_with_inner_zeros_get_the_exact_graph_which_the_fast_one_is_not(router):
    ids, seg = sample_feed(16, 48, VOCAB, seed=11, pad_inside=True)
    exact = router.exact.predict_logits(ids, seg)
    assert np.array_equal(router.predict_logits(ids, seg), exact) and router.calls == {"fast": 0, "exact": 1}
    assert np.abs(router.fast.predict_logits(ids, seg) - exact).max() > 1e-2  # why the route matters


def test_padding_route_parity_passes_and_catches_a_router_that_always_takes_the_fast_graph(router, graphs):
    report = padding_route_parity(router, VOCAB)
    assert report["passed"] and report["routes"] == {"fast": 1, "exact": 1}
    assert report["right_padded"]["max_abs_diff"] < 1e-4 and report["inner_zeros"]["max_abs_diff"] == 0.0

    class AlwaysFast(RightPaddingRouter):
        def choose(self, input_ids):
            return self.fast

    with AlwaysFast(OrtBackend(graphs[0]), OrtBackend(graphs[1])) as broken:
        bad = padding_route_parity(broken, VOCAB)
    assert not bad["passed"] and bad["inner_zeros"]["max_abs_diff"] > 1e-2


def test_limits_devices_and_device_timing(graphs):
    exact, fast = graphs
    small = OrtBackend(fast, max_batch=4, max_len=32)
    router = RightPaddingRouter(OrtBackend(exact), small)
    assert (router.max_batch, router.max_len) == (4, 32) and router.name.endswith("-rightpad")
    ids, seg = sample_feed(2, 8, VOCAB, pad_inside=False)
    with pytest.raises(NotImplementedError, match="does not time its device work alone"):
        router.device_compute_ms(ids, seg, 3)  # CPU backends time no device work alone
    assert device_times(router, ids, seg, 3) == []  # ... so the benchmark records none
    router.close()

    class Gpu(OrtBackend):
        """Stands in for a GPU backend: on another device, and timing its device work alone."""

        def __init__(self, path):
            super().__init__(path)
            self.device = "cuda"

        def device_compute_ms(self, input_ids, segment_ids, iters):
            return [1.0] * iters

    timed = RightPaddingRouter(Gpu(exact), Gpu(fast))
    assert timed.device_compute_ms(ids, seg, 3) == [1.0, 1.0, 1.0] and device_times(timed, ids, seg, 2) == [1.0, 1.0]
    with pytest.raises(ConfigError, match="two backends on one device"):
        RightPaddingRouter(Gpu(exact), OrtBackend(fast))
