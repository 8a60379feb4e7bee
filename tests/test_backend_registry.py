"""helpers.backends.registry: one table of names, one factory, one choice of the best backend.

CPU backends are opened for real on a tiny model's ONNX files. GPU backends cannot run here: their classes are
replaced by doubles that accept exactly the real constructors' signatures (a call the real class would refuse
fails the test), and CUDA / TensorRT availability is set per test.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import helpers.backends.onnxruntime_cuda as ort_cuda
import helpers.backends.registry as registry
import helpers.backends.tensorrt as tensorrt_backend
import helpers.backends.torch_backend as torch_backend
import helpers.backends.torch_gpu as torch_gpu
import helpers.trt.metadata as metadata
from helpers.backends import BACKENDS, Backend, best_backend, model_files, open_backend
from helpers.backends.padding import RightPaddingRouter
from helpers.bench.models import architecture_model, ensure_onnx_set
from helpers.errors import BackendError, ConfigError, EngineMismatchError, MissingArtifactError

VOCAB = 300
GPU_FILES = ("fp16", "fused-fp16", "fused-fp16-rightpad", "engine-fp32", "engine-fp16")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    arch = architecture_model("tiny", vocab_size=VOCAB)
    folder = tmp_path_factory.mktemp("onnx")
    ensure_onnx_set(arch, folder, ("plain", "fused", "int8"), log=None)
    return arch, folder


class _Double(Backend):
    """What a GPU backend double returns: a backend on the GPU that records how it was made."""

    def __init__(self, kind: str, args: inspect.BoundArguments) -> None:
        super().__init__()
        self.kind, self.args, self.device = kind, args.arguments, "cuda"
        self.name = str(self.args.get("name") or getattr(self.args.get("config"), "name", None) or kind)

    def _run(self, input_ids, segment_ids):
        return np.zeros((input_ids.shape[0], 2), np.float32)


def strict(real: type, kind: str, made: list):
    """A stand-in for class ``real``: binds each call to ``real``'s own signature, so a wrong call fails."""
    signature = inspect.signature(real)

    def make(*args, **kwargs):
        double = _Double(kind, signature.bind(*args, **kwargs))
        made.append(double)
        return double

    return make


@pytest.fixture()
def gpu(monkeypatch, tmp_path):
    """Every GPU file present (empty files), GPU classes replaced by strict doubles, CUDA and TensorRT usable."""
    made: list[_Double] = []
    monkeypatch.setattr(ort_cuda, "OrtCudaBackend", strict(ort_cuda.OrtCudaBackend, "ort-cuda", made))
    monkeypatch.setattr(torch_gpu, "TorchCudaBackend", strict(torch_gpu.TorchCudaBackend, "torch-cuda", made))
    monkeypatch.setattr(torch_backend, "TorchBackend", strict(torch_backend.TorchBackend, "pytorch", made))
    monkeypatch.setattr(tensorrt_backend, "TensorRTBackend", strict(tensorrt_backend.TensorRTBackend, "tensorrt", made))
    monkeypatch.setattr(registry, "cuda_refusal", lambda: None)
    monkeypatch.setattr(registry, "tensorrt_refusal", lambda device_id=0: None)
    from helpers.export import ONNX_FILES

    for name in list(ONNX_FILES.values()) + list(registry.ENGINE_FILES.values()):
        (tmp_path / name).write_bytes(b"")
    return model_files(tmp_path, tmp_path), made


def test_model_files_lists_what_is_present_by_key(tmp_path):
    assert model_files(tmp_path, tmp_path) == {}
    (tmp_path / "model.int8.onnx").write_bytes(b"x")
    (tmp_path / "model.fp16.engine").write_bytes(b"x")
    assert model_files(tmp_path) == {"int8": tmp_path / "model.int8.onnx"}  # engines only with trt_dir
    assert model_files(tmp_path, tmp_path) == {"int8": tmp_path / "model.int8.onnx",
                                               "engine-fp16": tmp_path / "model.fp16.engine"}


def test_every_name_has_a_device_and_known_files():
    keys = set(registry.ENGINE_FILES) | {"plain", "fused", "int8", "fp16", "fused-fp16", "fused-fp16-rightpad"}
    for name, entry in BACKENDS.items():
        assert entry.name == name and entry.device in ("cpu", "gpu") and set(entry.files) <= keys
    assert set(registry.GPU_ORDER + registry.CPU_ORDER) <= set(BACKENDS)


def test_cpu_names_round_trip_through_the_factory(tiny):
    arch, folder = tiny
    files = model_files(folder)
    for name in ("pytorch", "onnxruntime", "onnxruntime-fused", "onnxruntime-int8"):
        with open_backend(name, files, model=arch.model, threads=1) as backend:
            assert backend.name == name and backend.device == "cpu"
            ids = np.full((2, 8), 7, np.int32)
            assert backend.predict_logits(ids, np.zeros_like(ids)).shape == (2, 2)
    assert open_backend("onnxruntime", files, threads=1).describe()["intra_op_threads"] == 1


def test_gpu_names_open_the_right_class_with_the_right_files(gpu, tiny):
    files, made = gpu
    for name in [n for n, s in BACKENDS.items() if s.device == "gpu" and not n.startswith("tensorrt-")]:
        backend = open_backend(name, files, model=tiny[0].model, device_id=1)
        assert backend.name == name or name == "pytorch-cuda", name
    kinds = {d.name: d for d in made}
    assert kinds["pytorch"].args["device"] == "cuda:1" and kinds["pytorch"].args["model"] is not tiny[0].model
    assert kinds["ort-cuda-fp16-graph"].args["model_path"] == files["fp16"]
    assert kinds["ort-cuda-fp16-graph"].args["config"].cuda_graph and kinds["ort-cuda-fp16-graph"].args["config"].device_id == 1
    assert kinds["torch-cuda-fp16-graph"].args["config"].mode == "cuda_graph"
    assert kinds["torch-compile-fp16-max-autotune"].args["config"].compile_mode == "max-autotune"
    assert kinds["torch-cuda-fp16"].args["config"].device == "cuda:1"
    router = open_backend("ort-cuda-fused-fp16-rightpad-graph", files)
    assert isinstance(router, RightPaddingRouter)
    assert router.exact.args["model_path"] == files["fused-fp16"] and router.fast.args["model_path"] == files["fused-fp16-rightpad"]


def test_tensorrt_opens_the_engine_with_the_onnx_its_sidecar_names(gpu, monkeypatch):
    files, made = gpu
    monkeypatch.setattr(metadata, "read_metadata", lambda engine: type("M", (), {"onnx_file": "model.fp16.onnx"})())
    open_backend("tensorrt-fp16", files, device_id=1, buffers="pycuda")
    args = made[-1].args
    assert (args["engine_path"], args["onnx_path"], args["buffers"], args["gpu"]) == (
        files["engine-fp16"], files["fp16"], "pycuda", 1)
    monkeypatch.setattr(metadata, "read_metadata", lambda engine: type("M", (), {"onnx_file": "other.onnx"})())
    with pytest.raises(EngineMismatchError, match="was built from other.onnx, which is not one of this model's"):
        open_backend("tensorrt-fp32", files)


def test_unknown_names_and_missing_files_are_refused_with_what_to_do(tiny):
    arch, folder = tiny
    with pytest.raises(ConfigError, match="unknown backend 'ort'; the known backends are pytorch, onnxruntime, "):
        open_backend("ort", model_files(folder))
    with pytest.raises(MissingArtifactError, match="tensorrt-fp16: no engine-fp16 model file .* 04_build_engine"):
        open_backend("tensorrt-fp16", model_files(folder))
    with pytest.raises(MissingArtifactError, match="ort-cuda-fp16-graph: no fp16 model file .* 02_onnx_export"):
        open_backend("ort-cuda-fp16-graph", model_files(folder))
    with pytest.raises(ConfigError, match="pass open_backend\\(..., model=checkpoint.model\\)"):
        open_backend("pytorch", model_files(folder))


def test_best_backend_on_a_cpu_prefers_int8_then_fused_then_plain(tmp_path):
    paths = {k: tmp_path / f"{k}.onnx" for k in ("plain", "fused", "int8")}
    for p in paths.values():
        p.write_bytes(b"")
    assert best_backend(paths, "cpu").name == "onnxruntime-int8"
    choice = best_backend({k: paths[k] for k in ("plain", "fused")}, "cpu")
    assert choice.name == "onnxruntime-fused" and choice.passed_over == ("onnxruntime-int8: no int8 file",)
    assert choice.files == (paths["fused"],) and choice.describe() == "onnxruntime-fused: fused.onnx (onnxruntime-int8: no int8 file)"
    assert best_backend({"plain": paths["plain"], "int8": tmp_path / "gone.onnx"}, "cpu").name == "onnxruntime"
    with pytest.raises(BackendError, match="no model file to run on the cpu"):
        best_backend({}, "cpu")
    with pytest.raises(ConfigError, match="device must be one of"):
        best_backend(paths, "cuda")


def test_best_backend_on_a_gpu_order_and_reasons(gpu, monkeypatch):
    files, _ = gpu
    assert best_backend(files, "gpu").name == "tensorrt-fp16"
    monkeypatch.setattr(registry, "tensorrt_refusal", lambda device_id=0: "TensorRT-RTX's runtime does not run on 9.0")
    choice = best_backend(files, "gpu")
    assert choice.name == "ort-cuda-fused-fp16-rightpad-graph"
    assert choice.files == (files["fused-fp16"], files["fused-fp16-rightpad"])
    assert choice.passed_over == ("tensorrt-fp16, tensorrt-fp32: TensorRT-RTX's runtime does not run on 9.0",)
    without = {k: v for k, v in files.items() if k != "fused-fp16-rightpad"}
    assert best_backend(without, "gpu").name == "ort-cuda-fused-fp16-graph"
    only_fp16 = {k: v for k, v in files.items() if k in ("fp16", "int8")}
    choice = best_backend(only_fp16, "gpu")
    assert choice.name == "ort-cuda-fp16-graph" and choice.passed_over[:2] == (
        "tensorrt-fp16: no engine-fp16 file", "tensorrt-fp32: no engine-fp32 file")
    # no usable CUDA at all: the CPU's choice, with every GPU backend's reason
    monkeypatch.setattr(registry, "cuda_refusal", lambda: "onnxruntime has no CUDAExecutionProvider")
    choice = best_backend(files, "gpu")
    assert choice.name == "onnxruntime-int8" and choice.passed_over == (
        "tensorrt-fp16, tensorrt-fp32: TensorRT-RTX's runtime does not run on 9.0",
        "ort-cuda-fused-fp16-rightpad-graph, ort-cuda-fused-fp16-graph, ort-cuda-fp16-graph: onnxruntime has no "
        "CUDAExecutionProvider")
    # and on a CPU the GPU files are never considered
    assert best_backend(files, "cpu") == best_backend({"int8": files["int8"]}, "cpu")


def test_the_refusals_say_why_on_this_machine():
    import onnxruntime
    import torch

    cuda_runs = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    reason = registry.cuda_refusal()
    assert (reason is None) == cuda_runs and (cuda_runs or "install onnxruntime-gpu" in reason)
    trt = registry.tensorrt_refusal()
    assert trt is None or isinstance(trt, str)
    if not torch.cuda.is_available():  # no GPU: no engine can run, and the sentence says why
        assert trt is not None and ("GPU" in trt or "TensorRT" in trt)
