"""`robustgan generate`, `sample --out`, and load_generator on small hand-made runs."""
import copy
import csv
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import robustgan
from robustgan.cli import main as cli_main
from robustgan.data.toy import get_toy
from robustgan.generate import latent_for_seed, parse_seeds
from robustgan.train import checkpoint as ckpt
from robustgan.train.config import resolve
from robustgan.train.loop import build_networks


def make_run(path, toy=False, step=3, img_size=16):
    """A run directory with one checkpoint whose EMA weights differ from G's."""
    if toy:
        cfg = resolve("toy-8gaussians", ["model.width=16"])
        info, shape = get_toy(cfg["data"]["name"]), {"img_size": None, "channels": None}
    else:
        cfg = resolve("fmnist-dcgan", ["model.width=8"])
        shape = {"img_size": img_size, "channels": 1}
        info = SimpleNamespace(**shape)
    G, _ = build_networks(cfg, info)
    G_ema = copy.deepcopy(G)
    with torch.no_grad():
        for p in G_ema.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = {"config": cfg, "G": G.state_dict(), "G_ema": G_ema.state_dict(), "data_shape": shape, "step": step}
    ckpt.save_checkpoint(path, step, state)
    return G.eval(), G_ema.eval()


def pixels(path):
    return np.asarray(Image.open(path))


def by_hand(G, seed):
    """The uint8 image of one seed, from the latent's definition: (H, W) for one channel."""
    with torch.no_grad():
        x = G(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(seed)))[0]
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).squeeze(-1).numpy()


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("0-2,20,30-31") == [0, 1, 2, 20, 30, 31]
    assert parse_seeds("5, 5,2") == [5, 2]
    for bad in ("3-1", "a", "-2", "1-", ""):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_latent_for_seed_is_the_seeded_normal():
    z = latent_for_seed(7, 4)
    assert torch.equal(z, torch.randn(1, 4, generator=torch.Generator().manual_seed(7)))


def test_generate_same_pixels_per_seed_whatever_else_is_asked(tmp_path, capsys):
    G, G_ema = make_run(tmp_path / "run")
    assert cli_main(["generate", str(tmp_path / "run"), "--seeds", "0-3,7", "--outdir", str(tmp_path / "a")]) == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [f"seed000{k}.png" for k in (0, 1, 2, 3, 7)]
    assert cli_main(["generate", str(tmp_path / "run"), "--seeds", "7,2", "--outdir", str(tmp_path / "b")]) == 0
    for k in (2, 7):
        a, b = pixels(tmp_path / "a" / f"seed000{k}.png"), pixels(tmp_path / "b" / f"seed000{k}.png")
        assert a.shape == (16, 16) and np.array_equal(a, b)
        assert np.array_equal(a, by_hand(G_ema, k))  # EMA weights by default
    assert not np.array_equal(pixels(tmp_path / "a" / "seed0002.png"), pixels(tmp_path / "a" / "seed0003.png"))
    assert cli_main(["generate", str(tmp_path / "run"), "--seeds", "2", "--no-ema", "--outdir", str(tmp_path / "c")]) == 0
    assert np.array_equal(pixels(tmp_path / "c" / "seed0002.png"), by_hand(G, 2))
    assert "wrote 1 images" in capsys.readouterr().out


def test_generate_2d_run_writes_points(tmp_path):
    _, G_ema = make_run(tmp_path / "run", toy=True)
    assert cli_main(["generate", str(tmp_path / "run"), "--seeds", "0-4", "--outdir", str(tmp_path / "o")]) == 0
    rows = list(csv.reader(open(tmp_path / "o" / "points.csv")))
    assert rows[0] == ["seed", "x", "y"] and [int(r[0]) for r in rows[1:]] == list(range(5))
    with torch.no_grad():
        want = G_ema(latent_for_seed(3, G_ema.z_dim))[0]
    assert [float(v) for v in rows[4][1:]] == want.tolist()


def test_generate_errors(tmp_path, capsys):
    make_run(tmp_path / "run")
    (tmp_path / "file").write_text("x")
    assert cli_main(["generate", str(tmp_path / "run"), "--seeds", "0", "--outdir", str(tmp_path / "file")]) == 2
    assert cli_main(["generate", str(tmp_path / "run"), "--seeds", "9-1", "--outdir", str(tmp_path / "o")]) == 2
    assert cli_main(["generate", str(tmp_path / "none"), "--seeds", "0", "--outdir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "is a file" in err[0] and "--seeds" in err[1] and "no checkpoint" in err[2]


def test_sample_out_folder(tmp_path, capsys):
    make_run(tmp_path / "run")
    run = str(tmp_path / "run")
    assert cli_main(["sample", run, "--n", "4", "--out", str(tmp_path / "new") + "/"]) == 0
    assert (tmp_path / "new" / "sample.png").is_file()
    (tmp_path / "old").mkdir()
    assert cli_main(["sample", run, "--n", "4", "--out", str(tmp_path / "old")]) == 0
    assert (tmp_path / "old" / "sample.png").is_file()
    assert cli_main(["sample", run, "--n", "4", "--out", str(tmp_path / "grid")]) == 2
    assert "folder ending in /" in capsys.readouterr().err
    # a checkpoint file as RUN: the default output goes to its run directory
    assert cli_main(["sample", str(ckpt.latest_checkpoint(run)), "--n", "4"]) == 0
    assert (tmp_path / "run" / "samples" / "sample.png").is_file()


def test_load_generator(tmp_path):
    G, G_ema = make_run(tmp_path / "run")
    loaded = robustgan.load_generator(tmp_path / "run")
    G2, cfg, path = loaded
    assert loaded.G is G2 and path == ckpt.latest_checkpoint(tmp_path / "run") and cfg["model"]["width"] == 8
    assert not G2.training
    z = torch.randn(3, G2.z_dim)
    with torch.no_grad():
        torch.testing.assert_close(G2(z), G_ema(z))
        torch.testing.assert_close(robustgan.load_generator(path, ema=False).G(z), G(z))
        mine = copy.deepcopy(G)
        for p in mine.parameters():
            p.data.zero_()
        into = robustgan.load_generator(tmp_path / "run", G=mine).G
        assert into is mine
        torch.testing.assert_close(mine(z), G_ema(z))
