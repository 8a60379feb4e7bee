"""The TensorRT code that notebooks 04 and 05 show is the code these tests run.

* 04's build cells (tagged ``build-engine``) run for real with NVIDIA's TensorRT-RTX builder, which needs no GPU, on
  02's two graphs of a tiny classifier, next to :func:`helpers.trt.ensure_engine` on the same graph and profiles: both
  must give the same network I/O, profiles and precision (TensorRT-RTX compiles ahead of time without timing
  kernels, so the two engines are even byte for byte the same). The helpers builder cannot drift away from the
  build the reader copies.
* 05's runtime cells (tagged ``trt-runtime``) cannot run on any machine here, so they run against the strict doubles
  of tests/trt_doubles.py (held to the real TensorRT classes by tests/test_trt_doubles.py) with the real buffer
  bookkeeping over numpy memory: the answers, the order TensorRT demands (profile before shapes, shapes before
  addresses, every tensor's address before ``execute_async_v3``), and the same calls as
  :class:`~helpers.backends.TensorRTBackend` makes.

Each cell's source is executed as it stands in the notebook, in a namespace holding only what the notebook defines
before it (``trt`` and ``logger``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import helpers.backends.tensorrt as tensorrt_backend
from helpers.backends import TensorRTBackend
from helpers.config import ArtifactPaths
from helpers.data import length_stats
from helpers.trt import compat
from helpers.trt.builder import engine_files, ensure_engine
from helpers.trt.metadata import engine_validity
from helpers.trt.profiles import ProfileSet, ShapeProfile, choose_profiles
from helpers.trt.smoke import smoke_onnx

from trt_doubles import EngineDouble, engine_on_disk, module_with_runtime, numpy_buffers, refuse, running_here

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
rtx = compat.import_tensorrt("tensorrt-rtx")
lean = pytest.importorskip("tensorrt_lean_bindings", reason="pip install -r environment/requirements-trt-check.txt")


def tagged_cells(notebook: str, tag: str) -> str:
    """The source of every code cell of ``notebook`` tagged ``tag``, in order."""
    cells = json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) for c in cells if tag in c.get("metadata", {}).get("tags", [])]
    assert sources, f"{notebook} has no cell tagged {tag!r}"
    return "\n\n".join(sources)


def run_cells(notebook: str, tag: str, **names) -> dict:
    namespace = dict(names)
    exec(compile(tagged_cells(notebook, tag), f"{notebook} [{tag}]", "exec"), namespace)
    return namespace


# ------------------------------------------------------------------------------------------- 04's build
@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """02's two graphs of a tiny random classifier below artifacts/onnx/."""
    from helpers.bench.models import architecture_model
    from helpers.export import ONNX_FILES, onnx_from_classifier
    from helpers.onnx_variants import fp16_onnx_from_plain

    paths = ArtifactPaths.at(tmp_path_factory.mktemp("artifacts"))
    paths.onnx.mkdir(parents=True)
    arch = architecture_model("tiny", 120, seed=1)
    onnx_from_classifier(arch.model, paths.onnx / ONNX_FILES["plain"], labels=list(arch.labels), max_len=64,
                         model_size="tiny")
    fp16_onnx_from_plain(paths.onnx / ONNX_FILES["plain"], paths.onnx / ONNX_FILES["fp16"])
    return paths


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_04s_build_cells_and_ensure_engine_build_the_same_engine(artifacts, precision, tmp_path):
    lengths = np.random.default_rng(0).lognormal(3.0, 0.6, 2000).astype(int) + 2
    profile_set = choose_profiles(length_stats(lengths, 64), "1,8,32")
    onnx_path, engine_path = engine_files(artifacts, precision)
    cells = run_cells("04_build_engine", "build-engine", trt=rtx, logger=rtx.Logger(rtx.Logger.WARNING))
    builder, network, parser = cells["parse_onnx"](onnx_path)
    config = cells["configure"](builder, profile_set, 512)
    by_hand = cells["build_engine"](builder, network, config, tmp_path / f"by_hand.{precision}.engine")
    assert sorted(p.name for p in tmp_path.iterdir()) == [by_hand.name]  # written in one step, no temporary left

    meta = ensure_engine(onnx_path, engine_path, profile_set, workspace_mib=512, trt=rtx)
    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    tensors += [network.get_output(i) for i in range(network.num_outputs)]
    assert {t.name: (np.dtype(rtx.nptype(t.dtype)).name, tuple(t.shape)) for t in tensors} == {
        "input_ids": ("int32", (-1, -1)), "segment_ids": ("int32", (-1, -1)), "logits": ("float32", (-1, 2))}
    assert {t.name: np.dtype(rtx.nptype(t.dtype)).name for t in tensors} == {**meta.input_dtypes, **meta.output_dtypes}
    assert config.num_optimization_profiles == len(meta.profiles) == len(profile_set.profiles) > 1
    assert meta.profile_set().profiles == profile_set.profiles and meta.precision == precision
    assert not {"MALFORMED_ENGINE", "VERSION_MISMATCH"} & set(engine_validity(by_hand, rtx).diagnostics)
    assert by_hand.read_bytes() == engine_path.read_bytes(), "04's cells and ensure_engine built different engines"


def test_04s_parse_cell_reports_every_parser_error(tmp_path):
    import onnx

    model = onnx.load(str(smoke_onnx(tmp_path / "model.onnx")))
    node = model.graph.node[-1]
    node.op_type = "MatMul"  # MatMul with one input: TensorRT's parser refuses it
    del node.input[1]
    node.ClearField("attribute")
    onnx.save(model, str(tmp_path / "model.onnx"))
    cells = run_cells("04_build_engine", "build-engine", trt=rtx, logger=rtx.Logger(rtx.Logger.ERROR))
    with pytest.raises(RuntimeError, match=r"TensorRT cannot parse model.onnx:\nIn node 4 .*operator: MatMul .*INVALID_NODE"):
        cells["parse_onnx"](tmp_path / "model.onnx")


def test_04s_configure_cell_checks_the_profile_index_tensorrt_returns():
    cells = run_cells("04_build_engine", "build-engine", trt=rtx, logger=rtx.Logger(rtx.Logger.ERROR))
    bad = object.__new__(ShapeProfile)  # min above opt: past this project's own check, TensorRT refuses it
    for key, value in dict(min_batch=8, opt_batch=4, max_batch=16, min_len=1, opt_len=8, max_len=16).items():
        object.__setattr__(bad, key, value)
    with pytest.raises(AssertionError, match=r"TensorRT refused batch 8-16 \(opt 4\)"):
        cells["configure"](rtx.Builder(rtx.Logger(rtx.Logger.ERROR)), ProfileSet((bad,)), 64)


# ------------------------------------------------------------------------------------------ 05's runtime
PROFILES = [((1, 1), (1, 48), (1, 64)), ((2, 1), (16, 48), (16, 64))]


def runtime_cells(engine):
    return run_cells("05_infer", "trt-runtime", trt=module_with_runtime(lean, engine),
                     logger=compat.capturing_logger(lean, echo=False))


def feed(batch, seq, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 500, (batch, seq), dtype=np.int32), rng.integers(0, 2, (batch, seq), dtype=np.int32)


def test_05s_runtime_cells_run_batches_on_the_profile_they_are_given(tmp_path):
    buffers = numpy_buffers()
    engine = EngineDouble(lean, PROFILES, buffers.memory)
    cells = runtime_cells(engine)
    runtime, opened, context = cells["open_engine"](engine_on_disk(tmp_path, lean), buffers)
    assert opened is engine and context is engine.contexts[-1]
    assert {n: s.shape for n, s in buffers.sizes.items()} == {"input_ids": (16, 64), "segment_ids": (16, 64),
                                                              "logits": (16, 2)}
    profile_set = ProfileSet.from_dicts([dict(zip(("min_batch", "opt_batch", "max_batch"), (lo[0], opt[0], hi[0])))
                                         | dict(zip(("min_len", "opt_len", "max_len"), (lo[1], opt[1], hi[1])))
                                         for lo, opt, hi in PROFILES])
    for batch, seq in [(1, 5), (16, 64), (3, 17), (1, 64)]:
        ids, seg = feed(batch, seq, seed=batch * seq)
        start = len(context.calls)
        logits = cells["run_batch"](engine, context, buffers, ids, seg, profile_set.select(batch, seq))
        np.testing.assert_array_equal(logits, np.stack([ids.sum(1), seg.sum(1)], 1).astype(np.float32))
        calls = [name for name, _ in context.calls[start:]]
        switch = ["set_optimization_profile_async"] if calls[0] == "set_optimization_profile_async" else []
        assert calls == switch + ["set_input_shape"] * 2 + ["set_tensor_address"] * 3 + ["execute_async_v3"]
        assert {args[0] for name, args in context.calls[start:] if name == "set_tensor_address"} == {
            "input_ids", "segment_ids", "logits"}
    switches = [args[0] for name, args in context.calls if name == "set_optimization_profile_async"]
    assert switches == [1, 0]  # only when the shape needs another profile than the active one
    kept = logits.copy()
    cells["run_batch"](engine, context, buffers, *feed(1, 3, seed=9), 0)
    np.testing.assert_array_equal(logits, kept)  # the returned logits are a copy, not the reused pinned buffer


def test_05s_runtime_cells_make_the_same_calls_as_the_backend(tmp_path, monkeypatch):
    monkeypatch.setattr(tensorrt_backend, "running_target", lambda trt, device: running_here(trt))
    path = engine_on_disk(tmp_path, lean)
    shapes = [(1, 9), (3, 9), (3, 40), (1, 2), (16, 64)]

    buffers = numpy_buffers()
    engine = EngineDouble(lean, PROFILES, buffers.memory)
    cells = runtime_cells(engine)
    _, _, context = cells["open_engine"](path, buffers)
    backend_buffers = numpy_buffers()
    backend_engine = EngineDouble(lean, PROFILES, backend_buffers.memory)
    backend = TensorRTBackend(path, buffers=backend_buffers, trt=module_with_runtime(lean, backend_engine))
    for batch, seq in shapes:
        ids, seg = feed(batch, seq)
        by_cells = cells["run_batch"](engine, context, buffers, ids, seg, backend.profile_set.select(batch, seq))
        np.testing.assert_array_equal(by_cells, backend.predict_logits(ids, seg))

    def calls(ctx):
        return [(name, args[:-1] if name == "set_tensor_address" else args) for name, args in ctx.calls]

    assert calls(context) == calls(backend_engine.contexts[-1])
    backend.close()


@pytest.mark.parametrize("method", ["set_optimization_profile_async", "set_input_shape", "set_tensor_address",
                                    "execute_async_v3"])
def test_05s_runtime_cells_stop_on_every_false_from_tensorrt(tmp_path, method):
    buffers = numpy_buffers()
    engine = EngineDouble(lean, PROFILES, buffers.memory)
    cells = runtime_cells(engine)
    _, _, context = cells["open_engine"](engine_on_disk(tmp_path, lean), buffers)
    refuse(context, method, f"{method}: Error Code 3: API Usage Error (double says no)")
    with pytest.raises(AssertionError):
        cells["run_batch"](engine, context, buffers, *feed(3, 4), 1)


def test_05s_open_cell_stops_when_tensorrt_cannot_deserialize(tmp_path):
    cells = runtime_cells(None)  # the runtime double logs TensorRT's error and returns None
    with pytest.raises(AssertionError, match="TensorRT could not deserialize model.fp16.engine"):
        cells["open_engine"](engine_on_disk(tmp_path, lean), numpy_buffers())
