"""PyTorch classifier -> ONNX, with the I/O contract, metadata and checks every later step relies on.

The exported graph takes ``input_ids`` and ``segment_ids`` as int32 ``[batch, seq_len]`` (both axes dynamic;
the model casts to int64 inside) and returns ``logits`` float32 ``[batch, num_labels]`` with only the batch
axis dynamic. Probabilities are computed outside the graph. The opset is at least 17 so that the built-in
LayerNorm becomes one ONNX ``LayerNormalization`` node.

One bert4torch detail is changed *during export only*: bert4torch scales attention scores with a ``Mul``
by ``1/sqrt(head_size)``. ONNX Runtime's transformer optimizer looks for the mask's ``Mul`` among the
parents of the scores' ``Add``, finds the scale instead and fuses ``Attention`` zero times. The context
manager :func:`attention_scale_as_division` makes every attention layer of one model divide by
``sqrt(head_size)`` while the export runs (bit-identical for head size 64, a rounding step apart for other
sizes) and restores the model afterwards. With it, the optimizer fuses ``Attention`` on every layer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import types
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from .config import INPUT_DTYPE, INPUT_NAMES, OUTPUT_NAME
from .errors import ExportError, MissingArtifactError
from .io import atomic_write

#: File name of each ONNX variant inside artifacts/onnx/ (written by notebook 02, read by 04-06).
ONNX_FILES: dict[str, str] = {"plain": "model.onnx", "fused": "model.fused.onnx", "int8": "model.int8.onnx",
                              "fp16": "model.fp16.onnx", "fused-fp16": "model.fused.fp16.onnx",
                              "fused-fp16-rightpad": "model.fused.fp16.rightpad.onnx"}

#: Lowest opset with ONNX ``LayerNormalization``.
MIN_OPSET = 17
#: Value of the ``producer`` metadata key written by :func:`onnx_from_classifier`.
PRODUCER = "helpers.export"

@dataclass(frozen=True)
class ExportConfig:
    """How to export. ``sample_batch`` x ``sample_len`` is the shape traced (any shape works: axes are dynamic)."""

    opset: int = MIN_OPSET
    scale_as_division: bool = True
    sample_batch: int = 2
    sample_len: int = 16
    do_constant_folding: bool = True


@dataclass(frozen=True)
class OnnxSummary:
    """What :func:`check_onnx` found in a model file."""

    path: Path
    opset: int
    inputs: dict[str, tuple[str, list[str | int]]]
    outputs: dict[str, tuple[str, list[str | int]]]
    op_counts: dict[str, int]
    metadata: dict[str, str] = field(default_factory=dict)

    def count(self, op_type: str) -> int:
        return int(self.op_counts.get(op_type, 0))


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor of a model or engine: ``shape`` uses -1 for dynamic axes."""

    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]


# ------------------------------------------------------------------------------------------ export patch
@contextlib.contextmanager
def attention_scale_as_division(model: Any) -> Iterator[int]:
    """Within the block, every bert4torch attention layer of ``model`` divides scores by ``sqrt(head_size)``.

    Only instances of ``model`` are touched (an instance attribute shadows the class method) and the
    attribute is removed on exit, even after an error; other models and the class itself never change.
    Layers whose class overrides ``apply_attention_scale`` (ALiBi, DeBERTa, ...) are left alone. Yields the
    number of layers patched.
    """
    from bert4torch.layers.attention.attention_layer import MultiHeadAttention

    def divide(self: Any, scores: Any) -> Any:
        return scores / math.sqrt(self.attention_head_size)

    patched = [
        m for m in model.modules()
        if isinstance(m, MultiHeadAttention)
        and type(m).apply_attention_scale is MultiHeadAttention.apply_attention_scale
        and "apply_attention_scale" not in vars(m)
    ]
    try:
        for m in patched:
            m.apply_attention_scale = types.MethodType(divide, m)
        yield len(patched)
    finally:
        for m in patched:
            vars(m).pop("apply_attention_scale", None)


# ------------------------------------------------------------------------------------------ export
def sample_feed(batch: int, seq_len: int, vocab_size: int, *, seed: int = 0,
                pad_inside: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Random int32 ``(input_ids, segment_ids)`` of one shape; with ``pad_inside``, id 0 appears mid-row too.

    Column 0 is never padding, so no row is all padding (a real batch always starts with [CLS]).
    """
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, max(vocab_size, 2), size=(batch, seq_len)).astype(INPUT_DTYPE)
    if pad_inside and seq_len > 2:
        holes = rng.random((batch, seq_len)) < 0.15
        holes[:, 0] = False
        ids[holes] = 0
        tail = rng.integers(1, seq_len + 1, size=batch)  # right padding of a random length
        for r, keep in enumerate(tail):
            ids[r, max(int(keep), 1):] = 0
    return ids, np.zeros_like(ids)


def export_metadata(model: Any, *, labels: list[str], max_len: int, opset: int, model_size: str = "unknown",
                    checkpoint_fingerprint: str = "none", checkpoint_path: str = "none",
                    variant: str = "plain", extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The ``metadata_props`` of an exported classifier (all values are strings; lists as JSON)."""
    cfg = getattr(model, "config", {})
    meta = {
        "producer": PRODUCER,
        "variant": variant,
        "precision": "fp32",
        "checkpoint_fingerprint": str(checkpoint_fingerprint),
        "checkpoint_path": str(checkpoint_path),
        "model_size": str(model_size),
        "labels": json.dumps(list(labels), ensure_ascii=False),
        "max_len": str(int(max_len)),
        "max_position": str(int(cfg.get("max_position", 512))),
        "vocab_size": str(int(cfg.get("vocab_size", 0))),
        "hidden_size": str(int(cfg.get("hidden_size", 0))),
        "num_hidden_layers": str(int(cfg.get("num_hidden_layers", 0))),
        "num_attention_heads": str(int(cfg.get("num_attention_heads", 0))),
        "opset": str(int(opset)),
        "input_dtype": INPUT_DTYPE.name,
        "input_names": json.dumps(list(INPUT_NAMES)),
        "output_name": OUTPUT_NAME,
        "attention_scale": "division",
        "ort_disabled_optimizers": "[]",
    }
    meta.update({k: (v if isinstance(v, str) else json.dumps(v)) for k, v in dict(extra or {}).items()})
    return meta


def set_metadata(model_proto: Any, meta: Mapping[str, str]) -> None:
    """Replace ``model_proto``'s ``metadata_props`` entries named in ``meta`` (others are kept)."""
    keep = {p.key: p.value for p in model_proto.metadata_props if p.key not in meta}
    del model_proto.metadata_props[:]
    for key, value in {**keep, **meta}.items():
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = str(key), str(value)


def onnx_from_classifier(model: Any, path: str | os.PathLike[str], *, labels: list[str], max_len: int,
                         model_size: str = "unknown", checkpoint_fingerprint: str = "none",
                         checkpoint_path: str = "none", config: ExportConfig = ExportConfig()) -> OnnxSummary:
    """Export a :class:`~helpers.model.SentimentClassifier` to ``path`` (atomically) and check the file.

    Notebook 02 writes this ``torch.onnx.export`` call out in its own cells for the trained model (and
    ``tests/test_export.py`` proves both give the same graph); this function makes the same export for every
    other caller (06's architecture models, the speed study, the tests). It uses the legacy TorchScript
    exporter (``dynamo=False``): bert4torch's mask code has data-dependent checks that the dynamo exporter trips
    on. Raises :class:`ExportError` if the result breaks the I/O contract or the checks of :func:`check_onnx`.
    """
    import onnx
    import torch

    if config.opset < MIN_OPSET:
        raise ExportError(f"export: opset {config.opset} has no LayerNormalization; use opset >= {MIN_OPSET}.")
    vocab = int(getattr(model, "config", {}).get("vocab_size", 100))
    ids, seg = sample_feed(config.sample_batch, config.sample_len, vocab)
    axes = {"batch": 0, "seq_len": 1}
    dynamic_axes = {name: {i: n for n, i in axes.items()} for name in INPUT_NAMES}
    dynamic_axes[OUTPUT_NAME] = {0: "batch"}  # the class axis is fixed: it is not a sequence axis
    was_training = model.training
    model.eval()
    buffer = io.BytesIO()
    scale = attention_scale_as_division(model) if config.scale_as_division else contextlib.nullcontext(0)
    try:
        with scale, torch.no_grad(), warnings.catch_warnings():
            # The legacy exporter is chosen on purpose (see above); bert4torch's one trace-time branch
            # (``position_ids.shape[0] == 1``) is always true because position ids are built as [1, seq_len].
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(
                model, (torch.from_numpy(ids), torch.from_numpy(seg)), buffer,
                input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME], dynamic_axes=dynamic_axes,
                opset_version=config.opset, do_constant_folding=config.do_constant_folding, dynamo=False,
            )
    except Exception as exc:
        raise ExportError(f"export: torch.onnx.export failed ({type(exc).__name__}: {exc}).") from exc
    finally:
        model.train(was_training)
    return _keep_export(onnx.load_from_string(buffer.getvalue()), path, model, labels=labels, max_len=max_len,
                        model_size=model_size, checkpoint_fingerprint=checkpoint_fingerprint,
                        checkpoint_path=checkpoint_path,
                        attention_scale="division" if config.scale_as_division else "multiplication")


def save_export(graph: Any, path: str | os.PathLike[str], checkpoint: Any) -> OnnxSummary:
    """Write the ONNX ``graph`` that 02 exported from ``checkpoint``'s model to ``path`` and check it.

    The file gets the metadata every later step reads (labels, ``max_len``, the model's architecture, the
    checkpoint's fingerprint and path, ``attention_scale: division``: 02 exports inside
    :func:`attention_scale_as_division`), is written atomically, and must pass :func:`check_onnx` (the checker,
    strict shape inference and the I/O contract), else :class:`ExportError`.
    """
    meta = checkpoint.meta
    return _keep_export(graph, path, checkpoint.model, labels=list(checkpoint.labels), max_len=checkpoint.max_len,
                        model_size=str(meta.get("model_size", "unknown")),
                        checkpoint_fingerprint=str(meta.get("fingerprint", "none")),
                        checkpoint_path=str(checkpoint.path), attention_scale="division")


def _keep_export(graph: Any, path: str | os.PathLike[str], model: Any, *, labels: list[str], max_len: int,
                 model_size: str, checkpoint_fingerprint: str, checkpoint_path: str,
                 attention_scale: str) -> OnnxSummary:
    import onnx

    opset = max((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise ExportError(f"export: opset {opset} has no LayerNormalization; export with opset_version >= {MIN_OPSET}.")
    meta = export_metadata(model, labels=labels, max_len=max_len, opset=opset, model_size=model_size,
                           checkpoint_fingerprint=checkpoint_fingerprint, checkpoint_path=checkpoint_path,
                           extra={"attention_scale": attention_scale})
    set_metadata(graph, meta)
    checked: list[OnnxSummary] = []

    def write(tmp: Path) -> None:  # checked before it takes the name: a failing graph never replaces a file
        onnx.save_model(graph, str(tmp))
        try:
            checked.append(check_onnx(tmp))
        except ExportError as exc:
            raise ExportError(str(exc).replace(str(tmp), str(path))) from None

    path = atomic_write(path, write)
    return dataclasses.replace(checked[0], path=path)


def save_onnx(model_proto: Any, path: str | os.PathLike[str]) -> Path:
    """Save an ONNX ``ModelProto`` to ``path`` atomically (one file, no external data; < 2 GB)."""
    import onnx

    return atomic_write(path, lambda tmp: onnx.save_model(model_proto, str(tmp)))


# ------------------------------------------------------------------------------------------ reading / checks
def load_onnx(path: str | os.PathLike[str], *, load_external_data: bool = True) -> Any:
    """Load an ONNX file with clear errors for a missing or unreadable file.

    Every ONNX file the series reads goes through here (``load_external_data=False`` reads the graph without
    weights stored beside it)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise MissingArtifactError(
            f"no ONNX model at {path}; run notebook 02_onnx_export first (or point artifacts_dir at its output)."
        )
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning-derived or OSError
        raise ExportError(
            f"{path} is not a readable ONNX model ({type(exc).__name__}); the file is corrupt or truncated. "
            "Re-run 02_onnx_export to write it again."
        ) from None


def io_specs_from_onnx(path: str | os.PathLike[str]) -> tuple[TensorSpec, ...]:
    """The I/O tensors of an ONNX file (-1 for symbolic axes), read through :func:`load_onnx`: what an engine
    built from it will have, so the buffers a machine with TensorRT would allocate can be shown anywhere."""
    import onnx

    proto = load_onnx(path)
    initializers = {t.name for t in proto.graph.initializer}
    specs = []
    for is_input, values in ((True, proto.graph.input), (False, proto.graph.output)):
        for vi in values:
            if vi.name in initializers:
                continue
            t = vi.type.tensor_type
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type))
            shape = tuple(int(d.dim_value) if d.HasField("dim_value") else -1 for d in t.shape.dim)
            specs.append(TensorSpec(vi.name, is_input, dtype, shape))
    return tuple(specs)


def _value_info(vi: Any) -> tuple[str, list[str | int]]:
    import onnx

    t = vi.type.tensor_type
    dims: list[str | int] = [d.dim_param if d.HasField("dim_param") else int(d.dim_value) for d in t.shape.dim]
    return onnx.TensorProto.DataType.Name(t.elem_type).lower(), dims


def check_contract(inputs: Mapping[str, tuple[str, list[str | int]]],
                   outputs: Mapping[str, tuple[str, list[str | int]]], where: str) -> None:
    """Raise :class:`ExportError` unless the I/O match this project's classifier (see the module docstring)."""
    expected_in = list(INPUT_NAMES)
    if list(inputs) != expected_in or list(outputs) != [OUTPUT_NAME]:
        raise ExportError(
            f"{where} is not a classifier exported by this project: expected inputs {expected_in} and output "
            f"['{OUTPUT_NAME}'], found inputs {list(inputs)} and outputs {list(outputs)}. "
            "Export the checkpoint with helpers.export.onnx_from_classifier (notebook 02_onnx_export)."
        )
    for name, (dtype, dims) in inputs.items():
        if dtype != INPUT_DTYPE.name or len(dims) != 2:
            raise ExportError(
                f"{where}: input {name!r} must be {INPUT_DTYPE.name} [batch, seq_len], found {dtype} {dims}. "
                "Re-export with notebook 02_onnx_export."
            )
    dtype, dims = outputs[OUTPUT_NAME]
    if dtype != "float" or len(dims) != 2:
        raise ExportError(f"{where}: output '{OUTPUT_NAME}' must be float [batch, num_labels], found {dtype} {dims}.")


def check_onnx(path: str | os.PathLike[str], *, strict: bool = True) -> OnnxSummary:
    """Run ``onnx.checker`` and strict shape inference on ``path``; check the I/O contract; summarise.

    With ``strict`` the dynamic axes are checked too: both inputs dynamic in batch and sequence, the
    logits dynamic in batch only and fixed in the class axis. Graphs with ONNX Runtime contrib ops
    (``com.microsoft``) pass the checker, which does not know their schemas.
    """
    import onnx

    path = Path(path)
    proto = load_onnx(path)
    try:
        onnx.checker.check_model(str(path), full_check=False)
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"{path} fails the ONNX checks: {str(exc).splitlines()[0]}") from None
    inputs = {vi.name: _value_info(vi) for vi in inferred.graph.input}
    outputs = {vi.name: _value_info(vi) for vi in inferred.graph.output}
    check_contract(inputs, outputs, str(path))
    if strict:
        for name, (_, dims) in inputs.items():
            if not all(isinstance(d, str) and d for d in dims):
                raise ExportError(f"{path}: input {name!r} must have dynamic batch and seq_len axes, found {dims}.")
        dims = outputs[OUTPUT_NAME][1]
        if not (isinstance(dims[0], str) and isinstance(dims[1], int) and dims[1] >= 2):
            raise ExportError(f"{path}: logits must be [batch (dynamic), num_labels (fixed)], found {dims}.")
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    counts = Counter(n.op_type for n in proto.graph.node)
    meta = {p.key: p.value for p in proto.metadata_props}
    return OnnxSummary(path, int(opset), inputs, outputs, dict(sorted(counts.items())), meta)


#: Metadata keys whose values are JSON (lists); the keys in ``_INT_KEYS`` hold integers.
_JSON_KEYS = frozenset({"labels", "input_names", "ort_disabled_optimizers"})
_INT_KEYS = frozenset({"max_len", "max_position", "vocab_size", "hidden_size", "num_hidden_layers",
                       "num_attention_heads", "opset"})


def decode_metadata(props: Mapping[str, str]) -> dict[str, Any]:
    """Turn string ``metadata_props`` into Python values: JSON lists decoded, integers as ints."""
    out: dict[str, Any] = dict(props)
    for key in _JSON_KEYS & props.keys():
        out[key] = json.loads(props[key])
    for key in _INT_KEYS & props.keys():
        out[key] = int(props[key])
    return out


def onnx_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata written at export, decoded by :func:`decode_metadata`."""
    return decode_metadata({p.key: p.value for p in load_onnx(path).metadata_props})
