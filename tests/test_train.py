import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from robustgan.cli import main as cli_main
from robustgan.train import checkpoint as ckpt
from robustgan.train.config import ConfigError, resolve
from robustgan.train.loop import Trainer, TrainingDiverged

TINY_TOY = ["model.width=32", "train.batch_size=64", "log.every=5", "log.checkpoint_every=5",
            "log.samples_every=10", "log.progress=false", "log.eval_at_end=false", "log.tensorboard=false",
            "train.threads=1"]


def toy_cfg(*extra, steps=20):
    return resolve("toy-8gaussians", TINY_TOY + [f"train.steps={steps}", *extra])


def final_weights(run_dir):
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(run_dir))
    return state


def assert_same_state(a, b):
    for key in ("G", "D", "G_ema"):
        if a[key] is None or b[key] is None:
            assert a[key] is None and b[key] is None
            continue
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs"
    for opt in ("opt_g", "opt_d"):
        for pid, st in a[opt]["state"].items():
            for k, v in st.items():
                assert torch.equal(v, b[opt]["state"][pid][k]), f"{opt}.{pid}.{k} differs"


# ----------------------------------------------------------------------------- config
def test_unknown_key_suggests_nearest():
    with pytest.raises(ConfigError, match=r"unknown config key 'reg.lamda'; did you mean 'reg.lam'\?"):
        resolve("fmnist-dcgan", ["reg.lamda=1"])
    with pytest.raises(ConfigError, match=r"did you mean 'train.batch_size'"):
        resolve(None, ["batch_size=8"])
    with pytest.raises(ConfigError, match=r"unknown preset 'fmnist-dcgn'; did you mean 'fmnist-dcgan'"):
        resolve("fmnist-dcgn")


def test_overrides_and_shorthands():
    cfg = resolve("fmnist-dcgan", ["loss=lsgan", "reg=ar", "reg.lam=0.5", "model.normalisation=null",
                                   "optim.lr_d=1e-3"])
    assert cfg["loss"] == "lsgan" and cfg["reg"]["name"] == "ar" and cfg["reg"]["lam"] == 0.5
    assert cfg["model"]["normalisation"] is None and cfg["optim"]["lr_d"] == pytest.approx(1e-3)
    with pytest.raises(ConfigError, match="loss='wgn' is not valid; choose one of gan, lsgan, wgan, hinge"):
        resolve(None, ["loss=wgn"])
    with pytest.raises(ConfigError, match="train.steps=0 is not valid; expected int >= 1"):
        resolve(None, ["train.steps=0"])
    with pytest.raises(ConfigError, match="is a section"):
        resolve(None, ["reg.attack=fgm", "optim=3"])
    with pytest.raises(ConfigError, match="not of the form key=value"):
        resolve(None, ["loss"])


def test_preset_file_is_parsed_safely(tmp_path):
    bad = tmp_path / "evil.yaml"
    bad.write_text("loss: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        resolve(str(bad))
    good = tmp_path / "mine.yaml"
    good.write_text("loss: wgan\nreg: {name: gp}\n")
    assert resolve(str(good))["reg"]["name"] == "gp"


def test_cli_reports_config_errors_in_one_line(capsys):
    assert cli_main(["train", "reg.lamda=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did you mean 'reg.lam'" in err
    assert cli_main(["train", "--print-config", "loss=hinge", "reg=gp"]) == 0
    out = capsys.readouterr().out
    assert "loss: hinge" in out and "name: gp" in out


# ----------------------------------------------------------------------------- training
def test_toy_run_writes_outputs(tmp_path):
    cfg = toy_cfg("reg=rfm", steps=10)
    result = Trainer(cfg, tmp_path).fit()
    assert result["status"] == "complete" and result["step"] == 10
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10]
    for key in ("loss_d", "loss_g", "penalty", "d_real", "d_fake", "robustness", "step_time"):
        assert all(isinstance(r[key], float) for r in rows), key
    assert (tmp_path / "config.yaml").exists() and (tmp_path / "samples" / "latest.png").exists()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["ckpt-00000005.pt", "ckpt-00000010.pt"]
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path))  # weights_only load
    assert state["step"] == 10 and state["d_iter"] == 10 and state["config"]["reg"]["name"] == "rfm"


@pytest.mark.parametrize("reg", ["none", "noise", "gp", "r1", "r2", "r1r2", "ar", "rfm"])
def test_every_regulariser_trains_images(tmp_path, reg):
    images = torch.randint(0, 256, (64, 1, 16, 16), dtype=torch.uint8)
    from robustgan.data.images import TensorImageDataset
    import robustgan.train.loop as loop
    ds = TensorImageDataset(images, name="tiny", split="train")
    cfg = resolve("fmnist-dcgan", ["model.width=8", "train.batch_size=16", "train.steps=3", "log.every=1",
                                   "log.checkpoint_every=3", "log.progress=false", "log.eval_at_end=false",
                                   "log.tensorboard=false", f"reg={reg}", "optim.d_steps=2",
                                   *(["reg.every=2"] if reg not in ("none", "noise") else [])])
    orig = loop.load_training_data
    loop.load_training_data = lambda cfg: ds
    try:
        Trainer(cfg, tmp_path).fit()
    finally:
        loop.load_training_data = orig
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    if reg not in ("none", "noise"):
        assert all(r["penalty"] > 0 for r in rows)
    else:
        assert all("penalty" not in r for r in rows)


def test_resume_in_process_is_bit_identical(tmp_path):
    cfg = toy_cfg("reg=rfm", "train.ema=0.9", steps=20)
    Trainer(cfg, tmp_path / "full").fit()
    cfg10 = toy_cfg("reg=rfm", "train.ema=0.9", steps=10)
    Trainer(cfg10, tmp_path / "split").fit()
    Trainer(cfg, tmp_path / "split").fit()  # resumes from step 10
    a, b = final_weights(tmp_path / "full"), final_weights(tmp_path / "split")
    assert a["step"] == b["step"] == 20
    assert_same_state(a, b)


def _train_cmd(out, steps):
    return [sys.executable, "-m", "robustgan", "train", "--preset", "toy-8gaussians", "--out", str(out),
            "reg=rfm", "train.ema=0.9", f"train.steps={steps}", *TINY_TOY]


@pytest.mark.slow
def test_sigkill_and_resume_is_bit_identical(tmp_path):
    steps = 60
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_train_cmd(tmp_path / "full", steps), check=True, env=env, capture_output=True)
    proc = subprocess.Popen(_train_cmd(tmp_path / "killed", steps), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        ckpts = ckpt.list_checkpoints(tmp_path / "killed")
        if ckpts and int(ckpts[-1].name[5:13]) >= 20:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "killed"))["step"]
    assert 20 <= killed_at < steps, "the run must be killed mid-training"
    subprocess.run(_train_cmd(tmp_path / "killed", steps), check=True, env=env, capture_output=True)
    a, b = final_weights(tmp_path / "full"), final_weights(tmp_path / "killed")
    assert a["step"] == b["step"] == steps
    assert_same_state(a, b)
    rows = [json.loads(l)["step"] for l in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert rows == sorted(set(rows)) and rows[-1] == steps  # no duplicated reports after the resume


def _nan_after(trainer, n_calls):
    orig = trainer.objective.d_loss
    count = {"n": 0}

    def d_loss(dr, df):
        count["n"] += 1
        out = orig(dr, df)
        return out * float("nan") if count["n"] > n_calls else out

    trainer.objective.d_loss = d_loss
    return count


def test_nan_stops_with_checkpoint_intact(tmp_path, capsys):
    cfg = toy_cfg(steps=20)
    tr = Trainer(cfg, tmp_path)
    _nan_after(tr, 12)
    with pytest.raises(TrainingDiverged, match=r"loss_d became nan at step 12; .*ckpt-00000010.pt\) is intact"):
        tr.fit()
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path))
    assert state["step"] == 10
    assert all(torch.isfinite(v).all() for v in state["D"].values() if v.is_floating_point())
    assert "became nan" in (tmp_path / "log.txt").read_text()


def test_nan_between_log_ticks_never_reaches_a_checkpoint(tmp_path):
    # Losses are read back only at log ticks and before samples, evaluations and checkpoints:
    # a NaN at step 12 with log.every=20 is seen at the checkpoint of step 15, before it is written.
    cfg = toy_cfg("log.every=20", "log.samples_every=100", steps=20)
    tr = Trainer(cfg, tmp_path)
    _nan_after(tr, 12)
    with pytest.raises(TrainingDiverged, match=r"loss_d became nan at step 12; .*ckpt-00000010.pt\) is intact"):
        tr.fit()
    assert tr.step == 15  # seen late, at the next check
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)][-1] == "ckpt-00000010.pt"
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path))
    assert all(torch.isfinite(v).all() for v in state["D"].values() if v.is_floating_point())


def test_nan_message_does_not_suggest_rollback_when_it_is_set(tmp_path):
    cfg = toy_cfg("train.on_nan=rollback", "train.max_rollbacks=0", steps=20)
    tr = Trainer(cfg, tmp_path)
    _nan_after(tr, 12)
    with pytest.raises(TrainingDiverged) as info:
        tr.fit()
    assert "set train.on_nan=rollback" not in str(info.value)
    assert "0 of train.max_rollbacks=0 rollbacks were used" in str(info.value)


def test_logged_averages_do_not_depend_on_where_a_run_resumed(tmp_path):
    # log.every (10) > checkpoint_every (5): a run stopped at step 5 and resumed must log the
    # same window averages at steps 10 and 20 as a run that was never interrupted.
    cfg = toy_cfg("log.every=10", "log.checkpoint_every=5", steps=20)
    Trainer(cfg, tmp_path / "full").fit()

    class Stop(Exception):
        pass

    tr = Trainer(cfg, tmp_path / "resumed")
    orig_save = tr.save

    def save_then_stop():
        orig_save()
        raise Stop()

    tr.save = save_then_stop
    with pytest.raises(Stop):
        tr.fit()
    assert tr.step == 5
    Trainer(cfg, tmp_path / "resumed").fit()

    def train_rows(run):
        rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r for r in rows if r["kind"] == "train"}

    full, resumed = train_rows(tmp_path / "full"), train_rows(tmp_path / "resumed")
    assert sorted(full) == sorted(resumed) == [10, 20]
    for step in (10, 20):
        for key in ("loss_d", "loss_g", "d_real", "d_fake"):
            assert resumed[step][key] == full[step][key], (step, key)


def test_nan_rollback_lowers_lr_and_finishes(tmp_path):
    cfg = toy_cfg("train.on_nan=rollback", steps=20)
    tr = Trainer(cfg, tmp_path)
    orig = tr.objective.d_loss
    fired = {"done": False}

    def d_loss(dr, df):
        out = orig(dr, df)
        if tr.step == 12 and not fired["done"]:
            fired["done"] = True
            return out * float("nan")
        return out

    tr.objective.d_loss = d_loss
    result = tr.fit()
    assert result["status"] == "complete" and result["step"] == 20
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path))
    assert state["lr_scale"] == 0.5 and state["rollbacks"] == 1
    assert state["opt_d"]["param_groups"][0]["lr"] == pytest.approx(cfg["optim"]["lr_d"] * 0.5)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    Trainer(toy_cfg(steps=5), tmp_path).fit()
    path = ckpt.latest_checkpoint(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable robustgan checkpoint.*delete it"):
        Trainer(toy_cfg(steps=10), tmp_path)


def test_sample_command(tmp_path, capsys):
    Trainer(toy_cfg(steps=5), tmp_path / "run").fit()
    assert cli_main(["sample", str(tmp_path / "run"), "--n", "16", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").stat().st_size > 0
    assert cli_main(["sample", str(tmp_path / "nothing")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_sample_grid_from_image_run(tmp_path):
    from PIL import Image
    from robustgan.data.images import TensorImageDataset
    import robustgan.train.loop as loop
    ds = TensorImageDataset(torch.randint(0, 256, (64, 1, 16, 16), dtype=torch.uint8), name="tiny", split="train")
    cfg = resolve("fmnist-dcgan", ["model.width=8", "train.batch_size=16", "train.steps=2", "log.checkpoint_every=2",
                                   "log.progress=false", "log.eval_at_end=false", "log.tensorboard=false"])
    orig = loop.load_training_data
    loop.load_training_data = lambda cfg: ds
    try:
        Trainer(cfg, tmp_path / "run").fit()
    finally:
        loop.load_training_data = orig
    assert cli_main(["sample", str(tmp_path / "run"), "--n", "9", "--nrow", "3", "--out", str(tmp_path / "g.png")]) == 0
    im = Image.open(tmp_path / "g.png")
    assert im.size == (3 * 18 + 2, 3 * 18 + 2) and im.mode == "L"


# ----------------------------------------------------------------------------- distributed
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out, overrides):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), ROBUSTGAN_DIST_BACKEND="gloo")
    torch.set_num_threads(1)
    cfg = resolve("toy-8gaussians", overrides)
    tr = Trainer(cfg, out)
    tr.fit()
    torch.save({"G": tr.G.state_dict(), "D": tr.D.state_dict()}, Path(out) / f"rank{rank}.pt")
    tr.dist.close()


@pytest.mark.slow
def test_ddp_gloo_two_ranks_stay_identical(tmp_path):
    import torch.multiprocessing as mp
    overrides = TINY_TOY + ["train.steps=10", "reg=gp"]
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path), overrides), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for net in ("G", "D"):
        for k in r0[net]:
            assert torch.equal(r0[net][k], r1[net][k]), f"{net}.{k} differs between ranks"
    # and training did move the weights away from their (shared) initialisation
    torch.manual_seed(0)
    fresh = Trainer(resolve("toy-8gaussians", overrides), tmp_path / "fresh", resume=False)
    assert not torch.equal(fresh.D.state_dict()["last_linear.weight"], r0["D"]["last_linear.weight"])
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path))
    assert len(state["rng"]) == 2 and state["step"] == 10


def test_regulariser_settings_follow_the_pixel_range():
    from robustgan.train.loop import build_regularizer
    r = build_regularizer(resolve("fmnist-dcgan", ["reg=ar", "reg.delta=0.05"]))
    assert r.delta == pytest.approx(0.05) and r.lam == 100.0 and r.attack == "fgm"  # DEFAULT_LAMBDA["ar"]["gan"]
    r = build_regularizer(resolve("fmnist-dcgan", ["reg=rfm", "model.out_range=tanh", "reg.attack=pgd",
                                                   "reg.attack_steps=3", "reg.attack_norm=inf", "reg.lam=2"]))
    assert r.delta == pytest.approx(0.1) and r.lam == 2.0 and r.alpha == 1e-4
    assert r.attack_kwargs == {"steps": 3, "p": "inf"}
    n = build_regularizer(resolve("fmnist-dcgan", ["reg=noise", "model.out_range=tanh", "reg.sigma=0.1",
                                                   "train.steps=100", "reg.anneal=0.5"]))
    assert n.sigma == pytest.approx(0.2) and n.anneal_steps == 50
    g = build_regularizer(resolve("toy-8gaussians", ["reg=gp", "loss=wgan"]))
    assert g.lam == 10.0


@pytest.mark.slow
def test_torchrun_entry_point(tmp_path):
    """`torchrun --nproc_per_node 2 -m robustgan train ...` trains and rank 0 writes the run."""
    env = {**os.environ, "ROBUSTGAN_DIST_BACKEND": "gloo", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "robustgan", "train", "--preset", "toy-8gaussians", "--out", str(tmp_path),
           "train.steps=6", "reg=rfm", *TINY_TOY]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path))
    assert state["step"] == 6 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])  # per-rank noise
    rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [5, 6]  # one writer: rank 0


def test_ema_warm_up_and_batch_norm_buffers(tmp_path):
    tr = Trainer(toy_cfg("train.ema=0.999", steps=5), tmp_path, resume=False)
    with torch.no_grad():
        for p in tr.G.parameters():
            p.fill_(1.0)
        for p in tr.G_ema.parameters():
            p.fill_(0.0)
    tr.step = 1
    tr._update_ema()  # decay = min(0.999, 2/11)
    for p in tr.G_ema.parameters():
        assert torch.allclose(p, torch.full_like(p, 1 - 2 / 11))
    tr.step = 100_000  # long runs reach the configured decay
    with torch.no_grad():
        for p in tr.G_ema.parameters():
            p.fill_(0.0)
    tr._update_ema()
    for p in tr.G_ema.parameters():
        assert torch.allclose(p, torch.full_like(p, 1 - 0.999))
    for be, b in zip(tr.G_ema.buffers(), tr.G.buffers()):
        assert torch.equal(be, b)
