import os

import pytest

from robustgan.fileio import atomic_open


def test_atomic_open_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "x.json"
    with atomic_open(path, "w") as fh:
        fh.write("first")
    with atomic_open(path, "w") as fh:
        fh.write("second")
    assert path.read_text() == "second"
    assert os.stat(path).st_mode & 0o044  # readable by others (not mkstemp's 0600)
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.json"]


def test_atomic_open_failure_keeps_old_file(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(path, "wb") as fh:
            fh.write(b"half")
            raise RuntimeError("crash mid-write")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]
    with pytest.raises(ValueError, match="whole files"):
        with atomic_open(path, "a"):
            pass


def test_read_jsonl_skips_a_torn_last_line(tmp_path):
    from robustgan.fileio import read_jsonl
    path = tmp_path / "metrics.jsonl"
    assert read_jsonl(path) == []
    path.write_text('{"step": 1}\n[1, 2]\n{"step": 2}\n{"step": 3, "lo')
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
