"""ensure_engine building REAL engines with NVIDIA's TensorRT-RTX builder, on a machine without a GPU.

TensorRT-RTX (``tensorrt_rtx_bindings``, installed by environment/requirements-trt-check.txt) compiles
engines ahead of time without a GPU, with the TensorRT 11 Python API. These tests build 02's graphs of a
tiny random classifier (model.onnx -> FP32, model.fp16.onnx -> FP16) with the multi-profile set 04 chooses
from 01-style length statistics, and check what came out, when it is kept and when it is rebuilt.

What can be read back without a GPU, and how:

* the engine's I/O dtypes and profiles come from the sidecar the build writes. Reading them from the engine
  itself would need ``Runtime.deserialize_cuda_engine``, which in TensorRT-RTX 1.7 needs a CUDA driver: without
  one it returns None after "Error Code 1: Cuda Runtime (... cudaError 35: CUDA driver version is insufficient
  for CUDA runtime version)" (asserted below where no GPU is present);
* the engine file itself is checked with TensorRT-RTX's ``Runtime.get_engine_validity``, which reads only the
  header and answers without a GPU: a real engine is well formed, a damaged one is MALFORMED_ENGINE.

A test of the full-TensorRT timing-cache path runs the same real TensorRT-RTX classes under a module named
``tensorrt`` (so that helpers takes its full-TensorRT branch): every cache call is NVIDIA's own code.
"""

from __future__ import annotations

import re
import types
import warnings

import numpy as np
import onnx
import pytest

from helpers.config import ArtifactPaths
from helpers.data import length_stats
from helpers.errors import (BackendError, ConfigError, EngineMismatchError, ExportError, MissingArtifactError,
                            TensorRTUnavailableError)
from helpers.export import ONNX_FILES
from helpers.machine import visible_gpus
from helpers.trt import compat
from helpers.trt.builder import (DEFAULT_WORKSPACE_MIB, RTX_TIMING_CACHE_NOTE, engine_files, ensure_engine,
                                 workspace_advice)
from helpers.trt.metadata import NO_GPU, EngineTarget, engine_validity, read_metadata, sidecar_path
from helpers.trt.profiles import ProfileSet, ShapeProfile, choose_profiles
from helpers.trt.smoke import smoke_onnx

rtx = compat.import_tensorrt("tensorrt-rtx")  # fails with the install command if the test environment lacks it
HAS_GPU = bool(visible_gpus())
ONE = ProfileSet((ShapeProfile(1, 1, 2, 1, 8, 16),))


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    """02's two graphs of a tiny random classifier: model.onnx (FP32) and model.fp16.onnx."""
    from helpers.bench.models import architecture_model
    from helpers.export import onnx_from_classifier
    from helpers.onnx_variants import fp16_onnx_from_plain

    folder = tmp_path_factory.mktemp("artifacts") / "onnx"
    folder.mkdir()
    arch = architecture_model("tiny", 120, seed=1)
    onnx_from_classifier(arch.model, folder / ONNX_FILES["plain"], labels=list(arch.labels), max_len=64, model_size="tiny")
    fp16_onnx_from_plain(folder / ONNX_FILES["plain"], folder / ONNX_FILES["fp16"])
    return folder


@pytest.fixture(scope="module")
def profile_set():
    """04's choice from 01-style length statistics (a long tail, batches 1..32): several profiles."""
    lengths = np.random.default_rng(0).lognormal(3.0, 0.6, 2000).astype(int) + 2
    chosen = choose_profiles(length_stats(lengths, 64), "1,8,32")
    assert len(chosen.profiles) > 1
    return chosen


@pytest.fixture(scope="module")
def artifacts(onnx_dir):
    """The ArtifactPaths whose onnx/ folder holds 02's two graphs."""
    return ArtifactPaths.at(onnx_dir.parent)


@pytest.fixture(scope="module")
def built(artifacts, profile_set):
    """Both precisions built once for the module, with TensorRT-RTX: {precision: (metadata, engine path)}."""
    results = {}
    for precision in ("fp32", "fp16"):
        onnx_path, engine_path = engine_files(artifacts, precision)
        results[precision] = ensure_engine(onnx_path, engine_path, profile_set, trt=rtx), engine_path
    return results


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_real_build_has_the_contract_io_every_profile_and_the_graphs_precision(built, profile_set, precision, capsys):
    meta, engine_path = built[precision]
    with capsys.disabled():
        print(f"\n  TensorRT-RTX {rtx.__version__} built {engine_path.name} from {meta.onnx_file}: "
              f"{engine_path.stat().st_size / 2**20:.2f} MiB in {meta.build_seconds:.2f} s, {len(meta.profiles)} profiles "
              f"{[p['opt_batch'] for p in meta.profiles]}x{[p['opt_len'] for p in meta.profiles]} (opt)")
    assert meta == read_metadata(engine_path)
    assert meta.onnx_file == ONNX_FILES["plain" if precision == "fp32" else "fp16"]
    assert (meta.flavour, meta.tensorrt_version, meta.precision) == ("tensorrt-rtx", rtx.__version__, precision)
    assert meta.profile_set().profiles == profile_set.profiles
    assert meta.input_dtypes == {"input_ids": "int32", "segment_ids": "int32"} and meta.output_dtypes == {"logits": "float32"}
    assert meta.compute_capability == compat.RTX_PORTABLE_TARGETS and meta.workspace_bytes == DEFAULT_WORKSPACE_MIB << 20
    assert meta.gpu_name == (NO_GPU if not HAS_GPU else meta.gpu_name)
    verdict = engine_validity(engine_path, rtx)  # TensorRT-RTX reads the header as its own engine of this release
    assert not {"MALFORMED_ENGINE", "VERSION_MISMATCH"} & set(verdict.diagnostics), verdict


def test_fp16_engine_carries_the_fp16_graph(built):
    # Strongly typed: the FP16 graph's weights stay FP16, so its engine is smaller than the FP32 one. A build of
    # the FP32 graph for "fp16" (the old weakly typed path) would not be.
    fp32, fp16 = (built[p][1].stat().st_size for p in ("fp32", "fp16"))
    assert fp16 < 0.95 * fp32, (fp16, fp32)


def test_a_damaged_engine_is_malformed_to_tensorrt_rtx(built, tmp_path):
    damaged = tmp_path / "damaged.engine"
    damaged.write_bytes(b"\0" * 64 + built["fp32"][1].read_bytes()[64:])
    assert "MALFORMED_ENGINE" in engine_validity(damaged, rtx).diagnostics


@pytest.mark.skipif(HAS_GPU, reason="documents what happens without a GPU")
def test_without_a_gpu_the_engine_cannot_be_deserialized(built):
    logger = compat.capturing_logger(rtx, "ERROR", echo=False)
    runtime = rtx.Runtime(logger)
    assert runtime.deserialize_cuda_engine(built["fp16"][1].read_bytes()) is None
    assert any("cudaError 35" in m for m in logger.errors())


def test_rtx_builds_use_no_timing_cache(built):
    assert built["fp16"][0].timing_cache == RTX_TIMING_CACHE_NOTE
    assert not list(built["fp16"][1].parent.glob("timing-*.cache"))


# ------------------------------------------------------------------------------------- kept or rebuilt
def test_a_fitting_engine_is_kept_a_stale_one_rebuilt_and_never_means_never(tmp_path, capsys):
    onnx_path = smoke_onnx(tmp_path / "model.onnx")
    engine = tmp_path / "trt" / "model.fp32.engine"
    with pytest.raises(MissingArtifactError, match="no TensorRT engine at"):
        ensure_engine(onnx_path, engine, ONE, trt=rtx, rebuild="never")
    first = ensure_engine(onnx_path, engine, ONE, workspace_mib=64, trt=rtx)
    assert capsys.readouterr().out.startswith("building model.fp32.engine from model.onnx: no engine there yet")
    stamp = engine.stat().st_mtime_ns
    assert ensure_engine(onnx_path, engine, ONE, workspace_mib=64, trt=rtx, rebuild="never") == first
    assert ensure_engine(onnx_path, engine, ONE, workspace_mib=64, trt=rtx) == first
    assert engine.stat().st_mtime_ns == stamp and capsys.readouterr().out.startswith("kept model.fp32.engine")

    wider = ProfileSet((ShapeProfile(1, 1, 4, 1, 8, 16),))
    with pytest.raises(EngineMismatchError, match=r"built for the profiles .* asked for .*Rebuild it with 04_build_engine"):
        ensure_engine(onnx_path, engine, wider, trt=rtx, rebuild="never")
    assert ensure_engine(onnx_path, engine, wider, workspace_mib=64, trt=rtx).profile_set().profiles == wider.profiles
    assert "built for the profiles" in capsys.readouterr().out

    smoke_onnx(tmp_path / "other.onnx").replace(onnx_path)  # the same graph written again: same bytes, still fits
    ensure_engine(onnx_path, engine, wider, workspace_mib=64, trt=rtx)
    assert capsys.readouterr().out.startswith("kept")
    model = onnx.load(str(onnx_path))
    model.doc_string = "re-exported"
    onnx.save(model, str(onnx_path))
    with pytest.raises(EngineMismatchError, match="model.onnx changed since the build"):
        ensure_engine(onnx_path, engine, wider, trt=rtx, rebuild="never")
    rebuilt = ensure_engine(onnx_path, engine, wider, workspace_mib=64, trt=rtx, rebuild="always")
    assert "rebuild='always'" in capsys.readouterr().out and rebuilt.mismatches(onnx_path) == []
    with pytest.raises(ConfigError, match=r"rebuild must be one of \('never', 'stale', 'always'\), got True"):
        ensure_engine(onnx_path, engine, wider, trt=rtx, rebuild=True)


def test_a_refused_build_leaves_the_kept_pair_byte_for_byte(tmp_path):
    onnx_path = smoke_onnx(tmp_path / "model.onnx")
    engine = tmp_path / "model.fp32.engine"
    ensure_engine(onnx_path, engine, ONE, workspace_mib=64, trt=rtx)
    before = engine.read_bytes(), sidecar_path(engine).read_bytes()
    broken_onnx(onnx_path)
    with pytest.raises(BackendError, match="ONNX parser rejected"):
        ensure_engine(onnx_path, engine, ONE, trt=rtx)
    assert (engine.read_bytes(), sidecar_path(engine).read_bytes()) == before


def as_full_tensorrt(module):
    """The real TensorRT-RTX classes under the name ``tensorrt``: helpers then takes its full-TensorRT branch."""
    full = types.ModuleType("tensorrt")
    full.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
    full.__version__ = module.__version__
    return full


def test_full_tensorrt_timing_cache_is_written_offered_and_judged_by_tensorrt(tmp_path):
    trt = as_full_tensorrt(rtx)
    onnx_path = smoke_onnx(tmp_path / "model.onnx")
    h100 = EngineTarget(rtx.__version__, "NVIDIA H100 80GB HBM3", "9.0", "tensorrt")
    cache = tmp_path / f"timing-trt{rtx.__version__}-sm90.cache"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TensorRT-RTX deprecates its timing cache calls
        first = ensure_engine(onnx_path, tmp_path / "a.engine", ONE, workspace_mib=64, trt=trt, target=h100)
        written = cache.read_bytes()
        second = ensure_engine(onnx_path, tmp_path / "b.engine", ONE, workspace_mib=64, trt=trt, target=h100)
    assert len(written) > 0 and first.timing_cache == f"no timing cache yet: {cache.name} is written after this build"
    if HAS_GPU:
        assert second.timing_cache.startswith("reused")
    else:  # deserializing a cache needs CUDA: TensorRT says so, and the record says so instead of claiming a hit
        assert "was offered but TensorRT did not load it" in second.timing_cache
        assert "Failed to deserialize timing cache" in second.timing_cache
    assert read_metadata(tmp_path / "b.engine").flavour == "tensorrt"


def broken_onnx(path):
    """The smoke model with its last node turned into a MatMul that has one input (MatMul needs two)."""
    model = onnx.load(str(smoke_onnx(path)))
    node = model.graph.node[-1]
    node.op_type = "MatMul"
    del node.input[1]
    node.ClearField("attribute")
    onnx.save(model, str(path))
    return path


def test_parser_errors_reach_the_user_in_full(tmp_path):
    path = broken_onnx(tmp_path / "model.onnx")
    with pytest.raises(BackendError) as err:
        ensure_engine(path, tmp_path / "e.engine", ONE, trt=rtx)
    text = str(err.value)
    assert f"TensorRT-RTX {rtx.__version__}'s ONNX parser rejected model.onnx with 1 error(s):" in text
    assert "#0: Invalid Node - node_of_logits [code INVALID_NODE, node 4 '', op 'MatMul']" in text
    assert "TensorRT's log:" in text and "While parsing node number 4 [MatMul -> \"logits\"]" in text
    assert not (tmp_path / "e.engine").exists() and not sidecar_path(tmp_path / "e.engine").exists()


def test_a_graph_without_the_contract_io_is_refused(tmp_path):
    model = onnx.load(str(smoke_onnx(tmp_path / "model.onnx")))
    model.graph.output[0].name = model.graph.node[-1].output[0] = "scores"
    onnx.save(model, str(tmp_path / "model.onnx"))
    with pytest.raises(ExportError, match=r"outputs \['scores'\]; expected .*\['logits'\]. Re-export with 02_onnx_export"):
        ensure_engine(tmp_path / "model.onnx", tmp_path / "e.engine", ONE, trt=rtx)


def test_profile_with_min_above_opt_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"profile batch range must satisfy 1 <= min <= opt <= max with integers, "
                                          r"got min=8, opt=4, max=16"):
        ProfileSet.from_dicts([dict(min_batch=8, opt_batch=4, max_batch=16, min_len=1, opt_len=8, max_len=16)])
    # Had one slipped past that check, TensorRT refuses it too, and the build says so with TensorRT's words.
    bad = object.__new__(ShapeProfile)
    for key, value in dict(min_batch=8, opt_batch=4, max_batch=16, min_len=1, opt_len=8, max_len=16).items():
        object.__setattr__(bad, key, value)
    with pytest.raises(BackendError, match=r"refused optimization profile batch 8-16 \(opt 4\).*MIN<=OPT<=MAX"):
        ensure_engine(smoke_onnx(tmp_path / "m.onnx"), tmp_path / "e.engine", ProfileSet((bad,)), trt=rtx)


def test_too_small_a_workspace_is_explained_with_workspace_mib(artifacts, tmp_path):
    onnx_path, _ = engine_files(artifacts, "fp32")
    with pytest.raises(BackendError) as err:
        ensure_engine(onnx_path, tmp_path / "e.engine", ProfileSet((ShapeProfile(1, 8, 32, 1, 16, 64),)),
                      workspace_mib=1, trt=rtx)
    text = str(err.value)
    assert "within workspace limit" in text  # TensorRT's own message, in full
    assert "No kernel fits in the workspace limit of 1 MiB: build again with a larger workspace_mib" in text
    assert not (tmp_path / "e.engine").exists()


def test_out_of_memory_advice_names_workspace_mib():
    # The message TensorRT-RTX gave building BERT-base FP32 (profiles up to 64 x 512) with a 1 GiB workspace.
    h200 = "IBuilder::buildSerializedNetwork: Error Code 2: OutOfMemory (Requested size was 1482348552 bytes.)"
    assert workspace_advice([h200], 1024) == (
        "The builder asked for 1,414 MiB of workspace but workspace_mib is 1,024: build again with workspace_mib >= "
        "1,536 (ensure_engine(workspace_mib=...), or 04_build_engine's workspace_mib parameter).")
    assert "the GPU itself ran out of memory" in workspace_advice([h200], DEFAULT_WORKSPACE_MIB)
    assert workspace_advice(["Error Code 4: unsupported op"], 1024) == ""


def test_the_build_target_must_match_the_module(artifacts, tmp_path):
    onnx_path, _ = engine_files(artifacts, "fp32")
    h100 = EngineTarget("10.13.0.35", "NVIDIA H100 80GB HBM3", "9.0", "tensorrt")
    with pytest.raises(ConfigError, match="to be built for tensorrt but the module is tensorrt-rtx"):
        ensure_engine(onnx_path, tmp_path / "e.engine", ONE, trt=rtx, target=h100)


def test_missing_onnx_names_02(tmp_path):
    with pytest.raises(MissingArtifactError, match=r"model.fp16.onnx is missing .*run notebook 02_onnx_export first"):
        engine_files(ArtifactPaths.at(tmp_path), "fp16")
    with pytest.raises(ConfigError, match="precision must be one of"):
        engine_files(ArtifactPaths.at(tmp_path), "int8")
    with pytest.raises(MissingArtifactError, match="run notebook 02_onnx_export first"):
        ensure_engine(tmp_path / "model.onnx", tmp_path / "e.engine", ONE, trt=rtx)


def test_a_runtime_only_module_cannot_build(artifacts, tmp_path):
    lean = pytest.importorskip("tensorrt_lean_bindings")
    onnx_path, _ = engine_files(artifacts, "fp32")
    h100 = EngineTarget(lean.__version__, "NVIDIA H100 80GB HBM3", "9.0", "tensorrt")
    with pytest.raises(TensorRTUnavailableError, match="The engine builder .* is not available"):
        ensure_engine(onnx_path, tmp_path / "e.engine", ONE, trt=lean, target=h100)


def test_the_default_workspace_builds_bert_base_and_bad_ones_are_refused(tmp_path):
    assert DEFAULT_WORKSPACE_MIB >= 1536  # BERT-base FP32 at 64 x 512 needs 1,414
    with pytest.raises(ConfigError, match="workspace_mib must be >= 1"):
        ensure_engine(tmp_path / "m.onnx", tmp_path / "e.engine", ONE, workspace_mib=0, trt=rtx)


def test_notebook_04_defaults_to_the_builder_workspace():
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / "04_build_engine.ipynb").read_text())
    params = next("".join(c["source"]) for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    assert re.search(rf"^workspace_mib = {DEFAULT_WORKSPACE_MIB}\b", params, re.M), params
