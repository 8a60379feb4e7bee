import pytest

from helpers.io import atomic_dir, atomic_write, atomic_write_json, read_json, sha256_file


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def broken(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_json_round_trip_keeps_chinese(tmp_path):
    p = atomic_write_json(tmp_path / "x.json", {"text": "我的心情很差"})
    assert "我的心情很差" in p.read_text(encoding="utf-8")
    assert read_json(p) == {"text": "我的心情很差"}
    assert len(sha256_file(p)) == 64


def test_atomic_dir_is_all_or_nothing(tmp_path):
    with pytest.raises(ValueError):
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "a").write_text("1")
            raise ValueError
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "a").write_text("1")
    assert (tmp_path / "d" / "a").read_text() == "1"


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        p = atomic_write_json(tmp_path / "x.json", {})
    finally:
        os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o644
