"""The notebooks as a reader meets them: the deployment's own calls in code cells, short cells, few helpers names,
every parameter visible to papermill, and no placeholder or dangling path in a notebook or a document."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from notebook_stats import NOTEBOOKS, ROOT, TARGETS, code_cells, measure, measure_all

#: The library calls each notebook exists to teach; each must stand in one of its code cells.
TAUGHT_CALLS = {
    "01_train": ["build_transformer_model(", ".backward()", ".step()", ".zero_grad("],
    "02_onnx_export": ["torch.onnx.export(", "dynamic_axes=", "opset_version=", "onnx.checker.check_model(",
                       "ort.InferenceSession(", "optimize_model(", "quantize_dynamic("],
    "04_build_engine": ["trt.Builder(", "create_network(", "STRONGLY_TYPED", "trt.OnnxParser(", "parse_from_file(",
                        "get_error(", "create_optimization_profile(", "set_shape(", "add_optimization_profile(",
                        "set_memory_pool_limit(", "build_serialized_network(", "write_bytes("],
    "05_infer": ["trt.Runtime(", "deserialize_cuda_engine(", "create_execution_context(",
                 "set_optimization_profile_async(", "set_input_shape(", "set_tensor_address(", "execute_async_v3(",
                 "synchronize("],
    "07_serve": ["InferenceServerClient(", "InferInput(", ".infer("],
}
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("0*.ipynb"))


def test_there_are_seven_notebooks():
    assert [p.stem[:2] for p in NOTEBOOK_FILES] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("name", sorted(TAUGHT_CALLS))
def test_the_taught_calls_stand_in_code_cells(name):
    code = "\n".join(code_cells(NOTEBOOKS / f"{name}.ipynb"))
    missing = [call for call in TAUGHT_CALLS[name] if call not in code]
    assert not missing, f"{name}: no code cell contains {missing}"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_cells_are_short_and_lines_fit_the_screen(path):
    stats = measure(path)
    assert stats.median_code_lines <= TARGETS["median_code_lines"], (
        f"{path.stem}: median code cell {stats.median_code_lines} lines (cells {stats.code_lines})")
    assert not stats.long_lines, f"{path.stem}: {len(stats.long_lines)} code lines over {TARGETS['line_chars']} " \
                                 f"characters, e.g. {stats.long_lines[0]!r}"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_markdown_says_why_in_few_words(path):
    stats = measure(path)
    assert stats.markdown_words <= TARGETS["markdown_words"], f"{path.stem}: {stats.markdown_words} words of markdown"


def test_the_notebooks_import_few_helpers_names():
    stats = measure_all()
    names = set().union(*(s.helpers_names for s in stats.values()))
    trt = set().union(*(s.helpers_names for k, s in stats.items() if k[:2] in ("04", "05")))
    assert len(names) <= TARGETS["helpers_names"], f"{len(names)} helpers names: {sorted(names)}"
    assert len(trt) <= TARGETS["helpers_names_04_05"], f"04 + 05 import {len(trt)} helpers names: {sorted(trt)}"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_every_parameter_is_visible_to_papermill(path):
    import papermill

    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.stem}: one cell must be tagged 'parameters'"
    assigned = re.findall(r"^([A-Za-z_]\w*)\s*=", "".join(tagged[0]["source"]), re.M)
    listed = list(papermill.inspect_notebook(str(path)))
    assert listed == assigned, f"{path.stem}: papermill --help-notebook lists {listed}, the cell assigns {assigned}"


PLACEHOLDER = re.compile(r"\bMEASURED_[A-Z_]+|\bTODO\b|\bTBD\b|\bFIXME\b|XXX")
#: A path into the repository named in prose: it must exist (``<...>`` and ``*`` mark patterns, not files).
REPO_PATH = re.compile(r"(?<![\w./-])((?:results|docs|helpers|environment|serving|tests|notebooks)/[\w./*<>-]*[\w/*>])")


def documents():
    yield ROOT / "README.md"
    yield from sorted((ROOT / "docs").glob("*.md"))
    yield from sorted((ROOT / "results").rglob("README.md"))


def prose_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return "\n".join("".join(c["source"]) for c in cells)
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", [*NOTEBOOK_FILES, *documents()], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_placeholder_or_dangling_path(path):
    text = prose_of(path)
    assert not PLACEHOLDER.findall(text), f"{path.name}: placeholders {PLACEHOLDER.findall(text)}"
    dangling = sorted({p for p in REPO_PATH.findall(text) if "<" not in p and "*" not in p and not (ROOT / p).exists()})
    assert not dangling, f"{path.name} names paths that do not exist: {dangling}"


@pytest.mark.parametrize("path", sorted((ROOT / "results").rglob("*.ipynb")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_placeholder_in_an_executed_copy(path):
    text = prose_of(path)
    assert not PLACEHOLDER.findall(text), f"{path.relative_to(ROOT)}: placeholders {PLACEHOLDER.findall(text)}"
