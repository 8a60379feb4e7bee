"""environment/gpu/check_buffers.py, run on the CPU with numpy "device" buffers.

On a GPU the script checks cuda-python, pycuda and torch buffers (results/gpu/); here the same script runs with
the NumpyMemory double (tests/trt_doubles.py) so that its tokenising, sizing, comparing, closing checks and
reporting are tested in CI, and each kind of regression it exists to catch is shown to fail it: a corrupted
copy, a close that frees twice, and a failed allocation that leaks what it made or leaves a context pushed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from helpers.trt.buffers import DeviceBuffers, tensor_bytes

from trt_doubles import NumpyMemory

SCRIPT = Path(__file__).resolve().parents[1] / "environment" / "gpu" / "check_buffers.py"
ARGS = ["--max-len", "32", "--batch-sizes", "1,4", "--kinds", "numpy"]


class ContextMemory(NumpyMemory):
    """NumpyMemory that pushes a "context" when opened and pops it when closed, as pycuda does."""

    stack: list[int] = []

    def __init__(self, device=0):
        super().__init__(device)
        self.stack.append(id(self))

    def close(self):
        super().close()
        assert self.stack.pop() == id(self), "contexts popped out of order"


@pytest.fixture()
def script(monkeypatch):
    spec = importlib.util.spec_from_file_location("check_buffers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    opened: list[DeviceBuffers] = []
    ContextMemory.stack = []

    def make(kind, device):
        opened.append(DeviceBuffers(ContextMemory(device)))
        return opened[-1]

    def live(ptr):
        return next((b.memory.blocks[ptr] for b in opened if ptr in b.memory.blocks), None)

    monkeypatch.setattr(module, "make_buffers", make)
    monkeypatch.setattr(module, "buffer_kind_status", lambda kind: (True, "numpy double"))
    monkeypatch.setattr(module, "device_readback", lambda ptr, n: live(ptr)[:n].tobytes())
    monkeypatch.setattr(module, "released", lambda kind, device, ptrs, before: all(live(p) is None for p in ptrs))
    monkeypatch.setattr(module, "current_context", lambda: ContextMemory.stack[-1] if ContextMemory.stack else 0)
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


def run(script, corpus, tmp_path):
    out = tmp_path / "result.json"
    rc = script.main(["--corpus", str(corpus), "--out", str(out), *ARGS])
    return rc, json.loads(out.read_text(encoding="utf-8"))


def test_round_trips_every_batch_checks_closing_and_reports(script, corpus, tmp_path):
    rc, report = run(script, corpus, tmp_path)
    assert rc == 0 and report["all_ok"] is True
    result = report["results"]["numpy"]
    assert result["mismatches"] == 0 and result["released_after_close"] is True
    assert result["second_close_error"] is None and result["use_after_close_refused"] is True
    failed = result["failed_allocation"]
    assert failed["ok"] and failed["error"].startswith("BackendError: numpy-double: cannot allocate 1125899906842624 bytes")
    assert report["buffer_sizes"][0] == {"tensor": "input_ids", "dtype": "int32", "max shape": "4x32", "bytes": 512}
    shapes = [tuple(b["shape"]) for b in report["batches"]]
    assert (4, 32) in shapes and shapes[-1] == (4, 32)  # the profile maximum itself is round-tripped
    assert result["bytes_round_tripped"] == sum(2 * b * s * 4 + b * 2 * 4 for b, s in shapes)
    assert all(b.memory.blocks == {} and not b.memory.open for b in script.opened)  # everything freed and popped


def test_a_corrupted_copy_fails_the_check(script, corpus, tmp_path, monkeypatch):
    original = NumpyMemory.to_host

    def flip_a_bit(self, host, ptr):
        original(self, host, ptr)
        host[0] ^= 1

    monkeypatch.setattr(NumpyMemory, "to_host", flip_a_bit)
    rc, report = run(script, corpus, tmp_path)
    assert rc == 1 and report["all_ok"] is False and report["results"]["numpy"]["mismatches"] > 0


def test_a_close_that_frees_twice_fails_the_check(script, corpus, tmp_path, monkeypatch):
    def close_without_guard(self):
        for name in reversed(list(self._buffers)):
            self.memory.free(*self._buffers[name])  # forgets what it freed: the second close frees again
        self.memory.close()

    monkeypatch.setattr(DeviceBuffers, "close", close_without_guard)
    rc, report = run(script, corpus, tmp_path)
    result = report["results"]["numpy"]
    assert rc == 1 and result["ok"] is False and result["second_close_error"].startswith("KeyError")


def test_a_failed_allocation_that_leaks_fails_the_check(script, corpus, tmp_path, monkeypatch):
    def allocate_without_cleanup(self, sizes):
        for spec in sizes:  # the old behaviour: buffers made before the failure stay, the context stays pushed
            self._buffers[spec.name] = self.memory.alloc(max(1, tensor_bytes(spec)))
            self.sizes[spec.name] = spec
        return self

    monkeypatch.setattr(DeviceBuffers, "allocate", allocate_without_cleanup)
    rc, report = run(script, corpus, tmp_path)
    failed = report["results"]["numpy"]["failed_allocation"]
    assert rc == 1 and failed["error"].startswith("BackendError") and failed["released"] is False
    assert failed["context_restored"] is False and failed["ok"] is False
