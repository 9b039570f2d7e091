"""`robustgan train`: run folders, resume that refuses a changed config, locks, one-line errors."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import robustgan
from robustgan.cli import main as cli_main
from robustgan.train import checkpoint as ckpt
from robustgan.train import cli as train_cli
from robustgan.train import config as config_module
from robustgan.train import rundir

SRC = str(Path(robustgan.__file__).resolve().parents[1])
TINY = ["model.width=16", "train.batch_size=32", "log.every=5", "log.checkpoint_every=5", "log.samples_every=5",
        "log.progress=false", "log.eval_at_end=false", "log.tensorboard=false", "train.threads=1"]


def train(*args) -> int:
    return cli_main(["train", "--preset", "toy-8gaussians", *TINY, *args])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_a_changed_config_on_an_existing_run_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert train("--out", str(run), "train.steps=5") == 0
    saved = (run / "config.yaml").read_bytes()
    capsys.readouterr()
    assert train("--out", str(run), "train.steps=10", "loss=wgan", "reg=gp") == 2
    err = one_line_error(capsys)
    assert "loss: gan -> wgan" in err and "reg.name: rfm -> gp" in err and "--resume" in err
    assert train("--out", str(run), "train.steps=10", "model.width=64") == 2
    assert "model.width: 16 -> 64" in one_line_error(capsys)
    assert (run / "config.yaml").read_bytes() == saved  # nothing overwritten
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["ckpt-00000005.pt"]
    # a key that may change: the run continues
    assert train("--out", str(run), "train.steps=10", "log.every=10") == 0
    assert ckpt.load_checkpoint(ckpt.latest_checkpoint(run))["step"] == 10


def test_resume_uses_the_saved_config_as_its_base(tmp_path, capsys):
    run = tmp_path / "run"
    assert train("--out", str(run), "train.steps=5", "reg.delta=0.07", "optim.lr_d=3e-4") == 0
    before = yaml.safe_load((run / "config.yaml").read_text())
    assert cli_main(["train", "--resume", str(run), "train.steps=10"]) == 0
    after = yaml.safe_load((run / "config.yaml").read_text())
    assert after["train"]["steps"] == 10 and after["reg"]["delta"] == 0.07 and after["optim"]["lr_d"] == 3e-4
    assert rundir.config_changes(before, after) == []
    assert ckpt.load_checkpoint(ckpt.latest_checkpoint(run))["step"] == 10
    capsys.readouterr()
    assert cli_main(["train", "--resume", str(run), "loss=wgan", "reg=ar"]) == 2
    message = one_line_error(capsys)
    assert "loss: gan -> wgan" in message and "reg.name: rfm -> ar" in message
    assert cli_main(["train", "--resume", str(run), "--preset", "fmnist-dcgan"]) == 2
    assert "drop --preset" in one_line_error(capsys)


def test_resume_refuses_new_steps_under_linear_decay(tmp_path, capsys):
    run = tmp_path / "run"
    assert train("--out", str(run), "train.steps=5", "optim.lr_decay=linear") == 0
    capsys.readouterr()
    assert cli_main(["train", "--resume", str(run), "train.steps=10"]) == 2
    assert "train.steps: 5 -> 10 (optim.lr_decay=linear" in one_line_error(capsys)


@pytest.mark.parametrize("text, what", [("", "is empty"), ("[1, 2]\n", "not a mapping"), ("a: [\n", "not valid YAML")])
def test_a_broken_config_yaml_is_an_error_not_the_defaults(tmp_path, capsys, text, what):
    run = tmp_path / "run"
    assert train("--out", str(run), "train.steps=5") == 0
    (run / "config.yaml").write_text(text)
    capsys.readouterr()
    assert cli_main(["train", "--resume", str(run)]) == 2
    assert what in one_line_error(capsys)
    assert train("--out", str(run), "train.steps=5") == 2
    assert what in one_line_error(capsys)


def test_resume_of_a_folder_without_a_run(tmp_path, capsys):
    assert cli_main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a run folder" in one_line_error(capsys)


def test_without_out_each_run_gets_a_new_numbered_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert train("train.steps=5") == 0
    assert train("train.steps=5", "reg=gp") == 0
    names = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert names == ["00000-toy-8gaussians-gan-rfm", "00001-toy-8gaussians-gan-gp"]
    cfg = yaml.safe_load((tmp_path / "runs" / names[1] / "config.yaml").read_text())
    assert cfg["out"] == str(Path("runs") / names[1]) and cfg["reg"]["name"] == "gp"
    assert "runs/00001-toy-8gaussians-gan-gp" in capsys.readouterr().out
    assert train("--print-config") == 0  # prints only: no folder made
    assert len(list((tmp_path / "runs").iterdir())) == 2


def test_out_that_is_a_file_or_under_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert train("--out", str(tmp_path / "f")) == 2
    assert "is a file, not a folder" in one_line_error(capsys)
    assert train("--out", str(tmp_path / "f" / "run")) == 2
    assert "which is a file" in one_line_error(capsys)


def test_a_locked_run_folder_is_refused_with_the_holders_pid(tmp_path, capsys):
    run = tmp_path / "run"
    code = textwrap.dedent(f"""
        import time
        from robustgan.train.rundir import RunLock
        lock = RunLock({str(run)!r}).acquire()
        print("locked", flush=True)
        time.sleep(120)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=SRC))
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert train("--out", str(run), "train.steps=5") == 2
        assert f"in use by process {holder.pid}" in one_line_error(capsys)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert train("--out", str(run), "train.steps=5") == 0  # the kill released it


def test_list_keys_shows_type_default_and_preset_value(capsys, monkeypatch):
    monkeypatch.delattr(config_module, "describe_keys", raising=False)  # today's fallback
    assert cli_main(["train", "--list-keys", "--preset", "toy-8gaussians"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    leaves = [k for k in config_module._flat_keys(config_module.DEFAULTS)
              if not isinstance(config_module.DEFAULTS.get(k), dict)]
    assert set(lines) == set(leaves) and "reg.lam" in lines and "reg" not in lines
    assert lines["data.name"].split()[1:] == ["str", "fashion-mnist", "preset:", "8gaussians"]
    assert lines["seed"].split()[1:] == ["int", "0"]

    def describe_keys(preset=None):
        return [{"key": "reg.lam", "type": "float|null", "default": None, "preset_value": 1.0,
                 "help": "weight of the regulariser"}]

    monkeypatch.setattr(config_module, "describe_keys", describe_keys, raising=False)
    assert cli_main(["train", "--list-keys", "--preset", "toy-8gaussians"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.split()[:5] == ["reg.lam", "float|null", "null", "preset:", "1.0"]
    assert line.endswith("weight of the regulariser")


def test_stops_are_reported_with_their_exit_codes(tmp_path, monkeypatch, capsys):
    from robustgan.train import loop

    def stopped(self):
        self.last_checkpoint = self.save()
        return {"step": self.step, "status": "stopped", "signal": int(signal.SIGTERM),
                "checkpoint": str(self.last_checkpoint)}

    monkeypatch.setattr(loop.Trainer, "fit", stopped)
    assert train("--out", str(tmp_path / "a"), "train.steps=5") == 143
    err = one_line_error(capsys)
    assert "stopped by SIGTERM at step 0" in err and "ckpt-00000000.pt written" in err and "--resume" in err

    def second_signal(self):
        raise rundir.StopNow(signal.SIGINT)

    monkeypatch.setattr(loop.Trainer, "fit", second_signal)
    assert train("--out", str(tmp_path / "b"), "train.steps=5") == 130
    assert "stopped by a second SIGINT" in one_line_error(capsys)
    probe = subprocess.run([sys.executable, "-c", f"from robustgan.train.rundir import RunLock; "
                            f"RunLock({str(tmp_path / 'b')!r}).acquire()"], env=dict(os.environ, PYTHONPATH=SRC))
    assert probe.returncode == 0  # the lock was released on the way out


def test_apply_overrides_keeps_order_and_shorthands():
    base = config_module.resolve("toy-8gaussians", None)
    cfg = train_cli.apply_overrides(base, ["reg=gp", "reg.lam=3", "loss=wgan", "train.steps=7"])
    assert (cfg["reg"]["name"], cfg["reg"]["lam"], cfg["loss"], cfg["train"]["steps"]) == ("gp", 3, "wgan", 7)
    assert cfg["model"]["width"] == 256  # the base's value, not the package default
    with pytest.raises(config_module.ConfigError, match="did you mean 'reg.lam'"):
        train_cli.apply_overrides(base, ["reg.lamda=1"])


# ------------------------------------------------------------------ with the Trainer wired to rundir
def _trainer_uses_rundir() -> bool:
    from robustgan.train.loop import Trainer
    return hasattr(Trainer, "close") and hasattr(Trainer, "_stop")


needs_wiring = pytest.mark.skipif(not _trainer_uses_rundir(), reason="the Trainer does not yet lock its folder, "
                                  "stop on signals or rewind its logs (see robustgan.train.rundir)")


def _rows(run):
    import json
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@needs_wiring
def test_sigterm_writes_a_checkpoint_and_resume_finishes(tmp_path):
    import time
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "robustgan", "train", "--preset", "toy-8gaussians", *TINY, "--out", str(run),
           "train.steps=100000", "log.checkpoint_every=1000"]
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ((run / "metrics.jsonl").exists() and len(_rows(run)) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    line = [ln for ln in err.splitlines() if ln.startswith("robustgan train:")][-1]
    step = ckpt.load_checkpoint(ckpt.latest_checkpoint(run))["step"]
    assert f"stopped by SIGTERM at step {step};" in line and "--resume" in line
    assert step >= 10 and step % 1000 != 0  # a checkpoint the schedule would not have written
    assert "stopped by SIGTERM" in (run / "log.txt").read_text()
    assert cli_main(["train", "--resume", str(run), f"train.steps={step + 5}"]) == 0
    rows = _rows(run)
    assert rows == sorted(set(rows)) and rows[-1] == step + 5


@needs_wiring
def test_trainer_cleans_leftovers_and_refuses_another_network(tmp_path, capsys):
    from robustgan.train.config import resolve
    from robustgan.train.loop import Trainer
    run = tmp_path / "run"
    assert train("--out", str(run), "train.steps=5") == 0
    leftover = run / "checkpoints" / "ckpt-00000010.pt.abcd1234.tmp"
    leftover.write_bytes(b"half a checkpoint")
    assert train("--out", str(run), "train.steps=10") == 0
    assert not leftover.exists()
    cfg = resolve("toy-8gaussians", TINY + ["train.steps=15", "model.width=32"])
    with pytest.raises(rundir.RunDirError, match="model.width: 16 -> 32") as info:
        Trainer(cfg, run)  # the Python API checks too, before loading any weights
    assert "\n" not in str(info.value)


@needs_wiring
def test_rollback_logs_each_step_once(tmp_path):
    from robustgan.train.config import resolve
    from robustgan.train.loop import Trainer
    cfg = resolve("toy-8gaussians", TINY + ["train.steps=20", "train.on_nan=rollback", "log.every=1"])
    tr = Trainer(cfg, tmp_path)
    orig, count = tr.objective.d_loss, {"n": 0}

    def d_loss(dr, df):
        count["n"] += 1
        out = orig(dr, df)
        return out * float("nan") if count["n"] == 8 else out  # NaN at step 8: back to the checkpoint at 5

    tr.objective.d_loss = d_loss
    assert tr.fit()["status"] == "complete"
    tr.close()
    assert _rows(tmp_path) == list(range(1, 21))
