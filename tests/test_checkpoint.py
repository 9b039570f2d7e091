"""Checkpoints: a failed write keeps the earlier ones, leftovers are cleaned, refusals are one line."""
import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import robustgan
from robustgan.models import build_models
from robustgan.train import checkpoint as ckpt
from robustgan.train.checkpoint import CheckpointError

SRC = str(Path(robustgan.__file__).resolve().parents[1])


def _state(value: float) -> dict:
    return {"format": "robustgan-checkpoint-1", "w": torch.full((64,), value), "step": int(value)}


def _failing_save(exc):
    real = torch.save

    def save(obj, fh, *a, **k):
        fh.write(b"PK\x03\x04 partial")  # the zip writer had started
        raise exc
    return real, save


@pytest.mark.parametrize("exc", [
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"),  # what torch raises
    RuntimeError("[enforce fail at inline_container.cc:858] . PytorchStreamWriter failed writing file data/0: "
                 "file write failed"),
    OSError(errno.ENOSPC, "No space left on device"),
])
def test_disk_full_keeps_the_earlier_checkpoints(tmp_path, monkeypatch, exc):
    ckpt.save_checkpoint(tmp_path, 10, _state(10.0))
    ckpt.save_checkpoint(tmp_path, 20, _state(20.0))
    before = {p.name: p.read_bytes() for p in ckpt.list_checkpoints(tmp_path)}
    _, save = _failing_save(exc)
    monkeypatch.setattr(ckpt.torch, "save", save)
    with pytest.raises(CheckpointError) as info:
        ckpt.save_checkpoint(tmp_path, 30, _state(30.0), keep=2)
    msg = str(info.value)
    assert "\n" not in msg and "ckpt-00000030.pt" in msg and str(tmp_path / "checkpoints") in msg
    assert "free there" in msg and "ckpt-00000020.pt) is intact" in msg and "--resume" in msg
    # nothing pruned, nothing half-written left behind
    assert {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()} == before
    monkeypatch.undo()
    assert ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path))["step"] == 20


def test_other_errors_while_saving_are_not_called_disk_full(tmp_path, monkeypatch):
    _, save = _failing_save(RuntimeError("some other failure"))
    monkeypatch.setattr(ckpt.torch, "save", save)
    with pytest.raises(RuntimeError, match="some other failure"):
        ckpt.save_checkpoint(tmp_path, 1, _state(1.0))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_malicious_checkpoint_is_refused_without_the_unsafe_hint(tmp_path):
    marker = str(tmp_path / "ran")
    path = tmp_path / "evil.pt"
    torch.save({"G": _Payload(marker)}, path)
    with pytest.raises(ValueError) as info:
        ckpt.load_checkpoint(path)
    msg = str(info.value)
    assert "\n" not in msg and "refusing to load" in msg and "mkdir" in msg
    assert "weights_only" not in msg and "trusted" not in msg
    assert not os.path.exists(marker)


def test_truncated_checkpoint_is_one_line(tmp_path):
    path = ckpt.save_checkpoint(tmp_path, 5, _state(5.0))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable robustgan checkpoint") as info:
        ckpt.load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_clean_temporaries_removes_leftovers_of_a_killed_write(tmp_path):
    target = tmp_path / "checkpoints" / "ckpt-00000010.pt"
    code = textwrap.dedent(f"""
        import time
        from robustgan.fileio import atomic_open
        with atomic_open({str(target)!r}, "wb") as fh:
            fh.write(b"x" * 1000); fh.flush()
            print("writing", flush=True)
            time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=SRC))
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    [leftover] = list(target.parent.iterdir())
    assert leftover.name.startswith("ckpt-00000010.pt.") and leftover.suffix == ".tmp"
    keep = [ckpt.save_checkpoint(tmp_path, 5, _state(5.0)), tmp_path / "notes.tmp", tmp_path / "config.yaml"]
    for p in keep[1:]:
        p.write_text("mine")
    (tmp_path / "samples").mkdir()
    sample_tmp = tmp_path / "samples" / "latest.png.ab_c12yz.tmp"
    sample_tmp.write_bytes(b"")
    removed = ckpt.clean_temporaries(tmp_path)
    assert sorted(removed) == sorted([leftover, sample_tmp])
    assert all(p.exists() for p in keep) and not leftover.exists()
    assert ckpt.clean_temporaries(tmp_path) == []


def test_checkpoint_of_another_architecture_is_one_line(tmp_path):
    G8, _ = build_models("mlp", width=8)
    G16, _ = build_models("mlp", width=16)
    saved_cfg = {"model": {"arch": "mlp", "width": 8}, "data": {"name": "8gaussians"}}
    cfg = {"model": {"arch": "mlp", "width": 16}, "data": {"name": "8gaussians"}}
    with pytest.raises(CheckpointError) as info:
        ckpt.load_module_state(G16, G8.state_dict(), name="G", path="RUN/ckpt.pt", saved_cfg=saved_cfg, cfg=cfg)
    msg = str(info.value)
    assert "\n" not in msg
    assert "checkpoint RUN/ckpt.pt was written for model.width=8, the config says 16" in msg
    # the same settings but another network (e.g. an architecture's default changed): shapes counted
    with pytest.raises(CheckpointError, match=r"does not fit this G \(\d+ tensors of another shape"):
        ckpt.load_module_state(G16, G8.state_dict(), name="G", path="p", saved_cfg=cfg, cfg=cfg)
    ckpt.load_module_state(G16, G16.state_dict(), name="G", path="p", saved_cfg=cfg, cfg=cfg)  # fits: no error
