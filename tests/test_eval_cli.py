"""``robustgan eval``: the record tells the truth (EMA, feature space, step) and is appended, not overwritten."""
import json

import numpy as np
import pytest
import torch

from robustgan.cli import main as cli_main
from robustgan.train.config import resolve
from robustgan.train.loop import Trainer
from test_metrics import _classifier_available

QUIET = ["log.progress=false", "log.eval_at_end=false", "log.tensorboard=false", "train.threads=1"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTGAN_CACHE", str(tmp_path / "cache"))


def test_toy_eval_appends_records_and_says_ema_false(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = resolve("toy-8gaussians", QUIET + ["model.width=16", "train.batch_size=32", "train.steps=6",
                                             "log.every=3", "log.checkpoint_every=3", "log.samples_every=6",
                                             "train.ema=0"])
    Trainer(cfg, run).fit()
    assert cli_main(["eval", str(run), "--n", "300", "--device", "cpu", "--quiet"]) == 0
    out = capsys.readouterr().out
    # every metric is printed, the integer counts included
    assert "modes_covered=" in out and "num_modes=8" in out and "w1=" in out
    assert cli_main(["eval", str(run), "--n", "300", "--device", "cpu", "--metrics", "w1", "--quiet"]) == 0
    lines = (run / "eval.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first, second = map(json.loads, lines)
    assert first["ema"] is False and first["step"] == 6 and first["n"] == 300
    assert first["settings"]["device"] == "cpu" and set(first["metrics"]) >= {"modes_covered", "w1"}
    assert set(second["metrics"]) == {"w1"} and second["settings"]["metrics"] == ["w1"]
    assert second["metrics"]["w1"] == pytest.approx(first["metrics"]["w1"], rel=1e-12)
    # image metrics on a 2-D run, and unknown names, are one-line errors
    assert cli_main(["eval", str(run), "--metrics", "fd", "--quiet"]) == 2
    assert cli_main(["eval", str(run), "--metrics", "bogus", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "do not apply" in err and "unknown metric 'bogus'" in err


@pytest.mark.skipif(not _classifier_available(), reason="Fashion-MNIST classifier weights not present")
def test_gray_run_refuses_fid_and_names_the_feature_space(tmp_path, capsys):
    from robustgan.data.idx import write_idx
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    write_idx(data / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (64, 28, 28), dtype=np.uint8))
    write_idx(data / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 64).astype(np.uint8))
    run = tmp_path / "run"
    cfg = resolve("fmnist-dcgan", QUIET + ["model.width=8", "train.batch_size=16", "train.steps=2", "log.every=1",
                                           "log.checkpoint_every=2", "log.samples_every=2", f"data.root={data}"])
    Trainer(cfg, run).fit()
    capsys.readouterr()
    assert cli_main(["eval", str(run), "--metrics", "fid", "--n", "50", "--device", "cpu", "--quiet"]) == 2
    assert "Inception space" in capsys.readouterr().err
    assert not (run / "eval.jsonl").exists()
    assert cli_main(["eval", str(run), "--metrics", "fd,kid", "--n", "50", "--kid-subsets", "2",
                     "--kid-subset-size", "20", "--device", "cpu", "--quiet"]) == 0
    rec = json.loads((run / "eval.jsonl").read_text())
    assert rec["extractor"] == "classifier" and rec["ema"] is True and rec["step"] == 2
    assert set(rec["metrics"]) == {"fd", "kid_mean", "kid_std", "n_fake", "n_ref"} and rec["metrics"]["n_ref"] == 64
    assert rec["settings"]["kid_subsets"] == 2 and rec["settings"]["kid_subset_size"] == 20
    assert "fd=" in capsys.readouterr().out


def test_generate_samples_is_seeded_and_batch_independent():
    from robustgan.metrics.sampling import generate_samples

    class G(torch.nn.Module):
        z_dim = 3

        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, z):
            assert not self.training
            return self.lin(z)

    g = G().train()
    a = generate_samples(g, 25, "cpu", seed=5, batch=4)
    b = generate_samples(g, 25, "cpu", seed=5, batch=100)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert g.training and a.shape == (25, 2)
    z = torch.randn(25, 3, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, g.lin(z).detach(), rtol=0, atol=1e-6)
    assert not torch.equal(a, generate_samples(g, 25, "cpu", seed=6))


def test_evaluate_generator_uses_the_ema_copy_and_the_trainers_device(monkeypatch):
    from types import SimpleNamespace

    from robustgan.data.toy import get_toy
    from robustgan.train import evaluation

    centers = torch.as_tensor(get_toy("8gaussians").centers, dtype=torch.float32)

    class AtCentres(torch.nn.Module):
        z_dim = 2

        def forward(self, z):
            return centers[torch.arange(len(z)) % len(centers)]

    class Collapsed(AtCentres):
        def forward(self, z):
            return centers[:1].expand(len(z), 2)

    seen = []
    real_generate = evaluation.generate_samples
    monkeypatch.setattr(evaluation, "generate_samples",
                        lambda G, n, device, **kw: seen.append(str(device)) or real_generate(G, n, device, **kw))
    cfg = resolve("toy-8gaussians", QUIET)
    trainer = SimpleNamespace(G=Collapsed(), G_ema=AtCentres(), device=torch.device("cpu"), cfg=cfg)
    assert evaluation.evaluate_generator(trainer, 400)["modes_covered"] == 8
    trainer.G_ema = None
    assert evaluation.evaluate_generator(trainer, 400)["modes_covered"] == 1
    assert seen == ["cpu", "cpu"]
