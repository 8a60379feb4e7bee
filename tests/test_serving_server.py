"""A real Triton server (the bundled binary, Python backend) over the tiny model: start, query, faults, stop.

Every test leaves the module's server running (a test that stops it starts it again); the fixture stops it at
the end and checks that no process or port is left behind.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from helpers.backends import Classifier, OrtBackend
from helpers.errors import ServingError
from helpers.serving.client import (TritonClassifier, model_statistics, statistics_after, stats_delta, text_input,
                                   wait_idle)
from helpers.serving.load import LoadSpec, run_load
from helpers.serving.server import ServerConfig, TritonServer
from serving_fixtures import LOADED_HERE, assert_released, repository, served, sources  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def reference(sources, tokenizer):  # noqa: F811
    backend = OrtBackend(sources.files["plain"])
    yield Classifier(tokenizer, backend, sources.labels)
    backend.close()


def _alive_after(server) -> None:
    assert server.is_alive() and server.is_ready(), server.log_tail()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_served_labels_equal_the_classifier(served, reference, sentences, protocol):  # noqa: F811
    texts = sentences[0]
    url = served.http_url if protocol == "http" else served.grpc_url
    with TritonClassifier(url, protocol) as client:
        answer = client.predict(texts)
    expected = reference.predict(texts)
    assert answer.labels == expected.labels
    np.testing.assert_allclose(answer.probabilities, expected.probabilities, atol=1e-5)


def test_the_server_loads_the_models_it_has_a_backend_for_and_says_why_not_the_others(served):  # noqa: F811
    assert set(served.state.models) == LOADED_HERE
    assert served.left_out["classifier_onnx"].startswith("no onnxruntime backend in this server")
    assert "a step of the ensemble (classifier_onnx)" in served.left_out["sentiment_onnx"]
    assert set(served.loaded_models()) == LOADED_HERE


def test_each_instance_reports_the_backend_it_runs_on(served):  # noqa: F811
    from helpers.serving.model import SentimentCore

    kinds = served.backends()
    assert set(kinds) >= {"sentiment_0_0", "sentiment_nobatch_0_0"}, kinds
    local = SentimentCore(served.repository / "sentiment" / "1", "cpu")  # the instance kind the tests' repository uses
    assert set(kinds.values()) == {local.choice.name}
    local.close()


def test_ensemble_parts_answer(served, tokenizer, sources):  # noqa: F811
    client = httpclient.InferenceServerClient(served.http_url)
    result = client.infer("tokenizer", [text_input("http", ["质量太差了", "好"])])
    ids = result.as_numpy("input_ids")
    expected = tokenizer.encode_batch(["质量太差了", "好"]).input_ids
    assert ids.shape == (2, 16) and ids.dtype == np.int32
    np.testing.assert_array_equal(ids[:, :expected.shape[1]], expected)
    logits = httpclient.InferInput("logits", [1, 2], "FP32")
    logits.set_data_from_numpy(np.array([[0.0, 1.0]], dtype=np.float32))
    post = client.infer("postprocess", [logits])
    assert post.as_numpy("LABEL")[0, 0] == b"positive"
    client.close()


def test_bad_sentences_get_clear_errors_and_the_server_lives(served, reference):  # noqa: F811
    client = TritonClassifier(served.http_url, "http")
    for payload, message in [([""], "TEXT #0 is empty"), ([b"\xff\xfeabc"], "is not valid UTF-8"),
                             (["好", "   "], "TEXT #1 is empty")]:
        with pytest.raises(InferenceServerException, match=message) as info:
            client.predict(payload)
        assert info.value.status() == "400"
    long_text = "这家酒店的服务很好，" * 500
    assert len(long_text) == 5000
    answer = client.predict([long_text])
    assert answer.labels == reference.predict([long_text]).labels
    client.close()
    _alive_after(served)


def test_wrong_tensor_name_dtype_shape_and_empty_batch(served):  # noqa: F811
    client = httpclient.InferenceServerClient(served.http_url)
    wrong_name = text_input("http", ["好"], name="SENTENCE")
    with pytest.raises(InferenceServerException, match="unexpected inference input 'SENTENCE'"):
        client.infer("sentiment", [wrong_name])
    wrong_dtype = httpclient.InferInput("TEXT", [1, 1], "FP32")
    wrong_dtype.set_data_from_numpy(np.zeros((1, 1), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="data-type is 'FP32', but model 'sentiment' expects 'BYTES'"):
        client.infer("sentiment", [wrong_dtype])
    wrong_shape = text_input("http", np.array([[b"a", b"b"]], dtype=object))
    with pytest.raises(InferenceServerException, match="unexpected shape for input 'TEXT'"):
        client.infer("sentiment", [wrong_shape])
    empty = text_input("http", np.zeros((0, 1), dtype=object))
    with pytest.raises(InferenceServerException) as info:
        client.infer("sentiment", [empty])
    assert "TEXT" in str(info.value) or "batch" in str(info.value).lower()
    client.close()
    _alive_after(served)


def test_a_thousand_sentences_in_one_request_and_more_refused(served, reference, sentences):  # noqa: F811
    texts = [sentences[0][i % 12] for i in range(1000)]
    with TritonClassifier(served.grpc_url, "grpc") as client:
        answer = client.predict(texts)
        assert answer.labels == reference.predict(texts).labels
        with pytest.raises(InferenceServerException, match="batch-size must be <= 1024"):
            client.predict(texts + texts[:25])
    _alive_after(served)


def test_client_timeout_is_reported_and_harmless(served, sentences):  # noqa: F811
    texts = [sentences[0][i % 12] * 20 for i in range(300)]
    client = grpcclient.InferenceServerClient(served.grpc_url)
    with pytest.raises(InferenceServerException) as info:
        client.infer("sentiment", [text_input("grpc", texts)], client_timeout=0.001)
    assert "DEADLINE_EXCEEDED" in str(info.value.status())
    client.close()
    result = run_load(LoadSpec(served.http_url, "http", concurrency=2, requests=4, sentences_per_request=300,
                               timeout_s=0.001), texts)
    assert result.sent == 4 and result.failed["timeout"] == 4 and result.answered == 0
    http = httpclient.InferenceServerClient(served.http_url)
    wait_idle(http, "http", "sentiment")  # the abandoned requests run to the end on the server
    http.close()
    _alive_after(served)


def test_statistics_show_the_batches_formed(served, sentences):  # noqa: F811
    client = httpclient.InferenceServerClient(served.http_url)
    before = wait_idle(client, "http", "sentiment")
    result = run_load(LoadSpec(served.http_url, "http", "sentiment", concurrency=8, requests=64), sentences[0])
    after = statistics_after(client, "http", "sentiment", before, result.answered)
    stats = stats_delta(before, after)
    assert result.answered == 64 and stats.requests == 64 and stats.inferences == 64
    assert sum(size * n for size, n in stats.batches.items()) == 64 and stats.executions == sum(stats.batches.values())
    assert stats.queue_ms >= 0 and stats.compute_ms > 0
    grpc = grpcclient.InferenceServerClient(served.grpc_url)
    assert model_statistics(grpc, "grpc", "sentiment")["inference_count"] >= after["inference_count"]
    client.close()
    grpc.close()


def test_server_stopped_mid_load_every_request_counted_then_restarts(served, sentences):  # noqa: F811
    stopped, end = threading.Event(), threading.Event()

    def stop_then_end() -> None:
        served.stop()
        time.sleep(0.3)  # keep sending to the stopped server for a moment
        end.set()

    def stop_half_way(answered: int) -> None:
        if answered == 30 and not stopped.is_set():
            stopped.set()
            threading.Thread(target=stop_then_end).start()

    result = run_load(LoadSpec(served.http_url, "http", concurrency=4, requests=0, duration_s=60, timeout_s=5),
                      sentences[0], stop=end, on_answer=stop_half_way)
    assert stopped.is_set() and end.is_set() and result.answered >= 30 and result.wall_s < 60
    assert result.failures > 0 and result.sent == result.answered + result.failures
    expected = {"server unavailable", "connection closed by the server", "timeout"}
    assert all(k in expected or k.startswith("server error") for k in result.failed), result.failed
    time.sleep(0.5)
    assert_released(served)
    served.start()
    with TritonClassifier(served.http_url, "http") as client:
        assert len(client.predict(sentences[0][:2])) == 2


def test_a_stop_unloads_the_models_and_exits_0_leaving_no_temporary_folder(repository):  # noqa: F811
    server = TritonServer(repository.root, ServerConfig(models=("sentiment", "tokenizer"))).start()
    assert server.workdir.name.startswith("triton-") and server.workdir.is_dir()
    assert sorted(server.loaded_models()) == ["sentiment", "tokenizer"]
    exit_code = server.stop()
    assert exit_code == 0 and server.released() and not server.workdir.exists()
    assert server.stop() == 0  # a second stop changes nothing


def test_detached_server_is_stopped_from_its_state_file(repository, tmp_path, sentences):  # noqa: F811
    server = TritonServer(repository.root, ServerConfig(models=("sentiment",)), tmp_path / "work").start(detach=True)
    state = server.save_state(tmp_path / "server.json")
    handle = TritonServer.from_state(state)
    assert handle.is_alive() and handle.is_ready()
    with TritonClassifier(handle.http_url, "http") as client:
        assert len(client.predict(sentences[0][:1])) == 1
    handle.stop()
    server.process.wait(timeout=10)
    assert_released(handle)


def test_start_failures_are_explained(tmp_path, repository):  # noqa: F811
    with pytest.raises(ServingError, match="no model repository"):
        TritonServer(tmp_path / "nothing").start()
    broken = tmp_path / "broken"
    (broken / "sentiment" / "1").mkdir(parents=True)
    (broken / "sentiment" / "config.pbtxt").write_text(
        (repository.root / "sentiment" / "config.pbtxt").read_text())  # no model.py, no serving.json
    started = time.monotonic()
    server = TritonServer(broken, ServerConfig(start_timeout_s=60))
    with pytest.raises(ServingError, match="models failed to load") as info:
        server.start()
    assert "Python model file not found" in str(info.value) and time.monotonic() - started < 50
    assert_released(server)
    assert not server.workdir.exists()  # its temporary folder went with it
