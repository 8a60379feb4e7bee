"""The one table of backend names and the one factory that opens them.

Every part of the series that runs a model - 06's benchmark line-up, 07's served model, the bulk classify
command, the notebooks - names a backend from :data:`BACKENDS` and opens it with :func:`open_backend`:

| name | what | device | model files (keys of :func:`model_files`) |
|---|---|---|---|
| ``pytorch`` | PyTorch fp32 eager | CPU | ``model=`` |
| ``onnxruntime`` / ``-fused`` / ``-int8`` | ONNX Runtime on 02's plain, fused and INT8 graphs | CPU | ``plain`` / ``fused`` / ``int8`` |
| ``pytorch-cuda`` | PyTorch fp32 eager | GPU | ``model=`` |
| ``torch-cuda-fp16`` / ``-graph`` | PyTorch fp16 eager; fp16 with CUDA-graph replay | GPU | ``model=`` |
| ``torch-compile-fp16-<mode>`` | ``torch.compile`` fp16 (``max-autotune``, ...) | GPU | ``model=`` |
| ``ort-cuda-fp16-graph`` | ONNX Runtime CUDA, FP16 graph of standard ops, I/O binding + CUDA graphs | GPU | ``fp16`` |
| ``ort-cuda-fused-fp16-graph`` | the same on the GPU-fused FP16 graph (``Attention``, SkipLayerNorm) | GPU | ``fused-fp16`` |
| ``ort-cuda-fused-fp16-rightpad-graph`` | the fused pair routed per batch (:mod:`.padding`) | GPU | ``fused-fp16``, ``fused-fp16-rightpad`` |
| ``tensorrt-fp32`` / ``tensorrt-fp16`` | 04's TensorRT engines | GPU | ``engine-fp32`` / ``engine-fp16`` |

:func:`best_backend` is the single answer to "which backend should this machine run?", given the files
present: on a GPU a TensorRT engine where a TensorRT flavour runs on that GPU, else ONNX Runtime CUDA on the
fused FP16 graph with the right-padding router, else on the fused graph alone, else on the plain FP16 graph;
on a CPU (or a GPU machine where none of those can run) ONNX Runtime INT8, else the fused graph, else the
plain export. It says why each better backend was passed over.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import BackendError, ConfigError, EngineMismatchError, MissingArtifactError, SeriesError
from .base import Backend
from .torch_gpu import COMPILE_MODES

#: TensorRT engine files, keyed like the ONNX variants (04 names them ``model.<precision>.engine``).
ENGINE_FILES: dict[str, str] = {"engine-fp32": "model.fp32.engine", "engine-fp16": "model.fp16.engine"}
#: CUDA graphs captured per input shape by the ``-graph`` backends (least recently used shapes go first).
GRAPH_SHAPES = 128


@dataclass(frozen=True)
class BackendSpec:
    """One backend name: its device (``cpu`` or ``gpu``), the model files it needs, and what it is."""

    name: str
    device: str
    files: tuple[str, ...]
    what: str

    @property
    def needs_model(self) -> bool:
        """True for the PyTorch backends, which run the model object (``open_backend(..., model=)``)."""
        return not self.files


BACKENDS: dict[str, BackendSpec] = {s.name: s for s in (
    BackendSpec("pytorch", "cpu", (), "PyTorch fp32 eager"),
    BackendSpec("onnxruntime", "cpu", ("plain",), "ONNX Runtime, plain fp32 export"),
    BackendSpec("onnxruntime-fused", "cpu", ("fused",), "ONNX Runtime, optimizer-fused fp32 graph"),
    BackendSpec("onnxruntime-int8", "cpu", ("int8",), "ONNX Runtime, dynamic INT8 graph"),
    BackendSpec("pytorch-cuda", "gpu", (), "PyTorch fp32 eager"),
    BackendSpec("torch-cuda-fp16", "gpu", (), "PyTorch fp16 eager"),
    BackendSpec("torch-cuda-fp16-graph", "gpu", (), "PyTorch fp16, CUDA-graph replay"),
    *(BackendSpec(f"torch-compile-fp16-{m}", "gpu", (), f"torch.compile fp16, mode {m}") for m in COMPILE_MODES),
    BackendSpec("ort-cuda-fp16-graph", "gpu", ("fp16",), "ONNX Runtime CUDA, FP16 graph, CUDA graphs"),
    BackendSpec("ort-cuda-fused-fp16-graph", "gpu", ("fused-fp16",), "ONNX Runtime CUDA, fused FP16 graph, CUDA graphs"),
    BackendSpec("ort-cuda-fused-fp16-rightpad-graph", "gpu", ("fused-fp16", "fused-fp16-rightpad"),
                "ONNX Runtime CUDA, fused FP16, mask index for right-padded batches, CUDA graphs"),
    BackendSpec("tensorrt-fp32", "gpu", ("engine-fp32",), "TensorRT engine, FP32"),
    BackendSpec("tensorrt-fp16", "gpu", ("engine-fp16",), "TensorRT engine, FP16"),
)}
#: What :func:`best_backend` prefers, best first.
GPU_ORDER: tuple[str, ...] = ("tensorrt-fp16", "tensorrt-fp32", "ort-cuda-fused-fp16-rightpad-graph",
                              "ort-cuda-fused-fp16-graph", "ort-cuda-fp16-graph")
CPU_ORDER: tuple[str, ...] = ("onnxruntime-int8", "onnxruntime-fused", "onnxruntime")
DEVICES = ("cpu", "gpu")


def spec(name: str) -> BackendSpec:
    """The table's entry for ``name``; :class:`ConfigError` listing every known name otherwise."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ConfigError(f"unknown backend {name!r}; the known backends are {', '.join(BACKENDS)}.") from None


def model_files(onnx_dir: str | os.PathLike[str], trt_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """The model files present: 02's ONNX variants in ``onnx_dir`` and 04's engines in ``trt_dir``, by key
    (``plain``, ``fused``, ``int8``, ``fp16``, ``fused-fp16``, ``fused-fp16-rightpad``, ``engine-fp32``,
    ``engine-fp16``). Absent files are left out."""
    from ..export import ONNX_FILES

    found = {key: Path(onnx_dir) / name for key, name in ONNX_FILES.items()}
    if trt_dir is not None:
        found.update({key: Path(trt_dir) / name for key, name in ENGINE_FILES.items()})
    return {key: path for key, path in found.items() if path.is_file()}


@dataclass(frozen=True)
class BackendChoice:
    """The backend :func:`best_backend` chose, the files it runs, and why each better one was passed over."""

    name: str
    files: tuple[Path, ...]
    passed_over: tuple[str, ...] = ()

    def describe(self) -> str:
        """``name: file(s) (why the better ones were passed over)``, one line for logs and tables."""
        why = f" ({'; '.join(self.passed_over)})" if self.passed_over else ""
        return f"{self.name}: {' + '.join(p.name for p in self.files)}{why}"


def cuda_refusal() -> str | None:
    """Why ONNX Runtime cannot run on a CUDA GPU here (one sentence), or None when it can."""
    from .onnxruntime_cuda import cuda_provider_missing_reason

    return cuda_provider_missing_reason()


def tensorrt_refusal(device_id: int = 0) -> str | None:
    """Why no TensorRT engine can run on GPU ``device_id`` here (no TensorRT, no GPU, or a flavour whose runtime
    refuses this GPU, e.g. TensorRT-RTX on compute capability 9.0), or None."""
    from ..machine import gpu_identity
    from ..trt.compat import flavour_of, import_tensorrt, runtime_refusal

    try:
        return runtime_refusal(flavour_of(import_tensorrt()), gpu_identity(device_id).compute_capability)
    except SeriesError as exc:
        return str(exc)


def _missing(name: str, files: Mapping[str, Path]) -> list[str]:
    return [k for k in spec(name).files if k not in files or not Path(files[k]).is_file()]


def best_backend(files: Mapping[str, str | os.PathLike[str]], device: str, *, device_id: int = 0) -> BackendChoice:
    """The best backend for ``device`` (``"cpu"`` or ``"gpu"``) among ``files`` (from :func:`model_files`).

    On a GPU: the first of :data:`GPU_ORDER` whose files are present and whose runtime runs here; where none
    does, the CPU's choice. On a CPU: the first of :data:`CPU_ORDER` whose file is present.
    :class:`BackendError` when no file at all can run, naming what was missing.
    """
    if device not in DEVICES:
        raise ConfigError(f"best_backend: device must be one of {DEVICES}, got {device!r}.")
    present = {k: Path(p) for k, p in files.items()}
    passed: list[str] = []
    order = (GPU_ORDER if device == "gpu" else ()) + CPU_ORDER
    refusals: dict[str, str | None] = {}
    for name in order:
        missing = _missing(name, present)
        if missing:
            passed.append(f"{name}: no {' or '.join(missing)} file")
            continue
        if spec(name).device == "gpu":
            runtime = "tensorrt" if name.startswith("tensorrt-") else "ort-cuda"
            if runtime not in refusals:
                refusals[runtime] = tensorrt_refusal(device_id) if runtime == "tensorrt" else cuda_refusal()
            if refusals[runtime] is not None:
                passed.append(f"{name}: {refusals[runtime]}")
                continue
        return BackendChoice(name, tuple(present[k] for k in spec(name).files), _grouped(passed))
    raise BackendError(f"no model file to run on the {device} ({'; '.join(_grouped(passed))}); run 02_onnx_export "
                       "(and 04_build_engine for TensorRT) first.")


def _grouped(passed: list[str]) -> tuple[str, ...]:
    """``name: reason`` lines, with neighbours that share a reason joined: ``a, b: reason``."""
    out: list[tuple[list[str], str]] = []
    for line in passed:
        name, reason = line.split(": ", 1)
        if out and out[-1][1] == reason:
            out[-1][0].append(name)
        else:
            out.append(([name], reason))
    return tuple(f"{', '.join(names)}: {reason}" for names, reason in out)


def open_backend(name: str, files: Mapping[str, str | os.PathLike[str]], *, device_id: int = 0, threads: int = 0,
                 buffers: str = "cuda-python", model: Any = None) -> Backend:
    """Open backend ``name`` of :data:`BACKENDS` over ``files`` (from :func:`model_files`).

    ``device_id``: the CUDA device of GPU backends. ``threads``: ONNX Runtime's CPU threads (0: ONNX Runtime's
    default, every physical core). ``buffers``: the TensorRT backend's memory implementation. ``model``: the
    :class:`~helpers.model.SentimentClassifier` the PyTorch backends run (they never change it: GPU backends
    run a copy). A missing file is a :class:`MissingArtifactError` naming the notebook that writes it.
    """
    entry = spec(name)
    missing = _missing(name, {k: Path(p) for k, p in files.items()})
    if missing:
        writer = "04_build_engine" if name.startswith("tensorrt-") else "02_onnx_export"
        raise MissingArtifactError(f"{name}: no {' or '.join(missing)} model file among {sorted(files)}; "
                                   f"run notebook {writer} first.")
    if entry.needs_model and model is None:
        raise ConfigError(f"{name} runs the PyTorch model itself: pass open_backend(..., model=checkpoint.model).")
    path = {k: Path(p) for k, p in files.items()}
    cuda = f"cuda:{device_id}"
    if name == "pytorch":
        from .torch_backend import TorchBackend

        return TorchBackend(model, "cpu")
    if name.startswith("onnxruntime"):
        from .onnxruntime import OrtBackend, OrtConfig

        return OrtBackend(path[entry.files[0]], OrtConfig(intra_op_threads=threads or None, inter_op_threads=1))
    if name == "pytorch-cuda":
        from .torch_backend import TorchBackend

        return TorchBackend(copy.deepcopy(model), "cuda" if device_id == 0 else cuda)
    if name.startswith(("torch-cuda-", "torch-compile-")):
        from .torch_gpu import TorchCudaBackend, TorchCudaConfig

        if name == "torch-cuda-fp16":
            config = TorchCudaConfig(device=cuda)
        elif name == "torch-cuda-fp16-graph":
            config = TorchCudaConfig(mode="cuda_graph", max_shapes=GRAPH_SHAPES, device=cuda)
        else:
            config = TorchCudaConfig(mode="compile", compile_mode=name[len("torch-compile-fp16-"):], device=cuda)
        return TorchCudaBackend(model, config)
    if name.startswith("ort-cuda-"):
        return _ort_cuda(name, [path[k] for k in entry.files], device_id)
    return _tensorrt(name, path, device_id, buffers)


def _ort_cuda(name: str, paths: list[Path], device_id: int) -> Backend:
    from .onnxruntime_cuda import OrtCudaBackend, OrtCudaConfig

    config = OrtCudaConfig(cuda_graph=True, device_id=device_id, max_shapes=GRAPH_SHAPES)
    if len(paths) == 1:
        return OrtCudaBackend(paths[0], config, precision="fp16", name=name)
    from .padding import RightPaddingRouter

    exact = OrtCudaBackend(paths[0], config, precision="fp16", name=f"{name} (exact)")
    try:
        fast = OrtCudaBackend(paths[1], config, precision="fp16", name=f"{name} (fast)")
    except BaseException:
        exact.close()
        raise
    return RightPaddingRouter(exact, fast, name=name)


def _tensorrt(name: str, files: Mapping[str, Path], device_id: int, buffers: str) -> Backend:
    """04's engine, checked against the ONNX file its sidecar names, so that an engine built from an older
    export (or another model's) is refused rather than run."""
    from ..trt.metadata import read_metadata
    from .tensorrt import TensorRTBackend

    engine = files[spec(name).files[0]]
    built_from = read_metadata(engine).onnx_file
    source = next((p for k, p in files.items() if not k.startswith("engine-") and p.name == built_from), None)
    if source is None:
        onnx = sorted(p.name for k, p in files.items() if not k.startswith("engine-"))
        raise EngineMismatchError(f"{name}: {engine.name} was built from {built_from}, which is not one of this "
                                  f"model's ONNX files {onnx}; rebuild it with 04_build_engine.")
    return TensorRTBackend(engine, onnx_path=source, buffers=buffers, gpu=device_id)
