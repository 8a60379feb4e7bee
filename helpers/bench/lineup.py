"""Which backends a benchmark compares, built for one model, with a recorded reason for each one missing.

Names used in results (the key of each backend):

| name | what | where |
|---|---|---|
| ``pytorch`` | PyTorch fp32 eager (:class:`~helpers.backends.torch_backend.TorchBackend`) | CPU |
| ``onnxruntime`` / ``-fused`` / ``-int8`` | ONNX Runtime on the plain, fused and INT8 graphs | CPU |
| ``pytorch-cuda`` | PyTorch fp32 eager | GPU |
| ``torch-cuda-fp16`` / ``-graph`` | fp16 eager; fp16 CUDA-graph replay | GPU |
| ``torch-compile-fp16-<mode>`` | ``torch.compile`` fp16 | GPU |
| ``ort-cuda-fp16-graph`` | ONNX Runtime CUDA, FP16 graph of standard ops, I/O binding + CUDA graph | GPU, needs onnxruntime-gpu |
| ``ort-cuda-fused-fp16-graph`` | the same on the GPU-fused FP16 graph (``Attention``, SkipLayerNorm) | GPU, needs onnxruntime-gpu |
| ``ort-cuda-fused-fp16-rightpad-graph`` | the same, right-padded batches on the 1-D mask index graph (fused attention kernels), others on the exact one (:mod:`helpers.backends.padding`) | GPU, needs onnxruntime-gpu |
| ``tensorrt-fp32`` / ``tensorrt-fp16`` | TensorRT engines from notebook 04 | GPU, needs TensorRT |

A backend that cannot be built here (no GPU, no onnxruntime-gpu, no TensorRT, a missing file) is not an
error: it becomes a :class:`~helpers.bench.harness.Skip` whose reason the notebook shows. For TensorRT that
is only a missing TensorRT (or CUDA binding) or a missing engine: an engine whose sidecar does not fit (built
from another ONNX, TensorRT or GPU) or a runtime that fails stops the run, because benchmarking a stale engine
or hiding a failure behind "not available" would publish numbers that mean nothing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..backends.base import Backend
from ..backends.padding import route_by_padding
from ..errors import BackendError, EngineMismatchError, ExportError, MissingArtifactError, TensorRTUnavailableError
from .harness import Skip
from .system import ThreadSettings

CPU_BACKENDS: tuple[str, ...] = ("pytorch", "onnxruntime", "onnxruntime-fused", "onnxruntime-int8")
GPU_BACKENDS: tuple[str, ...] = ("pytorch-cuda", "torch-cuda-fp16", "torch-cuda-fp16-graph", "torch-compile",
                                 "ort-cuda", "ort-cuda-fused", "ort-cuda-fused-rightpad", "tensorrt-fp32", "tensorrt-fp16")
#: Speedups are reported over PyTorch fp32 eager on the same kind of device.
BASELINES = {"cpu": "pytorch", "cuda": "pytorch-cuda"}
#: Reference backends for logits and predictions, in order of preference (both PyTorch fp32 eager).
REFERENCES = ("pytorch-cuda", "pytorch")
#: Errors that mean "this backend is not available here", recorded as skips rather than raised.
UNAVAILABLE = (BackendError, MissingArtifactError, TensorRTUnavailableError, EngineMismatchError, ExportError)
#: The same for TensorRT: no TensorRT (or CUDA binding) here, or no engine file. Anything else is raised.
TENSORRT_UNAVAILABLE = (TensorRTUnavailableError, MissingArtifactError)
_ORT_VARIANTS = {"onnxruntime": "plain", "onnxruntime-fused": "fused", "onnxruntime-int8": "int8"}


@dataclass(frozen=True)
class LineupConfig:
    """Which backends to build. ``cpu`` / ``gpu`` list the names above (``torch-compile``, ``ort-cuda``,
    ``ort-cuda-fused`` and ``ort-cuda-fused-rightpad`` stand for their configured variants)."""

    cpu: tuple[str, ...] = CPU_BACKENDS
    gpu: tuple[str, ...] = GPU_BACKENDS
    compile_mode: str = "max-autotune"
    ort_cuda_graph: bool = True
    graph_max_shapes: int = 128


@dataclass
class Lineup:
    """Backends by name, plus the skipped ones with reasons. Close it to free sessions and GPU memory."""

    model: str
    backends: dict[str, Backend] = field(default_factory=dict)
    skipped: list[Skip] = field(default_factory=list)

    @property
    def reference(self) -> str | None:
        """The fp32 PyTorch backend others are compared with: on the GPU where there is one (it runs every
        shape quickly), else on the CPU; None when neither was built."""
        return next((n for n in REFERENCES if n in self.backends), None)

    def only(self, *names: str) -> dict[str, Backend]:
        """The built backends among ``names`` (in the line-up's order)."""
        return {n: b for n, b in self.backends.items() if n in names}

    def on(self, device: str) -> dict[str, Backend]:
        """The built backends on ``device`` (``cpu`` or ``cuda``)."""
        return {n: b for n, b in self.backends.items() if b.device == device}

    def close(self) -> None:
        for b in self.backends.values():
            b.close()
        self.backends.clear()

    def __enter__(self) -> "Lineup":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _try(lineup: Lineup, name: str, make: Callable[[], Backend],
         unavailable: tuple[type[Exception], ...] = UNAVAILABLE) -> None:
    try:
        lineup.backends[name] = make()
    except unavailable as exc:
        lineup.skipped.append(Skip(lineup.model, name, "*", str(exc)))


def _tensorrt_backend(engine: Path | None, precision: str, onnx: Mapping[str, Path]) -> Backend:
    """A TensorRT backend over notebook 04's engine, checked against the ONNX file its sidecar names, so that
    an engine built from an older export is refused rather than benchmarked."""
    if engine is None:
        raise MissingArtifactError(f"tensorrt-{precision}: no {precision} engine for this model; notebook "
                                   "04_build_engine builds one where TensorRT is installed.")
    from ..backends.tensorrt import TensorRTBackend
    from ..trt.compat import import_tensorrt
    from ..trt.metadata import read_metadata
    from ..trt.rtx import RtxRuntimeSettings, has_rtx_runtime

    trt = import_tensorrt()  # no TensorRT here: a skip, whatever the engine's state
    built_from = read_metadata(engine).onnx_file
    source = next((Path(p) for p in onnx.values() if p is not None and Path(p).name == built_from), None)
    if source is None:
        raise EngineMismatchError(f"tensorrt-{precision}: {Path(engine).name} was built from {built_from}, which is "
                                  f"not one of this model's ONNX files {sorted(Path(p).name for p in onnx.values() if p)}; "
                                  "rebuild it with 04_build_engine.")
    # TensorRT-RTX: compile each shape's specialised kernels before running it ("eager"), so that the warm-up,
    # not the timed calls, pays for them (its default, "lazy", times fallback kernels until they are ready).
    rtx = RtxRuntimeSettings(kernel_specialization="eager") if has_rtx_runtime(trt) else RtxRuntimeSettings()
    return TensorRTBackend(engine, onnx_path=source, trt=trt, rtx=rtx)


def build_lineup(model: Any, onnx: Mapping[str, Path], *, name: str, threads: ThreadSettings,
                 config: LineupConfig = LineupConfig(), engines: Mapping[str, Path] | None = None,
                 cuda: bool | None = None) -> Lineup:
    """Build the backends of ``config`` for ``model`` (a SentimentClassifier on the CPU) and its ONNX files.

    ``onnx`` maps variant (``plain``, ``fused``, ``int8``, ``fp16``, ``fused-fp16``) to a file; ``engines`` maps
    ``fp32``/``fp16`` to TensorRT engine files. ``cuda=None`` asks PyTorch whether a GPU is there.
    """
    import torch

    from ..backends.onnxruntime import OrtBackend, OrtConfig
    from ..backends.onnxruntime_cuda import OrtCudaBackend, OrtCudaConfig
    from ..backends.torch_backend import TorchBackend
    from ..backends.torch_gpu import TorchCudaBackend, TorchCudaConfig

    lineup = Lineup(name)
    ort_config = OrtConfig(intra_op_threads=threads.ort_intra_op, inter_op_threads=threads.ort_inter_op)
    for key in config.cpu:
        if key == "pytorch":
            _try(lineup, key, lambda: TorchBackend(model, "cpu"))
        elif key in _ORT_VARIANTS:
            path = onnx.get(_ORT_VARIANTS[key])
            _try(lineup, key, lambda p=path, k=key: OrtBackend(_need(p, k), ort_config))
        else:
            raise BackendError(f"unknown CPU backend {key!r}; choose from {CPU_BACKENDS}.")
    has_cuda = torch.cuda.is_available() if cuda is None else cuda
    for key in config.gpu:
        if key not in GPU_BACKENDS:
            raise BackendError(f"unknown GPU backend {key!r}; choose from {GPU_BACKENDS}.")
        if not has_cuda:
            lineup.skipped.append(Skip(name, key, "*", f"no CUDA GPU here (PyTorch {torch.__version__} sees none)."))
            continue
        if key == "pytorch-cuda":
            _try(lineup, key, lambda: TorchBackend(copy.deepcopy(model), "cuda"))
        elif key == "torch-cuda-fp16":
            _try(lineup, key, lambda: TorchCudaBackend(model, TorchCudaConfig()))
        elif key == "torch-cuda-fp16-graph":
            cfg = TorchCudaConfig(mode="cuda_graph", max_shapes=config.graph_max_shapes)
            _try(lineup, key, lambda: TorchCudaBackend(model, cfg))
        elif key == "torch-compile":
            cfg = TorchCudaConfig(mode="compile", compile_mode=config.compile_mode)
            _try(lineup, cfg.name, lambda: TorchCudaBackend(model, cfg))
        elif key in ("ort-cuda", "ort-cuda-fused", "ort-cuda-fused-rightpad"):
            cfg_o = OrtCudaConfig(cuda_graph=config.ort_cuda_graph, max_shapes=config.graph_max_shapes)
            variant = {"ort-cuda": "fp16", "ort-cuda-fused": "fused-fp16", "ort-cuda-fused-rightpad": "fused-fp16-rightpad"}[key]
            label = f"ort-cuda-{variant}" + ("-graph" if config.ort_cuda_graph else "")

            def ort_cuda(v: str, n: str) -> Backend:
                return OrtCudaBackend(_need(onnx.get(v), n), cfg_o, precision="fp16", name=n)

            if key == "ort-cuda-fused-rightpad":  # the exact graph for any batch, the fast one where it is right
                _try(lineup, label, lambda n=label: route_by_padding(ort_cuda("fused-fp16", n + " (exact)"),
                                                                     ort_cuda("fused-fp16-rightpad", n + " (fast)"), name=n))
            else:
                _try(lineup, label, lambda v=variant, n=label: ort_cuda(v, n))
        else:
            precision = key.split("-")[1]
            _try(lineup, key, lambda p=precision: _tensorrt_backend((engines or {}).get(p), p, onnx),
                 unavailable=TENSORRT_UNAVAILABLE)
    return lineup


def _need(path: Path | None, key: str) -> Path:
    if path is None or not Path(path).is_file():
        raise MissingArtifactError(f"{key}: ONNX file {path} is missing; run notebook 02_onnx_export first.")
    return Path(path)


def cpu_token_rule(max_tokens: int) -> Callable[[str, Backend, Any], str | None]:
    """A skip rule: CPU backends skip shapes of more than ``max_tokens`` tokens (0: never)."""
    def rule(name: str, backend: Backend, shape: Any) -> str | None:
        if max_tokens and backend.device == "cpu" and shape.tokens > max_tokens:
            return f"CPU backends are timed up to {max_tokens} tokens per call (bench_cpu_max_tokens)"
        return None
    return rule


def only_at(names_prefix: str, shapes: set[tuple[int, int]]) -> Callable[[str, Backend, Any], str | None]:
    """A skip rule: backends whose name starts with ``names_prefix`` run only at ``shapes``."""
    def rule(name: str, backend: Backend, shape: Any) -> str | None:
        if name.startswith(names_prefix) and (shape.batch, shape.seq_len) not in shapes:
            return f"{names_prefix} compiles every new shape; timed only at {sorted(shapes)} (bench_compile_shapes)"
        return None
    return rule


def combine(*rules: Callable[[str, Backend, Any], str | None]) -> Callable[[str, Backend, Any], str | None]:
    """A skip rule giving the first reason of ``rules``."""
    def rule(name: str, backend: Backend, shape: Any) -> str | None:
        for r in rules:
            reason = r(name, backend, shape)
            if reason:
                return reason
        return None
    return rule
