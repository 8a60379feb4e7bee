"""environment/gpu/check_buffers.py, run on the CPU with numpy "device" buffers.

On a GPU the script checks cuda-python, pycuda and torch buffers (results/gpu/buffers_h100.json); here the
same script runs with the NumpyBuffers double so that its tokenising, planning, comparing and reporting are
tested in CI, and a corrupted round trip is shown to fail it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from trt_doubles import NumpyBuffers

SCRIPT = Path(__file__).resolve().parents[1] / "environment" / "gpu" / "check_buffers.py"


@pytest.fixture()
def script(monkeypatch):
    spec = importlib.util.spec_from_file_location("check_buffers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    opened = []

    def make(kind, device):
        opened.append(NumpyBuffers())
        return opened[-1]

    monkeypatch.setattr(module, "make_buffers", make)
    monkeypatch.setattr(module, "buffer_kind_status", lambda kind: (True, "numpy double"))
    monkeypatch.setattr(module, "device_readback", lambda ptr, n: opened[-1].memory[ptr][:n].tobytes())
    module.opened = opened
    return module


@pytest.fixture()
def corpus(tmp_path, sentences):
    texts, labels = sentences
    folder = tmp_path / "corpus"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, label in (("neg.txt", 0), ("pos.txt", 1)):
        base = [t for t, y in zip(texts, labels) if y == label]
        lines = [f"{base[i % len(base)]}{'很' * int(rng.integers(0, 20))}{i}" for i in range(40)]
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_round_trips_every_batch_and_reports(script, corpus, tmp_path):
    out = tmp_path / "result.json"
    rc = script.main(["--corpus", str(corpus), "--out", str(out), "--max-len", "32", "--batch-sizes", "1,4",
                      "--kinds", "numpy"])
    report = json.loads(out.read_text(encoding="utf-8"))
    assert rc == 0 and report["all_ok"] is True
    result = report["results"]["numpy"]
    assert result["mismatches"] == 0 and result["pointers_reused"] and result["closed_twice"]
    assert report["buffer_plan"][0] == {"tensor": "input_ids", "direction": "input", "dtype": "int32",
                                        "max shape": "4x32", "bytes": 512}
    shapes = [tuple(b["shape"]) for b in report["batches"]]
    assert (4, 32) in shapes and shapes[-1] == (4, 32)  # the profile maximum itself is round-tripped
    assert result["bytes_round_tripped"] == sum(2 * b * s * 4 + b * 2 * 4 for b, s in shapes)
    assert script.opened[-1].memory == {}  # everything freed


def test_a_corrupted_copy_fails_the_check(script, corpus, tmp_path, monkeypatch):
    original = NumpyBuffers._dtoh

    def flip_a_bit(self, host, mem, nbytes):
        original(self, host, mem, nbytes)
        host[0] ^= 1

    monkeypatch.setattr(NumpyBuffers, "_dtoh", flip_a_bit)
    out = tmp_path / "result.json"
    rc = script.main(["--corpus", str(corpus), "--out", str(out), "--max-len", "32", "--batch-sizes", "1,4",
                      "--kinds", "numpy"])
    report = json.loads(out.read_text(encoding="utf-8"))
    assert rc == 1 and report["all_ok"] is False and report["results"]["numpy"]["mismatches"] > 0
