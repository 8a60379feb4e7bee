"""engine_from_onnx building REAL engines with NVIDIA's TensorRT-RTX builder, on a machine without a GPU.

TensorRT-RTX (``tensorrt_rtx_bindings``, installed by environment/requirements-trt-check.txt) compiles
engines ahead of time without a GPU, with the TensorRT 11 Python API. These tests build 02's graphs of a
tiny random classifier (model.onnx -> FP32, model.fp16.onnx -> FP16) with the multi-profile set 04 chooses
from 01-style length statistics, and check what came out.

What can be read back without a GPU, and how:

* the engine's I/O names, dtypes and shapes come from the builder's parsed network (``BuildResult.network_io``)
  and the sidecar; the profiles from the sidecar. Reading them from the engine itself would need
  ``Runtime.deserialize_cuda_engine``, which in TensorRT-RTX 1.7 needs a CUDA driver: without one it returns
  None after "Error Code 1: Cuda Runtime (... cudaError 35: CUDA driver version is insufficient for CUDA
  runtime version)" (asserted below where no GPU is present);
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

from helpers.data import length_stats
from helpers.errors import BackendError, ConfigError, MissingArtifactError, TensorRTUnavailableError
from helpers.export import ONNX_FILES
from helpers.machine import visible_gpus
from helpers.trt import compat
from helpers.trt.builder import (DEFAULT_WORKSPACE_MIB, RTX_TIMING_CACHE_NOTE, BuildSettings, engine_from_onnx,
                                 engine_name, onnx_for, workspace_advice)
from helpers.trt.metadata import (NO_GPU, RunningEnvironment, build_environment, engine_validity, read_metadata,
                                  sidecar_path)
from helpers.trt.profiles import ProfileSet, ShapeProfile, choose_profiles
from helpers.trt.smoke import smoke_onnx

rtx = compat.import_tensorrt("tensorrt-rtx")  # fails with the install command if the test environment lacks it
HAS_GPU = bool(visible_gpus())
ENGINE_IO = {"inputs": {"input_ids": ("int32", (-1, -1)), "segment_ids": ("int32", (-1, -1))},
             "outputs": {"logits": ("float32", (-1, 2))}}


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    """02's two graphs of a tiny random classifier: model.onnx (FP32) and model.fp16.onnx."""
    from helpers.bench.models import architecture_model
    from helpers.export import onnx_from_classifier
    from helpers.onnx_variants import fp16_onnx_from_plain

    folder = tmp_path_factory.mktemp("onnx")
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
def built(onnx_dir, profile_set, tmp_path_factory):
    """Both precisions built once for the module, with TensorRT-RTX."""
    out = tmp_path_factory.mktemp("trt")
    features = compat.features_of(rtx)
    results = {}
    for precision in ("fp32", "fp16"):
        results[precision] = engine_from_onnx(onnx_for(onnx_dir, features, precision), out / engine_name(precision),
                                              profile_set, BuildSettings(precision, cache_dir=out), build_environment(rtx),
                                              trt=rtx)
    return results


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_real_build_has_the_contract_io_and_every_profile(built, profile_set, precision, capsys):
    result = built[precision]
    meta = read_metadata(result.engine_path)
    with capsys.disabled():
        print(f"\n  TensorRT-RTX {rtx.__version__} built {result.engine_path.name} from {meta.onnx_file}: "
              f"{result.engine_bytes / 2**20:.2f} MiB in {result.seconds:.2f} s, {len(meta.profiles)} profiles "
              f"{[p['opt_batch'] for p in meta.profiles]}x{[p['opt_len'] for p in meta.profiles]} (opt)")
    assert {"inputs": result.network_io.inputs, "outputs": result.network_io.outputs} == ENGINE_IO
    assert meta.onnx_file == ONNX_FILES["plain" if precision == "fp32" else "fp16"]
    assert (meta.flavour, meta.tensorrt_version, meta.precision) == ("tensorrt-rtx", rtx.__version__, precision)
    assert meta.profile_set().profiles == profile_set.profiles
    assert meta.input_dtypes == {"input_ids": "int32", "segment_ids": "int32"} and meta.output_dtypes == {"logits": "float32"}
    assert meta.compute_capability == compat.RTX_PORTABLE_TARGETS and meta.workspace_bytes == DEFAULT_WORKSPACE_MIB << 20
    assert meta.gpu_name == (NO_GPU if not HAS_GPU else meta.gpu_name)
    verdict = engine_validity(result.engine_path, rtx)
    assert verdict.well_formed, verdict  # TensorRT-RTX reads the header as its own engine of this release


def test_fp16_engine_carries_the_fp16_graph(built):
    # Strongly typed: the FP16 graph's weights stay FP16, so its engine is smaller than the FP32 one. A build of
    # the FP32 graph for "fp16" (the old weakly typed path) would not be.
    fp32, fp16 = built["fp32"].engine_bytes, built["fp16"].engine_bytes
    assert fp16 < 0.95 * fp32, (fp16, fp32)


def test_a_damaged_engine_is_malformed_to_tensorrt_rtx(built, tmp_path):
    damaged = tmp_path / "damaged.engine"
    damaged.write_bytes(b"\0" * 64 + built["fp32"].engine_path.read_bytes()[64:])
    assert "MALFORMED_ENGINE" in engine_validity(damaged, rtx).diagnostics


@pytest.mark.skipif(HAS_GPU, reason="documents what happens without a GPU")
def test_without_a_gpu_the_engine_cannot_be_deserialized(built):
    logger = compat.capturing_logger(rtx, "ERROR", echo=False)
    runtime = rtx.Runtime(logger)
    assert runtime.deserialize_cuda_engine(built["fp16"].engine_path.read_bytes()) is None
    assert any("cudaError 35" in m for m in logger.errors())


def test_rtx_builds_use_no_timing_cache(built, tmp_path):
    assert all(r.timing_cache is None and not r.timing_cache_reused for r in built.values())
    assert built["fp16"].timing_cache_note == RTX_TIMING_CACHE_NOTE
    assert not list(built["fp16"].engine_path.parent.glob("timing-*.cache"))


def as_full_tensorrt(module):
    """The real TensorRT-RTX classes under the name ``tensorrt``: helpers then takes its full-TensorRT branch."""
    full = types.ModuleType("tensorrt")
    full.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
    full.__version__ = module.__version__
    return full


def test_full_tensorrt_timing_cache_is_written_offered_and_judged_by_tensorrt(tmp_path):
    trt = as_full_tensorrt(rtx)
    onnx_path = smoke_onnx(tmp_path / "model.onnx")
    profile_set = ProfileSet((ShapeProfile(1, 4, 8, 1, 16, 32),))
    running = RunningEnvironment(rtx.__version__, "NVIDIA H100 80GB HBM3", "9.0", "tensorrt")
    settings = BuildSettings("fp32", 64, cache_dir=tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TensorRT-RTX deprecates its timing cache calls
        first = engine_from_onnx(onnx_path, tmp_path / "a.engine", profile_set, settings, running, trt=trt)
        written = first.timing_cache.read_bytes()
        second = engine_from_onnx(onnx_path, tmp_path / "b.engine", profile_set, settings, running, trt=trt)
    assert first.timing_cache.name == f"timing-trt{rtx.__version__}-sm90.cache" and len(written) > 0
    assert not first.timing_cache_reused and first.timing_cache_note.startswith("no timing cache yet")
    if HAS_GPU:
        assert second.timing_cache_reused and second.timing_cache_note.startswith("reused")
    else:  # deserializing a cache needs CUDA: TensorRT says so, and the result records it instead of claiming a hit
        assert not second.timing_cache_reused
        assert "was offered but TensorRT did not load it" in second.timing_cache_note
        assert "Failed to deserialize timing cache" in second.timing_cache_note
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
        engine_from_onnx(path, tmp_path / "e.engine", ProfileSet((ShapeProfile(1, 1, 2, 1, 8, 16),)),
                         BuildSettings("fp32"), build_environment(rtx), trt=rtx)
    text = str(err.value)
    assert f"TensorRT-RTX {rtx.__version__}'s ONNX parser rejected model.onnx with 1 error(s):" in text
    assert "#0: Invalid Node - node_of_logits [code INVALID_NODE, node 4 '', op 'MatMul']" in text
    assert "TensorRT's log:" in text and "While parsing node number 4 [MatMul -> \"logits\"]" in text
    assert not (tmp_path / "e.engine").exists() and not sidecar_path(tmp_path / "e.engine").exists()


def test_profile_with_min_above_opt_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"profile batch range must satisfy 1 <= min <= opt <= max with integers, "
                                          r"got min=8, opt=4, max=16"):
        ProfileSet.from_dicts([dict(min_batch=8, opt_batch=4, max_batch=16, min_len=1, opt_len=8, max_len=16)])
    # Had one slipped past that check, TensorRT refuses it too, and the build says so with TensorRT's words.
    bad = object.__new__(ShapeProfile)
    for key, value in dict(min_batch=8, opt_batch=4, max_batch=16, min_len=1, opt_len=8, max_len=16).items():
        object.__setattr__(bad, key, value)
    with pytest.raises(BackendError, match=r"refused optimization profile batch 8-16 \(opt 4\).*MIN<=OPT<=MAX"):
        engine_from_onnx(smoke_onnx(tmp_path / "m.onnx"), tmp_path / "e.engine", ProfileSet((bad,)),
                         BuildSettings("fp32"), build_environment(rtx), trt=rtx)


def test_too_small_a_workspace_is_explained_with_workspace_mib(onnx_dir, tmp_path):
    with pytest.raises(BackendError) as err:
        engine_from_onnx(onnx_dir / ONNX_FILES["plain"], tmp_path / "e.engine", ProfileSet((ShapeProfile(1, 8, 32, 1, 16, 64),)),
                         BuildSettings("fp32", 1), build_environment(rtx), trt=rtx)
    text = str(err.value)
    assert "within workspace limit" in text  # TensorRT's own message, in full
    assert "No kernel fits in the workspace limit of 1 MiB: build again with a larger workspace_mib" in text
    assert not (tmp_path / "e.engine").exists()


def test_out_of_memory_advice_names_workspace_mib():
    # The message TensorRT-RTX gave building BERT-base FP32 (profiles up to 64 x 512) with a 1 GiB workspace.
    h200 = "IBuilder::buildSerializedNetwork: Error Code 2: OutOfMemory (Requested size was 1482348552 bytes.)"
    assert workspace_advice([h200], 1024) == (
        "The builder asked for 1,414 MiB of workspace but workspace_mib is 1,024: build again with workspace_mib >= "
        "1,536 (BuildSettings(workspace_mib=...), or 04_build_engine's workspace_mib parameter).")
    assert "the GPU itself ran out of memory" in workspace_advice([h200], DEFAULT_WORKSPACE_MIB)
    assert workspace_advice(["Error Code 4: unsupported op"], 1024) == ""


def test_the_fp32_graph_is_refused_for_fp16(onnx_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"model.onnx is an FP32 graph but precision 'fp16' needs the FP16 graph "
                                          r"\(model.fp16.onnx\)"):
        engine_from_onnx(onnx_dir / ONNX_FILES["plain"], tmp_path / "e.engine", ProfileSet((ShapeProfile(1, 1, 1, 1, 8, 8),)),
                         BuildSettings("fp16"), build_environment(rtx), trt=rtx)


def test_the_build_environment_must_match_the_module(onnx_dir, tmp_path):
    running = RunningEnvironment("10.13.0.35", "NVIDIA H100 80GB HBM3", "9.0", "tensorrt")
    with pytest.raises(ConfigError, match="the build environment is for tensorrt but the module is tensorrt-rtx"):
        engine_from_onnx(onnx_dir / ONNX_FILES["plain"], tmp_path / "e.engine", ProfileSet((ShapeProfile(1, 1, 1, 1, 8, 8),)),
                         BuildSettings("fp32"), running, trt=rtx)


def test_missing_onnx_names_02(tmp_path):
    with pytest.raises(MissingArtifactError, match=r"model.fp16.onnx is missing .*run notebook 02_onnx_export first"):
        onnx_for(tmp_path, compat.features_of(rtx), "fp16")


def test_a_runtime_only_module_cannot_build(onnx_dir, tmp_path):
    lean = pytest.importorskip("tensorrt_lean_bindings")
    running = RunningEnvironment(lean.__version__, "NVIDIA H100 80GB HBM3", "9.0", "tensorrt")
    with pytest.raises(TensorRTUnavailableError, match="The engine builder .* is not available"):
        engine_from_onnx(onnx_dir / ONNX_FILES["plain"], tmp_path / "e.engine", ProfileSet((ShapeProfile(1, 1, 1, 1, 8, 8),)),
                         BuildSettings("fp32"), running, trt=lean)


def test_settings_are_validated_and_the_default_workspace_builds_bert_base():
    with pytest.raises(ConfigError, match="precision must be one of"):
        BuildSettings("int8")
    with pytest.raises(ConfigError, match="workspace_mib must be >= 1"):
        BuildSettings("fp32", 0)
    assert BuildSettings("fp32", 3).workspace_bytes == 3 << 20
    assert BuildSettings().workspace_mib == DEFAULT_WORKSPACE_MIB >= 1536  # BERT-base FP32 at 64 x 512 needs 1,414


def test_notebook_04_defaults_to_the_builder_workspace():
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / "04_build_engine.ipynb").read_text())
    params = next("".join(c["source"]) for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    assert re.search(rf"^workspace_mib = {DEFAULT_WORKSPACE_MIB}\b", params, re.M), params
