"""Export to ONNX and the ONNX variants, on a tiny randomly initialised classifier (seconds on a CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

from helpers.bench.models import architecture_model
from helpers.config import INPUT_NAMES, MODEL_SIZES, OUTPUT_NAME
from helpers.errors import ConfigError, ExportError, MissingArtifactError
from helpers.export import (ExportConfig, attention_scale_as_division, check_onnx, load_onnx, onnx_from_classifier,
                            onnx_metadata, sample_feed, save_export)
from helpers.onnx_variants import (FP16_MASK_VALUE, FusionConfig, fp16_onnx_from_plain, fp16_safe_constants,
                                   fused_fp16_onnx_from_plain, fused_onnx_from_plain, int8_onnx_from)

VOCAB = 120
LABELS = ["negative", "positive"]
LAYERS = MODEL_SIZES["tiny"].num_hidden_layers


def run_onnx(path, ids, seg, disabled=()):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"], disabled_optimizers=list(disabled))
    return sess.run([OUTPUT_NAME], {INPUT_NAMES[0]: ids, INPUT_NAMES[1]: seg})[0]


def run_torch(model, ids, seg):
    with torch.inference_mode():
        return model(torch.from_numpy(ids), torch.from_numpy(seg)).numpy()


@pytest.fixture(scope="module")
def tiny():
    return architecture_model("tiny", VOCAB, seed=1).model


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    summary = onnx_from_classifier(tiny, folder / "model.onnx", labels=LABELS, max_len=32, model_size="tiny",
                                   checkpoint_fingerprint="abc123", checkpoint_path="/ckpt/here")
    return summary


@pytest.fixture(scope="module")
def fused(exported):
    return fused_onnx_from_plain(exported.path, exported.path.with_name("model.fused.onnx"))


# ------------------------------------------------------------------------------------------ the export patch
def test_scale_patch_is_contained_and_exact_enough(tiny):
    ids, seg = sample_feed(3, 12, VOCAB, seed=4)
    before = run_torch(tiny, ids, seg)
    with attention_scale_as_division(tiny) as n:
        assert n == LAYERS
        patched = run_torch(tiny, ids, seg)
    assert not any("apply_attention_scale" in vars(m) for m in tiny.modules())
    np.testing.assert_allclose(patched, before, atol=1e-6)


def test_scale_patch_is_removed_after_an_error(tiny):
    with pytest.raises(RuntimeError, match="boom"):
        with attention_scale_as_division(tiny):
            raise RuntimeError("boom")
    assert not any("apply_attention_scale" in vars(m) for m in tiny.modules())


# ------------------------------------------------------------------------------------------ plain export
def test_io_contract_and_dynamic_axes(exported):
    assert exported.inputs == {"input_ids": ("int32", ["batch", "seq_len"]),
                               "segment_ids": ("int32", ["batch", "seq_len"])}
    assert exported.outputs == {"logits": ("float", ["batch", 2])}


def test_opset_and_layer_normalization(exported):
    assert exported.opset >= 17
    # one after the embeddings, two per encoder layer: bert4torch's built-in norm became ONNX LayerNormalization
    assert exported.count("LayerNormalization") == 2 * LAYERS + 1
    assert exported.count("Div") >= LAYERS  # the attention scale exported as a division


def test_checker_and_shape_inference_pass(exported):
    onnx.checker.check_model(str(exported.path), full_check=True)
    inferred = onnx.shape_inference.infer_shapes(onnx.load(str(exported.path)), strict_mode=True)
    assert inferred.graph.output[0].name == "logits"


def test_metadata_records_the_source(exported):
    meta = onnx_metadata(exported.path)
    assert meta["checkpoint_fingerprint"] == "abc123"
    assert meta["checkpoint_path"] == "/ckpt/here"
    assert meta["labels"] == LABELS
    assert meta["max_len"] == 32 and meta["opset"] == exported.opset
    assert meta["input_dtype"] == "int32" and meta["model_size"] == "tiny" and meta["variant"] == "plain"
    assert meta["num_hidden_layers"] == LAYERS


@pytest.mark.parametrize("shape", [(1, 1), (1, 32), (5, 17), (16, 32)])
def test_parity_with_padding_inside_rows(tiny, exported, shape):
    ids, seg = sample_feed(*shape, VOCAB, seed=sum(shape))
    if shape[1] > 3:
        ids[0, 2], ids[0, -1] = 0, 7  # a pad id in the middle of a row, real tokens after it
    got, want = run_onnx(exported.path, ids, seg), run_torch(tiny, ids, seg)
    assert got.shape == (shape[0], 2) and got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-4
    assert (got.argmax(1) == want.argmax(1)).all()


def test_old_opset_is_refused(tiny, tmp_path):
    with pytest.raises(ExportError, match="opset 14 has no LayerNormalization"):
        onnx_from_classifier(tiny, tmp_path / "m.onnx", labels=LABELS, max_len=32, config=ExportConfig(opset=14))
    assert not (tmp_path / "m.onnx").exists()


# ------------------------------------------------------------------------------------------ fused
def test_attention_fused_on_every_layer(fused, tiny):
    assert fused.count("Attention") == LAYERS
    assert fused.count("SkipLayerNormalization") == 0  # off by default
    assert onnx_metadata(fused.path)["ort_disabled_optimizers"] == ["SkipLayerNormFusion"]
    ids, seg = sample_feed(6, 20, VOCAB, seed=9)
    ids[:, 5] = 0  # padding inside every row: the raw 2-D mask must keep parity
    got = run_onnx(fused.path, ids, seg, disabled=["SkipLayerNormFusion"])
    assert np.abs(got - run_torch(tiny, ids, seg)).max() <= 1e-4


def test_skip_layer_norm_fusion_when_asked(exported, tmp_path):
    report = fused_onnx_from_plain(exported.path, tmp_path / "sln.onnx", FusionConfig(skip_layer_norm=True))
    assert report.count("SkipLayerNormalization") == 2 * LAYERS
    assert onnx_metadata(report.path)["ort_disabled_optimizers"] == []


def test_fusion_fails_loudly_without_the_division(tiny, tmp_path):
    plain = onnx_from_classifier(tiny, tmp_path / "mul.onnx", labels=LABELS, max_len=32,
                                 config=ExportConfig(scale_as_division=False))
    with pytest.raises(ExportError, match=r"Attention fused on 0 of 2 layers .*inside attention_scale_as_division"):
        fused_onnx_from_plain(plain.path, tmp_path / "mul.fused.onnx")
    assert not (tmp_path / "mul.fused.onnx").exists()


# ------------------------------------------------------------------------------------------ int8 / fp16
@pytest.mark.parametrize("source", ["plain", "fused"])
def test_int8_is_quantized_and_close(source, exported, fused, tiny, tmp_path):
    src = exported.path if source == "plain" else fused.path
    report = int8_onnx_from(src, tmp_path / "int8.onnx")
    assert report.count("MatMulInteger") + report.count("QAttention") > 0
    meta = onnx_metadata(report.path)
    assert meta["precision"] == "int8" and meta["checkpoint_fingerprint"] == "abc123"
    ids, seg = sample_feed(8, 24, VOCAB, seed=3)
    got = run_onnx(report.path, ids, seg, disabled=meta["ort_disabled_optimizers"])
    assert np.isfinite(got).all()
    assert np.abs(got - run_torch(tiny, ids, seg)).max() < 0.05


def test_fp16_keeps_io_types_and_is_close(exported, tiny, tmp_path):
    report = fp16_onnx_from_plain(exported.path, tmp_path / "fp16.onnx")
    assert report.notes["mask_constants_replaced"] >= 1
    summary = check_onnx(report.path)
    assert summary.inputs["input_ids"][0] == "int32" and summary.outputs["logits"][0] == "float"
    proto = load_onnx(report.path)
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in proto.graph.initializer)
    floats = [numpy_helper.to_array(n.attribute[0].t) for n in proto.graph.node
              if n.op_type == "Constant" and n.attribute[0].t.data_type in (1, 10)]
    assert min(float(a.min()) for a in floats if a.size) >= -65504  # no -3.4e38 left to overflow
    ids, seg = sample_feed(8, 32, VOCAB, seed=5)
    got = run_onnx(report.path, ids, seg)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    assert np.abs(got - run_torch(tiny, ids, seg)).max() < 1e-2


def test_fused_fp16_is_fused_fp16_and_close(exported, tiny, tmp_path):
    report = fused_fp16_onnx_from_plain(exported.path, tmp_path / "model.fused.fp16.onnx")
    assert report.count("Attention") == LAYERS and report.count("SkipLayerNormalization") > 0
    assert report.notes["mask_values_replaced"] >= LAYERS  # every Attention's finfo(float32).min fill
    proto = load_onnx(report.path)
    attn = [n for n in proto.graph.node if n.op_type == "Attention"]
    assert all(a.f == pytest.approx(FP16_MASK_VALUE) for n in attn for a in n.attribute if a.name == "mask_filter_value")
    weights = [i for i in proto.graph.initializer if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    assert weights and all(i.data_type == onnx.TensorProto.FLOAT16 for i in weights)
    summary = check_onnx(report.path)
    assert summary.inputs["input_ids"][0] == "int32" and summary.outputs["logits"][0] == "float"
    meta = onnx_metadata(report.path)
    assert meta["variant"] == "fused-fp16" and meta["precision"] == "fp16" and meta["checkpoint_fingerprint"] == "abc123"
    ids, seg = sample_feed(8, 32, VOCAB, seed=5)
    ids[1, 20:] = 0  # padding, and an id 0 inside a row: the raw 2-D mask must handle both
    ids[2, 5] = 0
    got = run_onnx(report.path, ids, seg)  # ONNX Runtime's CPU kernels run it too (slowly): a numeric check here
    assert got.dtype == np.float32 and np.isfinite(got).all()
    assert np.abs(got - run_torch(tiny, ids, seg)).max() < 1e-2


def test_fp16_refuses_a_fused_graph(fused, tmp_path):
    with pytest.raises(ExportError, match=r"contrib ops \['Attention'"):
        fp16_onnx_from_plain(fused.path, tmp_path / "x.onnx")


def test_fp16_safe_constants_replaces_only_the_mask_fill():
    big = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array(np.finfo(np.float32).min, np.float32)))
    ok = helper.make_node("Constant", [], ["d"], value=numpy_helper.from_array(np.array([1.5, -2.0], np.float32)))
    graph = helper.make_graph([big, ok], "g", [], [helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [])])
    model = helper.make_model(graph)
    assert fp16_safe_constants(model) == 1
    assert float(numpy_helper.to_array(model.graph.node[0].attribute[0].t)) == FP16_MASK_VALUE
    np.testing.assert_array_equal(numpy_helper.to_array(model.graph.node[1].attribute[0].t), [1.5, -2.0])


def test_fp16_safe_constants_refuses_large_weights():
    weights = numpy_helper.from_array(np.full((2, 2), 1e6, np.float32), "w")
    model = helper.make_model(helper.make_graph([], "g", [], [], initializer=[weights]))
    with pytest.raises(ExportError, match="outside FP16's range"):
        fp16_safe_constants(model)


# ------------------------------------------------------------------------------------------ bad files
def test_missing_file_names_the_notebook(tmp_path):
    with pytest.raises(MissingArtifactError, match="run notebook 02_onnx_export first"):
        check_onnx(tmp_path / "nope.onnx")


def test_corrupt_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not protobuf" * 10)
    with pytest.raises(ExportError, match="corrupt or truncated"):
        check_onnx(bad)


def test_foreign_model_is_refused(tmp_path):
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n"])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n"])])
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ExportError, match=r"expected inputs \['input_ids', 'segment_ids'\].*found inputs \['x'\]"):
        check_onnx(path)


# ------------------------------------------------------------------------------------------ the fast path
def test_speed_study_and_fast_path_on_tiny(exported, tmp_path):
    from helpers.fastpath import PYTORCH, RECIPES, speed_study, write_gpu_graphs

    assert len({r.name for r in RECIPES}) == 8  # {plain, fused} x SkipLayerNorm {on, off} x {fp32, int8}
    study = speed_study("tiny", seq_len=16, rounds=2, warmup=0, log=None)
    assert set(study.measurements) == {PYTORCH, *(r.name for r in RECIPES)}
    # the bench harness timed them: one call per candidate per round, each compared with PyTorch
    assert all(m.latency.n == 2 and len(m.round_medians_ms) == 2 and (m.batch, m.seq_len) == (1, 16)
               for m in study.measurements.values())
    assert study.measurements[PYTORCH].max_abs_diff == 0.0
    assert study.measurements["ort fp32 plain (SkipLayerNorm on)"].max_abs_diff < 1e-4
    fast = study.fast_path()
    assert fast.int8 == study.fastest(int8=True) and fast.fused.graph == "fused" and not fast.fused.int8
    record = study.to_dict()
    assert record["fastest"]["int8"] == fast.int8.name and study.speedup(PYTORCH) == 1.0
    assert record["candidates"][fast.int8.name]["latency"]["n"] == 2 and set(record["seconds"]) == {"build", "timing"}
    assert record["kept"] == fast.to_dict() and record["ratios_mean_something"] is False
    assert "tiny architecture is too small for its ratio" in study.int8_sentence()

    gpu = write_gpu_graphs(exported.path, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.fp16.onnx", "model.fused.fp16.onnx",
                                                          "model.fused.fp16.rightpad.onnx"]
    assert gpu.files["fused-fp16"].count("Attention") == LAYERS == gpu.files["fused-fp16-rightpad"].count("Attention")
    assert gpu.router["passed"] and gpu.router["routes"] == {"fast": 1, "exact": 1}
    assert onnx_metadata(gpu.files["fused-fp16"].path)["attention_mask"].startswith("raw 2-D mask")
    assert onnx_metadata(gpu.files["fused-fp16-rightpad"].path)["variant"] == "fused-fp16-rightpad"
    assert onnx_metadata(gpu.files["fused-fp16-rightpad"].path)["attention_mask"].startswith("1-D mask index")
    assert [row[0] for row in gpu.rows()] == ["model.fp16.onnx", "model.fused.fp16.onnx",
                                              "model.fused.fp16.rightpad.onnx"]


def test_recipes_keep_what_02_made_with_their_session_settings(exported, tmp_path):
    from helpers.fastpath import Recipe

    with pytest.raises(ConfigError, match="is the plain export itself"):
        Recipe("plain", True, False).keep(None, tmp_path / "x.onnx", source=exported.path)
    fused = fused_onnx_from_plain(exported.path, tmp_path / "model.fused.onnx")
    int8 = int8_onnx_from(fused.path, tmp_path / "model.int8.onnx")
    assert onnx_metadata(int8.path)["ort_disabled_optimizers"] == ["SkipLayerNormFusion"]  # from its source
    assert int8.count("QAttention") == LAYERS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.fused.onnx", "model.int8.onnx"], "no temporary left"
    unstamped = tmp_path / "unstamped.onnx"
    unstamped.write_bytes(int8.path.read_bytes())
    kept = Recipe("fused", True, True).keep(unstamped, tmp_path / "again.int8.onnx", source=fused.path)
    assert not unstamped.exists() and onnx_metadata(kept.path)["ort_disabled_optimizers"] == []


# ------------------------------------------------------------------------------------------ 02's own cells
NOTEBOOK_02 = Path(__file__).resolve().parents[1] / "notebooks" / "02_onnx_export.ipynb"


def run_02_cells(tag: str, namespace: dict) -> dict:
    """Run every code cell of 02 tagged ``tag``, in order, in ``namespace``."""
    cells = json.loads(NOTEBOOK_02.read_text(encoding="utf-8"))["cells"]
    found = ["".join(c["source"]) for c in cells
             if c["cell_type"] == "code" and tag in c.get("metadata", {}).get("tags", [])]
    assert found, f"02 has no code cell tagged {tag!r}"
    for source in found:
        exec(source, namespace)
    return namespace


def graph_of(model) -> dict:
    """What a graph computes: its nodes, weights, inputs, outputs and opsets (not its metadata)."""
    proto = model if hasattr(model, "graph") else load_onnx(model)
    g = proto.graph
    return {"nodes": [n.SerializeToString() for n in g.node],
            "weights": {t.name: numpy_helper.to_array(t).tobytes() for t in g.initializer},
            "io": [v.SerializeToString() for v in (*g.input, *g.output)],
            "opsets": sorted((o.domain, o.version) for o in proto.opset_import)}


def test_02s_export_cells_make_the_graph_onnx_from_classifier_makes(tiny, exported):
    """02 writes torch.onnx.export out; 06's architecture models, the speed study and the tests export through
    onnx_from_classifier. The same model must give the same graph both ways."""
    from types import SimpleNamespace

    ns = run_02_cells("export", {"tokenizer": SimpleNamespace(vocab_size=VOCAB), "model": tiny, "opset": 17})
    assert graph_of(ns["graph"]) == graph_of(exported.path)
    assert not any("apply_attention_scale" in vars(m) for m in tiny.modules()), "the patch is gone after export"


def test_save_export_stamps_the_checkpoint_and_refuses_a_broken_graph(tiny, exported, tmp_path):
    from types import SimpleNamespace

    ckpt = SimpleNamespace(model=tiny, labels=LABELS, max_len=32, path=tmp_path / "checkpoint",
                           meta={"model_size": "tiny", "fingerprint": "abc123"})
    summary = save_export(load_onnx(exported.path), tmp_path / "model.onnx", ckpt)
    meta = onnx_metadata(summary.path)
    assert summary.path == tmp_path / "model.onnx" and meta["checkpoint_fingerprint"] == "abc123"
    assert meta["checkpoint_path"] == str(tmp_path / "checkpoint") and meta["attention_scale"] == "division"
    assert graph_of(summary.path) == graph_of(exported.path)
    before = (tmp_path / "model.onnx").read_bytes()
    unchecked = load_onnx(exported.path)
    unchecked.graph.output[0].name = "probabilities"  # no node makes it: the checker refuses the graph
    with pytest.raises(ExportError, match=f"^{tmp_path / 'model.onnx'} fails the ONNX checks: Graph output"):
        save_export(unchecked, tmp_path / "model.onnx", ckpt)
    renamed = load_onnx(exported.path)
    for node in renamed.graph.node:  # a valid graph that breaks the I/O contract later steps rely on
        node.output[:] = ["probabilities" if o == "logits" else o for o in node.output]
    renamed.graph.output[0].name = "probabilities"
    with pytest.raises(ExportError, match=r"found inputs \['input_ids', 'segment_ids'\] and outputs \['probabilities'\]"):
        save_export(renamed, tmp_path / "model.onnx", ckpt)
    assert (tmp_path / "model.onnx").read_bytes() == before and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("sln", [False, True], ids=["sln-off", "sln-on"])
def test_02s_fusion_and_quantization_cells_make_the_helpers_graphs(tiny, exported, tmp_path, sln):
    """02 writes optimize_model and quantize_dynamic out for the trained model; 06 and the speed study call
    fused_onnx_from_plain and int8_onnx_from. Both must write the same graphs with the same metadata."""
    import logging

    from helpers.fastpath import FastPath, Recipe

    fast = FastPath(Recipe("fused", sln, False), Recipe("fused", sln, True))
    level = logging.getLogger().level
    try:
        ns = run_02_cells("fuse", {"fast": fast, "model": tiny, "plain": exported, "onnx_dir": tmp_path})
        run_02_cells("quantize", {**ns, "onnx": onnx})
    finally:
        logging.getLogger().setLevel(level)
    helpers_dir = tmp_path / "helpers"
    fused = fused_onnx_from_plain(exported.path, helpers_dir / "model.fused.onnx", FusionConfig(skip_layer_norm=sln))
    int8 = int8_onnx_from(fused.path, helpers_dir / "model.int8.onnx")
    for name, helper in (("model.fused.onnx", fused), ("model.int8.onnx", int8)):
        assert graph_of(tmp_path / name) == graph_of(helper.path), name
        ours, theirs = onnx_metadata(tmp_path / name), onnx_metadata(helper.path)
        if name == "model.int8.onnx":  # each names its own fused source file; the sources are the same graph
            ours.pop("source_sha256"), theirs.pop("source_sha256")
        assert ours == theirs, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["helpers", "model.fused.onnx", "model.int8.onnx"]


def measured(name: str, ms: float):
    """A harness Measurement of one candidate whose every sample took ``ms``."""
    from helpers.bench.harness import Measurement
    from helpers.bench.stats import LatencyStats

    return Measurement(model="base-architecture", backend=name, device="cpu", precision="fp32", batch=1, seq_len=200,
                       latency=LatencyStats.from_samples([ms] * 3), throughput_per_s=1000.0 / ms, first_call_ms=ms,
                       round_medians_ms=[ms] * 3, drift=0.0)


def fake_study(int8_ms: dict[tuple[str, bool], float], fp32_ms: float = 200.0, **fields):
    from helpers.fastpath import PYTORCH, RECIPES, SpeedConfig, SpeedStudy

    lat = {PYTORCH: measured(PYTORCH, 250.0)}
    for r in RECIPES:
        lat[r.name] = measured(r.name, int8_ms[(r.graph, r.skip_layer_norm)] if r.int8 else fp32_ms)
    return SpeedStudy(SpeedConfig(model_size="base"), lat, **fields)


def test_fastest_recipe_breaks_ties_by_preference():
    study = fake_study

    # plain is 5 % faster: inside the tie margin, so the preferred fused graph with SkipLayerNorm off wins
    tied = study({("plain", True): 66.3, ("plain", False): 66.3, ("fused", True): 74.7, ("fused", False): 69.5})
    assert tied.fastest(int8=True).name == "ort int8 fused (SkipLayerNorm off)"
    # plain is 20 % faster: a real difference, so plain wins (SkipLayerNorm off preferred among equals)
    clear = study({("plain", True): 66.3, ("plain", False): 66.3, ("fused", True): 80.0, ("fused", False): 80.0})
    assert clear.fastest(int8=True).name == "ort int8 plain (SkipLayerNorm off)"
    assert clear.speedup("ort int8 plain (SkipLayerNorm on)") == pytest.approx(250.0 / 66.3)


def test_the_fused_graph_kept_is_the_one_int8_is_quantized_from():
    """02 quantizes model.int8.onnx from model.fused.onnx itself: a fused INT8 recipe decides its SkipLayerNorm."""
    sln_on = fake_study({("plain", True): 90.0, ("plain", False): 90.0, ("fused", True): 50.0, ("fused", False): 70.0})
    fast = sln_on.fast_path()
    assert fast.int8.name == "ort int8 fused (SkipLayerNorm on)" and fast.fused.name == "ort fp32 fused (SkipLayerNorm on)"
    plain = fake_study({("plain", True): 40.0, ("plain", False): 40.0, ("fused", True): 90.0, ("fused", False): 90.0})
    assert plain.fast_path().int8.graph == "plain"
    assert plain.fast_path().fused == plain.fastest(int8=False, graph="fused"), "then the fastest fused fp32 is kept"


def test_no_ratio_to_pytorch_is_shown_for_the_tiny_architecture():
    """Issue 21, defect 10: 02's quick run printed "ran 259.8x PyTorch fp32 eager" for a 2 x 64 model."""
    from helpers.fastpath import PYTORCH, RECIPES, SpeedConfig, SpeedStudy

    lat = {PYTORCH: measured(PYTORCH, 26.0), **{r.name: measured(r.name, 0.1) for r in RECIPES}}
    tiny = SpeedStudy(SpeedConfig(model_size="tiny"), lat)
    header, rows = tiny.table()
    assert header == ["candidate", "median ms", "p90 ms"] and all(len(r) == 3 for r in rows)
    assert "x PyTorch" not in tiny.int8_sentence() and "260" not in tiny.int8_sentence()
    assert "too small for its ratio to PyTorch to say anything about BERT" in tiny.int8_sentence()
    assert tiny.to_dict()["candidates"][PYTORCH]["speedup_vs_pytorch"] == 1.0, "speed.json keeps the numbers"
    base = fake_study({("plain", True): 60.0, ("plain", False): 60.0, ("fused", True): 50.0, ("fused", False): 50.0})
    header, rows = base.table()
    assert header[-1] == "x PyTorch" and rows[-1] == (PYTORCH, 250.0, 250.0, "1.00x")
    assert "ran 5.0x PyTorch fp32 eager on the base architecture" in base.int8_sentence()


def test_int8_sentence_states_this_runs_cpu_and_ratio():
    """02's text once said INT8 won "(AVX-512 VNNI here)" on a machine that had AVX2 only."""
    env = {"host": {"cpu_model": "AMD EPYC 7B13"}, "threads": {"ort_intra_op": 2}}
    plain = {("plain", True): 125.0, ("plain", False): 125.0, ("fused", True): 130.0, ("fused", False): 125.0}
    avx2 = fake_study(plain, environment=env, int8_instructions=())
    assert avx2.int8_sentence() == (
        "On this CPU (AMD EPYC 7B13, 2 threads), which has no int8 dot-product instructions (no VNNI or AMX), the "
        "fastest INT8 recipe, ort int8 fused (SkipLayerNorm off), ran 2.0x PyTorch fp32 eager on the base "
        "architecture at 1 x 200; the fastest fp32 recipe ran 1.2x.")
    amx = fake_study({k: 50.0 for k in plain}, environment=env, int8_instructions=("AVX-512 VNNI", "AMX-INT8"))
    assert "which has AVX-512 VNNI and AMX-INT8, the fastest INT8 recipe" in amx.int8_sentence()
    assert "ran 5.0x PyTorch" in amx.int8_sentence()
    assert "could not be read" in fake_study(plain, int8_instructions=None).int8_sentence()
    busy = fake_study(plain, environment={**env, "cpu_busy": 1.9, "host": {"cpu_model": "X", "usable_cpus": 2}})
    assert busy.int8_sentence().endswith("But other processes kept 1.9 of 2 CPUs busy just before the run: CPU "
                                         "latencies measured now will be inflated; re-run on a quiet machine for "
                                         "reference numbers.")
