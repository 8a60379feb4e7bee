"""environment/gpu/carry.sh: files split into upload-sized pieces come back whole, or not at all."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "environment" / "gpu" / "carry.sh"


def carry(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True)


@pytest.fixture()
def packed(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "site"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "data.bin").write_bytes(os.urandom(2_500_000))  # incompressible: three 1 MiB pieces
    (src / "pkg" / "__init__.py").write_text("VALUE = 42\n")
    result = carry("pack", tmp_path / "out", 1, src)
    assert result.returncode == 0, result.stderr
    return src, tmp_path / "out"


def test_pieces_rejoin_byte_for_byte(packed, tmp_path):
    src, out = packed
    pieces = sorted(p.name for p in out.iterdir())
    assert pieces == ["p1", "p2", "p3"]
    assert all((out / p / "carry.manifest").is_file() for p in pieces)
    assert all(f.stat().st_size <= 1 << 20 for f in out.glob("p*/carry.tar.xz.part*"))
    for p in pieces:  # one upload per piece
        assert carry("receive", tmp_path / "stage", out / p).returncode == 0
    result = carry("unpack", tmp_path / "stage", tmp_path / "target")
    assert result.returncode == 0, result.stderr
    for name in ("pkg/data.bin", "pkg/__init__.py"):
        assert (tmp_path / "target" / "site" / name).read_bytes() == (src / name).read_bytes()


def test_missing_piece_is_named_and_nothing_is_extracted(packed, tmp_path):
    _, out = packed
    carry("receive", tmp_path / "stage", out / "p1", out / "p3")
    result = carry("unpack", tmp_path / "stage", tmp_path / "target")
    assert result.returncode == 1
    assert "2 of 3 pieces" in result.stderr
    assert not (tmp_path / "target").exists()


def test_damaged_piece_is_refused(packed, tmp_path):
    _, out = packed
    carry("receive", tmp_path / "stage", *(out / p for p in ("p1", "p2", "p3")))
    with open(tmp_path / "stage" / "carry.tar.xz.part01", "ab") as f:
        f.write(b"x")
    result = carry("unpack", tmp_path / "stage", tmp_path / "target")
    assert result.returncode == 1
    assert "damaged" in result.stderr
    assert not (tmp_path / "target").exists()


def test_pack_refuses_a_folder_that_holds_something(packed, tmp_path):
    src, out = packed
    result = carry("pack", out, 1, src)
    assert result.returncode == 1
    assert "not empty" in result.stderr
