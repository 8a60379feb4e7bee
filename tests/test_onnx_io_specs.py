"""The I/O of an ONNX file, read through the one ONNX loader (helpers.export.load_onnx).

05_infer shows the buffers an engine would get from 02's model.onnx; a damaged file must reach the user as the
loader's ExportError naming the file and what to do, not as protobuf's ``DecodeError``.
"""

from __future__ import annotations

import pytest

from helpers.errors import ExportError, MissingArtifactError
from helpers.export import io_specs_from_onnx
from helpers.trt.smoke import smoke_onnx


def test_io_specs_from_onnx_match_the_contract(tmp_path):
    specs = io_specs_from_onnx(smoke_onnx(tmp_path / "smoke.onnx"))
    assert [(s.name, s.is_input, s.dtype.name, s.shape) for s in specs] == [
        ("input_ids", True, "int32", (-1, -1)), ("segment_ids", True, "int32", (-1, -1)),
        ("logits", False, "float32", (-1, 2))]


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_onnx_file_is_a_clear_export_error(tmp_path, damage):
    path = smoke_onnx(tmp_path / "model.onnx")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x0a\xff\xff\xff\xff\x0f" + data[6:])
    with pytest.raises(ExportError, match=r"model.onnx is not a readable ONNX model \(DecodeError\); the file is corrupt "
                                          r"or truncated. Re-run 02_onnx_export") as info:
        io_specs_from_onnx(path)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no protobuf traceback under it


def test_a_missing_onnx_file_names_the_notebook_to_run(tmp_path):
    with pytest.raises(MissingArtifactError, match="02_onnx_export"):
        io_specs_from_onnx(tmp_path / "none.onnx")


def test_every_onnx_file_is_read_through_the_one_loader():
    """A direct ``onnx.load`` of a file anywhere in helpers would bring back protobuf's raw errors for a damaged
    file (bytes just made in memory, e.g. by the exporter, are parsed where they are made)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "helpers"
    direct = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("load", "load_model")
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "onnx"):
                direct.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    assert direct == ["helpers/export.py:" + str(_loader_line(root / "export.py"))]


def _loader_line(export: "Path") -> int:
    """The line of ``onnx.load`` inside :func:`helpers.export.load_onnx`."""
    lines = export.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("def load_onnx("))
    return next(i + 1 for i in range(start, len(lines)) if "onnx.load(" in lines[i])
