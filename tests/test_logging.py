"""Run logs: metrics.jsonl rewritten atomically, rewind / resume without duplicates, TensorBoard extras."""
import json

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from robustgan.train import logging as runlog
from robustgan.train.logging import RunLogger, save_scatter, scatter_figure

ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _tb(run_dir):
    acc = ea.EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def _write_metrics(path, steps, torn=True):
    text = "".join(json.dumps({"step": s, "kind": "train", "loss_d": float(s)}) + "\n" for s in steps)
    path.write_text(text + ('{"step": 99, "kind": "tr' if torn else ""))


def test_resume_drops_later_rows_and_torn_lines(tmp_path):
    _write_metrics(tmp_path / "metrics.jsonl", range(1, 21))
    RunLogger(tmp_path, resume_step=10, tensorboard=False)
    assert [r["step"] for r in _rows(tmp_path / "metrics.jsonl")] == list(range(1, 11))


def test_a_clean_file_is_not_rewritten(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write_metrics(path, range(1, 6), torn=False)
    before = path.stat()
    RunLogger(tmp_path, resume_step=5, tensorboard=False)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)


def test_a_kill_while_rewriting_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    _write_metrics(path, range(1, 2001))
    before = path.read_bytes()
    calls = {"n": 0}
    real = runlog._keep_row

    def killed_midway(line, step):
        calls["n"] += 1
        if calls["n"] > 2001 + 1000:  # the first pass is done; half of the rewrite is written
            raise KeyboardInterrupt
        return real(line, step)

    monkeypatch.setattr(runlog, "_keep_row", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        RunLogger(tmp_path, resume_step=1500, tensorboard=False)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]  # the temporary file is gone


def test_rewind_after_a_rollback_logs_each_step_once(tmp_path):
    log = RunLogger(tmp_path)
    for s in range(1, 14):
        log.scalars(s, {"loss_d": float(s)})
    log.rewind(10)  # NaN at step 13: back to the checkpoint at step 10
    for s in (11, 12):
        log.scalars(s, {"loss_d": 100.0 + s})
    log.close()
    rows = _rows(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert [r["loss_d"] for r in rows][-3:] == [10.0, 111.0, 112.0]
    events = _tb(tmp_path).Scalars("train/loss_d")
    assert [e.step for e in events] == list(range(1, 13))
    assert [e.value for e in events][-3:] == [10.0, 111.0, 112.0]


def test_resume_keeps_the_restored_step_in_tensorboard(tmp_path):
    log = RunLogger(tmp_path)
    for s in range(1, 21):
        log.scalars(s, {"loss_d": float(s)})
    log.close()
    log = RunLogger(tmp_path, resume_step=10)  # killed after 20, last checkpoint at 10
    for s in range(11, 16):
        log.scalars(s, {"loss_d": -float(s)})
    log.close()
    events = _tb(tmp_path).Scalars("train/loss_d")
    assert [e.step for e in events] == list(range(1, 16))
    assert events[9].value == 10.0 and events[10].value == -11.0  # step 10 (before its checkpoint) kept


def test_bookkeeping_values_are_not_curves(tmp_path):
    log = RunLogger(tmp_path)
    log.scalars(5, {"fd": 12.5, "n_fake": 2000, "n_ref": 10000, "num_modes": 8, "modes_covered": 7}, kind="eval")
    log.close()
    tags = _tb(tmp_path).Tags()["scalars"]
    assert "eval/fd" in tags and "eval/modes_covered" in tags
    assert not {"eval/n_fake", "eval/n_ref", "eval/num_modes"} & set(tags)
    assert _rows(tmp_path / "metrics.jsonl")[0]["n_fake"] == 2000  # still in metrics.jsonl


def test_hparams_are_recorded(tmp_path):
    from tensorboard.plugins.hparams import plugin_data_pb2

    cfg = {"loss": "gan", "reg": {"name": "rfm", "lam": None}, "model": {"width": 32}, "train": {"amp": "bf16"},
           "log": {"metrics": ["fd", "kid"], "progress": True}}
    log = RunLogger(tmp_path)
    log.scalars(10, {"fd": 40.0, "n_fake": 100}, kind="eval")
    log.hparams(cfg, {"fd": 40.0, "n_fake": 100, "skipped": "x"})
    log.close()
    content = _tb(tmp_path).PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["reg.name"].string_value == "rfm" and hp["model.width"].number_value == 32
    assert hp["reg.lam"].string_value == "null" and hp["log.metrics"].string_value == "fd,kid"
    assert hp["log.progress"].number_value == 1  # torch records a bool as a number
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert [m.name.tag for m in exp.metric_infos] == ["eval/fd"]


def test_scatter_without_pyplot_backend_change(tmp_path, monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("library code must not call matplotlib.use")

    monkeypatch.setattr(matplotlib, "use", forbidden)
    pts = torch.randn(200, 2)
    path = save_scatter(pts, tmp_path / "s.png", centers=torch.zeros(1, 2), real=torch.randn(100, 2), title="t")
    with Image.open(path) as im:
        assert im.size == (400, 400)
    log = RunLogger(tmp_path / "run")
    log.figure("samples", scatter_figure(pts), 3)
    log.image_file("samples_png", path, 3)
    log.close()
    acc = _tb(tmp_path / "run")
    [fig] = acc.Images("samples")
    [png] = acc.Images("samples_png")
    assert (fig.width, fig.height) == (400, 400) and fig.step == 3 and (png.width, png.height) == (400, 400)
    arr = runlog.figure_to_array(scatter_figure(pts))
    assert arr.shape == (400, 400, 3) and arr.dtype == np.uint8 and arr.min() < 255  # something drawn
