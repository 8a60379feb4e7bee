"""ONNX variants of the plain export: optimizer-fused (ONNX Runtime), dynamic INT8, and FP16 (for GPUs).

Each function reads one ONNX file written by :func:`helpers.export.onnx_from_classifier` (or by another
function here), writes one new file atomically, copies the metadata with ``variant`` / ``precision`` /
``source_sha256`` updated, and returns what it did.

* :func:`fused_onnx_from_plain` runs ``onnxruntime.transformers.optimizer`` with the raw 2-D attention mask
  (bert4torch treats every id 0 as padding, so 0 may appear inside a row; the optimizer's default mask
  format assumes right padding) and checks that ``Attention`` fused on every layer. SkipLayerNormalization
  fusion is an option because on some CPUs its kernel is slower than the Add + LayerNormalization it
  replaces; when it is off, the file's metadata tells ONNX Runtime sessions to leave it off too.
* :func:`int8_onnx_from` applies dynamic quantisation (weights int8, activations quantised at run time).

Notebook 02 writes the ``optimize_model`` and ``quantize_dynamic`` calls out for the trained model and hands
their results to :func:`keep_fused` and :func:`keep_int8`, the same checks and metadata the two functions above
end with; ``tests/test_export.py`` runs 02's cells and proves they make the graphs these functions make.
* :func:`fp16_onnx_from_plain` converts the plain export (standard ops only, what TensorRT's parser needs)
  to FP16 with LayerNormalization and Softmax kept in FP32 and the attention-mask fill value made
  FP16-safe; inputs and outputs keep their types (int32 in, float32 logits out).
* :func:`fused_fp16_onnx_from_plain` is ONNX Runtime CUDA's fast path: the optimizer-fused graph (``Attention``,
  SkipLayerNormalization, BiasGelu) converted to FP16 as a whole. Only ONNX Runtime runs it (contrib ops).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import ExportError
from .export import load_onnx, onnx_metadata, save_onnx, set_metadata
from .io import atomic_write, sha256_file

#: ONNX Runtime session optimizer that fuses Add + Add + LayerNormalization into SkipLayerNormalization.
SKIP_LAYER_NORM_OPTIMIZER = "SkipLayerNormFusion"
#: Mask fill value of the FP16 graph: BERT's original -10000. exp(-1e4) is 0 in FP16 and FP32 alike, so
#: masked keys keep exactly zero weight, and (1 - mask) * -1e4 never overflows FP16 (max 65504).
FP16_MASK_VALUE = -1.0e4
#: Ops kept in FP32 inside the FP16 graph (their reductions lose accuracy in FP16).
FP16_KEEP_FP32 = ("LayerNormalization", "Softmax")


@dataclass(frozen=True)
class FusionConfig:
    """Options of the ONNX Runtime transformer optimizer that matter for this model."""

    skip_layer_norm: bool = False
    raw_attention_mask: bool = True
    bias_gelu: bool = True


@dataclass(frozen=True)
class VariantReport:
    """One variant written: where, from what, and what changed (op counts, notes)."""

    path: Path
    variant: str
    source: Path
    op_counts: dict[str, int]
    notes: dict[str, Any]

    def count(self, op_type: str) -> int:
        return int(self.op_counts.get(op_type, 0))


def op_counts(model_proto: Any) -> dict[str, int]:
    """How many nodes of each op type a graph has."""
    return dict(sorted(Counter(n.op_type for n in model_proto.graph.node).items()))


def _derived_metadata(source: Path, variant: str, precision: str, **extra: Any) -> dict[str, str]:
    meta = {"variant": variant, "precision": precision, "source_file": source.name,
            "source_sha256": sha256_file(source)}
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()})
    return meta


# ------------------------------------------------------------------------------------------ fused
def _fuse(source: Path, config: FusionConfig, *, use_gpu: bool = False) -> Any:
    """Run ONNX Runtime's BERT optimizer on ``source`` with ``config``; returns its ``OnnxModel``."""
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import AttentionMaskFormat, FusionOptions

    meta = onnx_metadata(source)
    options = FusionOptions("bert")
    options.enable_skip_layer_norm = config.skip_layer_norm
    options.enable_bias_gelu = config.bias_gelu
    if config.raw_attention_mask:
        options.attention_mask_format = AttentionMaskFormat.AttentionMask
    # opt_level=0: only the Python fusions run here; the session applies its own graph optimisations later.
    return optimizer.optimize_model(str(source), "bert", num_heads=meta["num_attention_heads"],
                                    hidden_size=meta["hidden_size"], optimization_options=options, opt_level=0,
                                    use_gpu=use_gpu)


def _check_fused(optimized: Any, source: Path) -> tuple[dict[str, int], int]:
    """Op counts and layers of an optimizer-fused graph of ``source``; :class:`ExportError` unless every layer
    got one ``Attention`` (the usual cause: a graph exported without the attention scale as a division)."""
    meta = onnx_metadata(source)
    counts, layers = op_counts(optimized.model), meta["num_hidden_layers"]
    fused = counts.get("Attention", 0)
    if fused != layers:
        hint = ("the graph was exported with the scale as a Mul; export inside attention_scale_as_division(model)"
                if meta.get("attention_scale") != "division" else "check the optimizer's log above")
        raise ExportError(f"fuse: Attention fused on {fused} of {layers} layers of {source.name}; {hint}.")
    return counts, layers


def keep_fused(optimized: Any, path: str | os.PathLike[str], *, source: str | os.PathLike[str],
               config: FusionConfig) -> VariantReport:
    """Check the optimizer's result for ``source`` (every layer one ``Attention``, else :class:`ExportError`)
    and write it to ``path`` atomically, its metadata naming its source, the fusion options and the session
    optimizers to leave off (SkipLayerNormalization fusion, when ``config`` has it off)."""
    source, path = Path(source), Path(path)
    counts, layers = _check_fused(optimized, source)
    disabled = [] if config.skip_layer_norm else [SKIP_LAYER_NORM_OPTIMIZER]
    set_metadata(optimized.model, _derived_metadata(
        source, "fused", "fp32", ort_disabled_optimizers=disabled, fusion=json.dumps(asdict(config))))
    # save_model_to_file (not save_onnx) adds the com.microsoft opset import that the contrib ops need
    atomic_write(path, lambda tmp: optimized.save_model_to_file(str(tmp)))
    return VariantReport(path, "fused", source, counts, {"attention_fused": counts["Attention"], "layers": layers,
                                                         "ort_disabled_optimizers": disabled})


def fused_onnx_from_plain(source: str | os.PathLike[str], path: str | os.PathLike[str],
                          config: FusionConfig = FusionConfig()) -> VariantReport:
    """Fuse the plain export with ONNX Runtime's BERT optimizer and keep it (:func:`keep_fused`)."""
    return keep_fused(_fuse(Path(source), config), path, source=source, config=config)


# ------------------------------------------------------------------------------------------ int8
class _DropRecord(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


@contextlib.contextmanager
def _without_preprocessing_hint() -> Iterator[None]:
    """``quantize_dynamic`` logs, on the root logger, a hint to run its pre-processing (shape inference and
    graph optimisation) first. Here the fused graph is already optimised and the session optimises the plain
    one, so only that one record is dropped, and only while quantising."""
    drop = _DropRecord("Please consider to run pre-processing before quantization")
    root = logging.getLogger()
    handlers = [root, *root.handlers]
    for h in handlers:
        h.addFilter(drop)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(drop)


def keep_int8(quantized: str | os.PathLike[str], path: str | os.PathLike[str], *, source: str | os.PathLike[str],
              disabled_optimizers: list[str] | None = None, per_channel: bool = False) -> VariantReport:
    """Give ``quantize_dynamic``'s output ``quantized`` (made from ``source``) its metadata and move it to ``path``
    atomically; ``quantized`` is gone afterwards. The session optimizers to disable are recorded:
    ``disabled_optimizers``, or when ``None`` the list recorded in ``source``."""
    import onnx

    quantized, source, path = Path(quantized), Path(source), Path(path)
    src_meta = onnx_metadata(source)
    disabled = list(src_meta.get("ort_disabled_optimizers", []) if disabled_optimizers is None else disabled_optimizers)
    proto = load_onnx(quantized)
    set_metadata(proto, _derived_metadata(source, "int8", "int8", source_variant=src_meta.get("variant", "plain"),
                                          ort_disabled_optimizers=disabled))
    atomic_write(path, lambda tmp: onnx.save_model(proto, str(tmp)))
    if quantized != path:
        quantized.unlink(missing_ok=True)
    return VariantReport(path, "int8", source, op_counts(proto), {"source_variant": src_meta.get("variant", "plain"),
                                                                  "per_channel": per_channel,
                                                                  "ort_disabled_optimizers": disabled})


def int8_onnx_from(source: str | os.PathLike[str], path: str | os.PathLike[str], *, per_channel: bool = False,
                   disabled_optimizers: list[str] | None = None) -> VariantReport:
    """Dynamic INT8 quantisation of ``source`` (plain or fused): int8 weights, activations at run time; kept
    with :func:`keep_int8`.

    ``DefaultTensorType`` tells the quantizer the element type of tensors whose type it cannot infer
    (outputs of contrib ops in a fused graph); without it quantising a fused graph fails.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, path = Path(source), Path(path)
    with tempfile.TemporaryDirectory(prefix="int8-", dir=path.parent) as tmp:
        quantized = Path(tmp) / path.name
        with _without_preprocessing_hint():
            quantize_dynamic(str(source), str(quantized), weight_type=QuantType.QInt8, per_channel=per_channel,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        return keep_int8(quantized, path, source=source, disabled_optimizers=disabled_optimizers,
                         per_channel=per_channel)


# ------------------------------------------------------------------------------------------ fp16
def fp16_safe_constants(model_proto: Any, fill_value: float = FP16_MASK_VALUE) -> int:
    """Replace scalar float constants below FP16's lowest value (bert4torch's mask fill
    ``finfo(float32).min``) by ``fill_value`` in place; return how many were replaced.

    Raises :class:`ExportError` if a larger float tensor holds values beyond FP16's range: that would
    need a decision this function should not take silently.
    """
    from onnx import numpy_helper

    lowest = float(np.finfo(np.float16).min)
    replaced = 0

    def fix(tensor: Any, where: str) -> Any:
        nonlocal replaced
        arr = numpy_helper.to_array(tensor)
        if arr.dtype != np.float32 or arr.size == 0 or np.abs(arr).max() <= -lowest:
            return None
        if arr.size == 1 and float(arr.reshape(-1)[0]) < lowest:
            replaced += 1
            return numpy_helper.from_array(np.full(arr.shape, fill_value, dtype=np.float32), tensor.name)
        raise ExportError(f"fp16: {where} holds values outside FP16's range (max |x| = {np.abs(arr).max():.3g}).")

    for init in model_proto.graph.initializer:
        new = fix(init, f"initializer {init.name}")
        if new is not None:
            init.CopyFrom(new)
    for node in model_proto.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    new = fix(attr.t, f"constant {node.name}")
                    if new is not None:
                        attr.t.CopyFrom(new)
    return replaced


def fp16_onnx_from_plain(source: str | os.PathLike[str], path: str | os.PathLike[str]) -> VariantReport:
    """FP16 graph for GPUs (TensorRT, ONNX Runtime CUDA) from the plain export.

    Steps: refuse a fused source (TensorRT cannot parse com.microsoft contrib ops); make the mask fill
    value FP16-safe (:func:`fp16_safe_constants`); convert with ``keep_io_types`` so that int32 inputs and
    float32 logits stay as in the plain model, and with :data:`FP16_KEEP_FP32` blocked from conversion.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    source, path = Path(source), Path(path)
    proto = load_onnx(source)
    contrib = sorted({n.op_type for n in proto.graph.node if n.domain not in ("", "ai.onnx")})
    if contrib:
        raise ExportError(
            f"fp16: {source.name} holds ONNX Runtime contrib ops {contrib}; convert the plain export "
            "(model.onnx), whose standard ops TensorRT can parse."
        )
    replaced = fp16_safe_constants(proto)
    converted = convert_float_to_float16(proto, keep_io_types=True, op_block_list=list(FP16_KEEP_FP32))
    # The converter appends its Cast nodes at the end of the node list; ONNX (and TensorRT's parser) want
    # nodes in topological order.
    OnnxModel(converted).topological_sort(is_deterministic=True)
    onnx.checker.check_model(converted)
    set_metadata(converted, _derived_metadata(source, "fp16", "fp16", fp16_mask_value=str(FP16_MASK_VALUE),
                                              fp16_kept_fp32=list(FP16_KEEP_FP32)))
    save_onnx(converted, path)
    return VariantReport(path, "fp16", source, op_counts(converted),
                         {"mask_constants_replaced": replaced, "kept_fp32": list(FP16_KEEP_FP32)})


# ------------------------------------------------------------------------------------------ fused fp16
#: Fusion options of the GPU graph: on a GPU the SkipLayerNormalization kernel is the fast one.
GPU_FUSION = FusionConfig(skip_layer_norm=True)
#: The same with the 1-D mask index, which lets ONNX Runtime CUDA use its fused attention kernels but is right
#: only for right-padded rows (helpers.backends.padding routes each batch to the graph that is right for it).
RIGHT_PADDED_GPU_FUSION = FusionConfig(skip_layer_norm=True, raw_attention_mask=False)


def fused_fp16_onnx_from_plain(source: str | os.PathLike[str], path: str | os.PathLike[str],
                               config: FusionConfig = GPU_FUSION) -> VariantReport:
    """FP16 graph for ONNX Runtime CUDA: the plain export fused for a GPU, then converted to FP16 whole.

    Steps: fuse with ``use_gpu=True`` (every layer must get one ``Attention``, as in
    :func:`fused_onnx_from_plain`); make scalar constants below FP16's range FP16-safe; set each
    ``Attention``'s ``mask_filter_value`` (the optimizer copies bert4torch's ``finfo(float32).min``) to
    :data:`FP16_MASK_VALUE`; convert to FP16 with ``keep_io_types`` (int32 ids in, float32 logits out).
    ONNX Runtime's fused kernels keep their reductions (softmax, layer norm) in FP32 internally.

    With :data:`GPU_FUSION` (the raw 2-D mask) the graph is right for any padding and is written as variant
    ``fused-fp16``; with :data:`RIGHT_PADDED_GPU_FUSION` (the 1-D mask index) it is right for right-padded rows
    only and is written as ``fused-fp16-rightpad``.
    """
    source, path = Path(source), Path(path)
    variant = "fused-fp16" if config.raw_attention_mask else "fused-fp16-rightpad"
    optimized = _fuse(source, config, use_gpu=True)
    _, layers = _check_fused(optimized, source)
    replaced = fp16_safe_constants(optimized.model)
    lowest = float(np.finfo(np.float16).min)
    for node in optimized.model.graph.node:
        if node.op_type == "Attention":
            for attr in node.attribute:
                if attr.name == "mask_filter_value" and attr.f < lowest:
                    attr.f = FP16_MASK_VALUE
                    replaced += 1
    optimized.convert_float_to_float16(keep_io_types=True)
    optimized.topological_sort(is_deterministic=True)
    set_metadata(optimized.model, _derived_metadata(
        source, variant, "fp16", fp16_mask_value=str(FP16_MASK_VALUE),
        fusion=json.dumps({**asdict(config), "use_gpu": True}),
        attention_mask="raw 2-D mask: any padding" if config.raw_attention_mask else
        "1-D mask index: right-padded rows only"))
    # save_model_to_file (not save_onnx) adds the com.microsoft opset import that the contrib ops need
    atomic_write(path, lambda tmp: optimized.save_model_to_file(str(tmp)))
    counts = op_counts(optimized.model)
    return VariantReport(path, variant, source, counts, {"attention_fused": counts.get("Attention", 0),
                                                         "layers": layers, "mask_values_replaced": replaced})
