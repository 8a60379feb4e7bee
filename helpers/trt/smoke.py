"""A tiny ONNX model with the classifier's I/O contract, for proving a TensorRT install end to end.

``logits[b] = [sum(input_ids[b]), sum(segment_ids[b])]`` as float32: two int32 ``[batch, seq_len]``
inputs, one float32 ``[batch, 2]`` output, the same names as the real model. It builds in seconds and its
exact answer is known, so 03_trt_setup builds it with :func:`~helpers.trt.builder.ensure_engine`, runs it
with :class:`~helpers.backends.tensorrt.TensorRTBackend` and compares bit for bit (sums of small integers are
exact in float32). Without TensorRT the same file runs in ONNX Runtime to show what is expected.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import INPUT_NAMES, OUTPUT_NAME
from ..io import atomic_write

SMOKE_OPSET = 17


def smoke_onnx(path: str | os.PathLike[str]) -> Path:
    """Write the tiny model to ``path`` (atomically) and return the path."""
    import onnx
    from onnx import TensorProto, helper

    ids, seg = INPUT_NAMES
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("Cast", [ids], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", [seg], ["seg_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["ids_f", "axes"], ["ids_sum"], keepdims=1),
        helper.make_node("ReduceSum", ["seg_f", "axes"], ["seg_sum"], keepdims=1),
        helper.make_node("Concat", ["ids_sum", "seg_sum"], [OUTPUT_NAME], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "smoke",
        [helper.make_tensor_value_info(n, TensorProto.INT32, ["batch", "seq"]) for n in INPUT_NAMES],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 2])],
        initializer=[axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", SMOKE_OPSET)], producer_name="smoke")
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model)
    return atomic_write(path, lambda tmp: onnx.save_model(model, str(tmp)))
