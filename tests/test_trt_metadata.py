"""Engine metadata sidecars, the fit check (flavour, release, GPU, ONNX), and timing-cache keys."""

from __future__ import annotations

import json

import pytest

from helpers.errors import ConfigError, EngineMismatchError, MissingArtifactError
from helpers.io import sha256_file
from helpers.trt.compat import RTX_PORTABLE_TARGETS
from helpers.trt.metadata import (EngineMetadata, EngineTarget, check_engine, mismatches, read_metadata, sidecar_path,
                                  timing_cache_path, write_engine)
from helpers.trt.profiles import ShapeProfile

H100 = EngineTarget("10.13.0.35", "NVIDIA H100 80GB HBM3", "9.0", "tensorrt")


def meta_for(onnx_path, **changes) -> EngineMetadata:
    from helpers.io import sha256_file

    values = dict(tensorrt_version="10.13.0.35", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0",
                  onnx_file=onnx_path.name, onnx_sha256=sha256_file(onnx_path), precision="fp16",
                  profiles=(ShapeProfile(1, 8, 32, 1, 48, 128).to_dict(),),
                  input_dtypes={"input_ids": "int32", "segment_ids": "int32"}, output_dtypes={"logits": "float32"},
                  flavour="tensorrt")
    values.update(changes)
    return EngineMetadata(**values)


@pytest.fixture()
def built(tmp_path):
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(b"onnx v1")
    engine = write_engine(tmp_path / "model.fp16.engine", b"ENGINE", meta_for(onnx_path))
    return engine, onnx_path


def test_sidecar_round_trip(built):
    engine, onnx_path = built
    assert sidecar_path(engine).name == "model.fp16.engine.json"
    meta = read_metadata(engine)
    assert meta == meta_for(onnx_path)
    assert meta.profile_set().max_batch == 32
    record = json.loads(sidecar_path(engine).read_text())
    assert record["input_dtypes"] == {"input_ids": "int32", "segment_ids": "int32"}
    assert record["compute_capability"] == "9.0" and record["tensorrt_version"] == "10.13.0.35"
    assert record["flavour"] == "tensorrt" and record["format"] == 2


def test_a_fitting_engine_passes(built):
    engine, onnx_path = built
    assert check_engine(engine, onnx_path, target=H100).precision == "fp16"
    assert mismatches(read_metadata(engine), H100, onnx_path) == []


@pytest.mark.parametrize("running,pattern", [
    (EngineTarget("11.4.0.106", H100.gpu_name, "9.0", "tensorrt"), r"built with TensorRT 10.13.0.35, running TensorRT 11.4.0.106"),
    (EngineTarget(H100.tensorrt_version, "NVIDIA A100-SXM4-80GB", "8.0", "tensorrt"), r"compute capability 9.0, this GPU has 8.0"),
    (EngineTarget(H100.tensorrt_version, "NVIDIA H100 PCIe", "9.0", "tensorrt"), r"built on 'NVIDIA H100 80GB HBM3', running on 'NVIDIA H100 PCIe'"),
    (EngineTarget("1.7.1.116", H100.gpu_name, "9.0", "tensorrt-rtx"), r"built with tensorrt, running tensorrt-rtx \(an engine loads only in the flavour"),
])
def test_other_tensorrt_or_gpu_stops_with_the_reason(built, running, pattern):
    engine, onnx_path = built
    with pytest.raises(EngineMismatchError, match=pattern + r".*Rebuild it with 04_build_engine"):
        check_engine(engine, onnx_path, target=running)


def test_changed_or_missing_onnx_stops(built):
    engine, onnx_path = built
    onnx_path.write_bytes(b"onnx v2, re-exported")
    with pytest.raises(EngineMismatchError, match=r"model.onnx changed since the build"):
        check_engine(engine, onnx_path, target=H100)
    onnx_path.unlink()
    with pytest.raises(EngineMismatchError, match=r"source ONNX .* is gone"):
        check_engine(engine, onnx_path, target=H100)


def test_every_difference_is_listed_at_once(built):
    engine, onnx_path = built
    onnx_path.write_bytes(b"changed")
    problems = mismatches(read_metadata(engine), EngineTarget("11.4.0.106", "NVIDIA L4", "8.9", "tensorrt"), onnx_path)
    assert len(problems) == 3


def test_missing_engine_or_sidecar(tmp_path, built):
    engine, _ = built
    with pytest.raises(MissingArtifactError, match="run notebook 04_build_engine first"):
        read_metadata(tmp_path / "absent.engine")
    sidecar_path(engine).unlink()
    with pytest.raises(EngineMismatchError, match="has no metadata sidecar"):
        read_metadata(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(EngineMismatchError, match="unreadable"):
        read_metadata(engine)
    sidecar_path(engine).write_text(json.dumps({"precision": "fp16"}))
    with pytest.raises(EngineMismatchError, match="lacks .*tensorrt_version"):
        read_metadata(engine)


def test_a_sidecar_from_before_the_flavour_is_refused_with_rebuild(built):
    engine, _ = built
    old = json.loads(sidecar_path(engine).read_text())
    del old["flavour"]
    old["format"] = 1
    sidecar_path(engine).write_text(json.dumps(old))
    with pytest.raises(EngineMismatchError, match=r"lacks \['flavour'\] \(written before the TensorRT flavour was "
                                                  r"recorded\); rebuild the engine with 04_build_engine"):
        read_metadata(engine)


def test_rtx_engines_are_portable_across_rtx_gpus_but_not_to_9_0(tmp_path):
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(b"onnx")
    meta = meta_for(onnx_path, flavour="tensorrt-rtx", tensorrt_version="1.7.1.116", gpu_name="none",
                    compute_capability=RTX_PORTABLE_TARGETS)
    rtx = lambda name, cc: EngineTarget("1.7.1.116", name, cc, "tensorrt-rtx")
    assert mismatches(meta, rtx("NVIDIA GeForce RTX 4090", "8.9"), onnx_path) == []  # another GPU name is fine
    assert mismatches(meta, rtx("NVIDIA RTX PRO 6000 Blackwell", "12.0"), onnx_path) == []
    assert mismatches(meta, rtx("none", RTX_PORTABLE_TARGETS), onnx_path) == []  # a build for the same targets
    assert mismatches(meta, rtx("NVIDIA H200", "9.0"), onnx_path) == [
        f"built for compute capability {RTX_PORTABLE_TARGETS}, this GPU has 9.0"]
    with pytest.raises(ConfigError, match="flavour must be one of"):
        EngineTarget("1.0", "x", "9.0", "rtx")


def test_the_record_says_what_it_would_refuse_elsewhere(built):
    engine, onnx_path = built
    meta = read_metadata(engine)
    assert meta.built_for == H100 and meta.mismatches(onnx_path) == []
    assert meta.mismatches(onnx_path, tensorrt_version="99.0.0") == [
        "built with TensorRT 10.13.0.35, running TensorRT 99.0.0 (serialized engines only load in the release that "
        "built them)"]
    assert meta.mismatches(onnx_path, gpu_name="NVIDIA L4", compute_capability="8.9") == [
        "built for compute capability 9.0, this GPU has 8.9"]
    assert "an engine loads only in the flavour that built it" in meta.mismatches(onnx_path, flavour="tensorrt-rtx")[0]
    other = onnx_path.with_name("model.fp16.onnx")
    other.write_bytes(b"another graph")
    assert meta.mismatches(other) == [f"its source ONNX model.fp16.onnx changed since the build (sha256 "
                                      f"{meta.onnx_sha256[:12]}... then, {sha256_file(other)[:12]}... now)"]
    with pytest.raises(TypeError, match=r"unknown keywords \['driver'\]"):
        meta.mismatches(onnx_path, driver="580")


def test_check_engine_describes_the_running_gpu_itself(built, monkeypatch):
    import helpers.trt.metadata as metadata

    engine, onnx_path = built
    monkeypatch.setattr(metadata, "gpu_identity", lambda device: pytest.fail("the target was given"))
    assert check_engine(engine, onnx_path, target=H100).precision == "fp16"
    seen = []
    monkeypatch.setattr(metadata, "running_target", lambda trt, device: seen.append((trt, device)) or H100)
    assert check_engine(engine, onnx_path, trt="trt module", gpu=1).onnx_file == "model.onnx"
    assert seen == [("trt module", 1)]


def test_timing_cache_is_keyed_by_release_and_architecture(tmp_path):
    a = timing_cache_path(tmp_path, "10.13.0.35", "9.0")
    assert a.name == "timing-trt10.13.0.35-sm90.cache"
    assert timing_cache_path(tmp_path, "11.4.0.106", "9.0") != a
    assert timing_cache_path(tmp_path, "10.13.0.35", "8.9") != a
