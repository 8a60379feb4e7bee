"""ONNX Runtime backend: one ``InferenceSession`` over a model written by notebook 02.

The session's recipe comes from an :class:`OrtConfig` and, where the config leaves it open, from the
model's own metadata: a fused graph built with SkipLayerNormalization fusion off records that the session
must not fuse it back (``ort_disabled_optimizers``). Loading checks the file (missing, corrupt, foreign)
and the model's inputs and outputs against the project's I/O contract, with errors that say what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import INPUT_NAMES, OUTPUT_NAME
from ..errors import BackendError, ExportError, MissingArtifactError
from ..export import check_contract, decode_metadata
from .base import Backend

#: ``OrtConfig.optimization_level`` names -> ``onnxruntime.GraphOptimizationLevel`` members.
OPTIMIZATION_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                       "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


@dataclass(frozen=True)
class OrtConfig:
    """How to open an ONNX Runtime session.

    ``intra_op_threads=None`` lets ONNX Runtime use every physical core; ``disabled_optimizers=None`` takes
    the list recorded in the model's metadata (empty for a model without one). ``allow_spinning=False``
    makes idle worker threads sleep at once instead of spin-waiting for the next run: slightly slower for
    one model alone, but fair when several backends share the cores (a side-by-side benchmark), because
    spinning threads steal the cores from whatever runs next.
    """

    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    optimization_level: str = "all"
    intra_op_threads: int | None = None
    inter_op_threads: int | None = 1
    disabled_optimizers: tuple[str, ...] | None = None
    allow_spinning: bool = True


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _ort_type(type_str: str) -> str:
    """``'tensor(int32)'`` -> ``'int32'``."""
    return type_str[len("tensor("):-1] if type_str.startswith("tensor(") else type_str


class OrtBackend(Backend):
    """Runs an exported classifier with ONNX Runtime (CPU by default; any installed provider)."""

    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike[str], config: OrtConfig = OrtConfig(), *,
                 max_batch: int | None = None, max_len: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.config = config
        if not self.path.is_file():
            raise MissingArtifactError(
                f"onnxruntime: no ONNX model at {self.path}; run notebook 02_onnx_export first "
                "(or point artifacts_dir at its output)."
            )
        if config.optimization_level not in OPTIMIZATION_LEVELS:
            raise BackendError(f"onnxruntime: optimization_level must be one of {list(OPTIMIZATION_LEVELS)}, "
                               f"got {config.optimization_level!r}.")
        available = ort.get_available_providers()
        missing = [p for p in config.providers if p not in available]
        if missing or not config.providers:
            raise BackendError(
                f"onnxruntime: providers {missing or '[]'} are not available in this onnxruntime "
                f"{ort.__version__} (available: {available}); install onnxruntime-gpu for CUDA or use "
                "('CPUExecutionProvider',)."
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATION_LEVELS[config.optimization_level])
        if config.intra_op_threads is not None:
            options.intra_op_num_threads = int(config.intra_op_threads)
        if config.inter_op_threads is not None:
            options.inter_op_num_threads = int(config.inter_op_threads)
        options.log_severity_level = 3  # errors only; warnings about unused initializers are noise here
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.allow_spinning else "0")
        meta = self._read_metadata(ort, options)
        disabled = list(meta.get("ort_disabled_optimizers", []) if config.disabled_optimizers is None
                        else config.disabled_optimizers)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=list(config.providers),
                                                disabled_optimizers=disabled)
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise ExportError(
                f"onnxruntime: {self.path} could not be loaded ({_short(exc)}); the file is corrupt, truncated "
                "or not an ONNX model. Re-run 02_onnx_export to write it again."
            ) from None
        check_contract({i.name: (_ort_type(i.type), list(i.shape)) for i in self.session.get_inputs()},
                       {o.name: (_ort_type(o.type), list(o.shape)) for o in self.session.get_outputs()},
                       str(self.path))
        self.metadata = meta
        self.disabled_optimizers = disabled
        self.variant = str(meta.get("variant", "external"))
        self.precision = str(meta.get("precision", "fp32"))
        self.labels = list(meta.get("labels", []))
        self.vocab_size = int(meta["vocab_size"]) if meta.get("vocab_size") else None
        limit = meta.get("max_position")
        if max_len is not None and limit is not None and max_len > int(limit):
            raise BackendError(f"onnxruntime: max_len {max_len} is above the model's {limit} position embeddings.")
        super().__init__(max_batch=max_batch, max_len=max_len if max_len is not None else limit)
        first = config.providers[0]
        self.device = "cuda" if first.startswith(("CUDA", "Tensorrt")) else "cpu"
        self.name = "onnxruntime" if self.variant in ("plain", "external") else f"onnxruntime-{self.variant}"

    def _read_metadata(self, ort: Any, options: Any) -> dict[str, Any]:
        """Metadata of the file, read without building a full session (graph optimisation disabled)."""
        light = ort.SessionOptions()
        light.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        light.log_severity_level = 3
        try:
            probe = ort.InferenceSession(str(self.path), light, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ExportError(
                f"onnxruntime: {self.path} could not be loaded ({_short(exc)}); the file is corrupt, truncated "
                "or not an ONNX model. Re-run 02_onnx_export to write it again."
            ) from None
        return decode_metadata(probe.get_modelmeta().custom_metadata_map)

    def _run(self, input_ids: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
        if self.session is None:
            raise BackendError(f"{self.name}: this backend was closed; create a new OrtBackend.")
        try:
            (logits,) = self.session.run([OUTPUT_NAME], {INPUT_NAMES[0]: input_ids, INPUT_NAMES[1]: segment_ids})
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise BackendError(f"{self.name}: run failed on a batch of shape {input_ids.shape} ({_short(exc)}).") from exc
        return np.asarray(logits, dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {**super().describe(), "path": str(self.path), "variant": self.variant,
                "providers": list(self.config.providers), "optimization_level": self.config.optimization_level,
                "intra_op_threads": self.config.intra_op_threads, "disabled_optimizers": self.disabled_optimizers,
                "allow_spinning": self.config.allow_spinning,
                "onnxruntime": ort.__version__}

    def close(self) -> None:
        self.session = None
