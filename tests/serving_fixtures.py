"""Fixtures of the serving tests: a tiny exported model, its model repository and one real Triton server.

The server is started once per test module that asks for it (``served``) and stopped at the end, where the stop
must be clean (:func:`assert_clean_stop`); every test that stops or breaks it starts it again.
:func:`assert_released` checks that a stopped server's process and ports are gone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.io import sha256_file
from helpers.serving.repository import RepositoryConfig, Sources, write_repository
from helpers.serving.server import ServerConfig, TritonServer, port_open
from helpers.tokenizer import save_vocab

LABELS = ["negative", "positive"]
#: The models of the tests' repository that the bundled server (Python backend only) loads.
LOADED_HERE = {"sentiment", "sentiment_nobatch", "tokenizer", "postprocess"}


@pytest.fixture(scope="session")
def sources(tmp_path_factory, sentences, tokenizer) -> Sources:
    import torch

    from helpers.config import MODEL_SIZES
    from helpers.export import onnx_from_classifier
    from helpers.model import SentimentClassifier, bert_config

    folder = tmp_path_factory.mktemp("serving-src")
    torch.manual_seed(0)
    model = SentimentClassifier(bert_config(MODEL_SIZES["tiny"], tokenizer.vocab_size), num_labels=2).eval()
    onnx_from_classifier(model, folder / "model.onnx", labels=LABELS, max_len=tokenizer.max_len, model_size="tiny")
    save_vocab(tokenizer.vocab, folder / "vocab.txt")
    return Sources(folder / "vocab.txt", sha256_file(folder / "vocab.txt"), LABELS, tokenizer.max_len,
                   {"plain": folder / "model.onnx"})


@pytest.fixture(scope="session")
def repository(tmp_path_factory, sources):
    return write_repository(tmp_path_factory.mktemp("serving") / "model_repository", sources, RepositoryConfig(threads=1))


def assert_released(server: TritonServer) -> None:
    """The stopped server left no process and no open port behind."""
    state = server.state
    assert state is not None
    assert not server.is_alive()
    assert not os.path.exists(f"/proc/{state.pid}") or Path(f"/proc/{state.pid}/stat").read_text().split(") ")[-1][:1] == "Z"
    for port in (state.http_port, state.grpc_port, state.metrics_port):
        assert not port_open(state.host, port), f"port {port} still open after stop()"


def assert_clean_stop(server: TritonServer, exit_code: int | None) -> None:
    """The server unloaded its models and exited 0 (not after its exit timeout), and let go of everything."""
    log = Path(server.state.log).read_text(encoding="utf-8", errors="replace") if Path(server.state.log).is_file() else ""
    assert exit_code == 0, f"exit code {exit_code}; the log ends:\n{log[-2000:]}"
    assert "Exit timeout expired" not in log and "failed to stop server" not in log
    assert_released(server)


@pytest.fixture(scope="module")
def served(repository, tmp_path_factory):
    server = TritonServer(repository.root, ServerConfig(start_timeout_s=240),
                          tmp_path_factory.mktemp("triton-work"))
    server.start()
    yield server
    assert_clean_stop(server, server.stop())
