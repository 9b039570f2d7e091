# The phase losses compute D's outputs in float32 (as under autocast), hence rel 1e-6 tolerances.
import inspect

import pytest
import torch
import torch.nn.functional as F

from robustgan.objectives import get_objective
from robustgan.regularizers import InstanceNoise, make_regularizer
from robustgan.train.phases import DiscriminatorLoss, GeneratorLoss
from test_attacks import SmallD
from test_regularizers import LinearD


def test_noisy_generator_loss_matches_a_hand_computation():
    """Instance noise blurs G's phase too: the loss is softplus(-D(G(z) + sigma * eps))."""
    D = LinearD(12)
    fake = torch.randn(8, 3, 2, 2, dtype=torch.float64)
    reg = InstanceNoise(sigma=0.3, anneal_steps=100)
    loss_fn = GeneratorLoss(D, get_objective("gan"), reg)
    torch.manual_seed(5)
    noisy = loss_fn(fake, None, step=50)
    torch.manual_seed(5)
    eps = torch.randn_like(fake)
    with torch.no_grad():
        expected = F.softplus(-D(fake + 0.15 * eps)).mean()  # sigma at step 50 of 100: 0.15
        clean = F.softplus(-D(fake)).mean()
    assert noisy.item() == pytest.approx(expected.item(), rel=1e-6)
    assert abs(noisy.item() - clean.item()) > 1e-3
    assert loss_fn(fake, None, step=100).item() == pytest.approx(clean.item(), rel=1e-6)  # annealed away


def test_rpgan_generator_loss_uses_a_real_batch():
    D = LinearD(12)
    fake = torch.randn(8, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    real = torch.randn(8, 3, 2, 2, dtype=torch.float64)
    loss_fn = GeneratorLoss(D, get_objective("rpgan"), make_regularizer("none"))
    assert loss_fn.needs_real
    loss = loss_fn(fake, real, 0)
    with torch.no_grad():
        expected = F.softplus(-(D(fake) - D(real))).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert fake.grad is not None
    with pytest.raises(ValueError, match="needs a real batch"):
        loss_fn(fake, None, 0)


@pytest.mark.parametrize("name", ["gp", "r1", "r2", "r1r2", "ar", "rfm"])
def test_discriminator_loss_adds_the_lazy_penalty(name):
    D = SmallD().double()
    real, fake = torch.rand(4, 3, 8, 8, dtype=torch.float64), torch.rand(4, 3, 8, 8, dtype=torch.float64)
    reg = make_regularizer(name, lam=2.0)
    obj = get_objective("gan")
    loss_fn = DiscriminatorLoss(D, obj, reg, every=3)
    torch.manual_seed(0)
    total, stats = loss_fn(real, fake, step=6)
    with torch.no_grad():
        plain = obj.d_loss(D(real), D(fake))
    torch.manual_seed(0)
    penalty = reg.penalty(D, real, fake, objective=obj)
    assert stats["loss_d"].item() == pytest.approx(plain.item(), rel=1e-6)
    assert stats["penalty"].item() == pytest.approx(penalty.item(), rel=1e-6)
    assert total.item() == pytest.approx(plain.item() + 3 * penalty.item(), rel=1e-6)
    total, stats = loss_fn(real, fake, step=7)  # not a regularisation step
    assert stats["penalty"] is None and total.item() == pytest.approx(plain.item(), rel=1e-6)
    assert set(stats) == {"loss_d", "penalty", "d_real", "d_fake"}
    assert all(v.dim() == 0 and not v.requires_grad for v in stats.values() if v is not None)


def _count_features(D):
    calls = []
    D.features_orig = D.features

    def counted(x):
        calls.append(x.shape[0])
        return D.features_orig(x)

    D.features = counted
    return calls


@pytest.mark.parametrize("attack,expected", [("fgm", 3), ("fgsm", 3), ("pgd", None)])
def test_single_step_attack_shares_the_fake_forward_pass(attack, expected):
    """fgm / fgsm: D's features run on fake (shared with the attack), real, fake + v: 3 passes."""
    D = SmallD()
    calls = _count_features(D)
    reg = make_regularizer("ar", lam=1.0, attack=attack)
    DiscriminatorLoss(D, get_objective("gan"), reg)(torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8), 0)
    if expected is not None:
        assert len(calls) == expected
    else:
        assert len(calls) > 3  # pgd runs its own passes


def test_noise_reaches_both_phases_with_the_same_schedule():
    reg = InstanceNoise(sigma=0.2, anneal_steps=10)
    D = LinearD(4)
    real, fake = torch.zeros(4000, 4, dtype=torch.float64), torch.zeros(4000, 4, dtype=torch.float64)
    seen = []
    D.features_orig = D.features
    D.features = lambda x: (seen.append(x.std().item()), D.features_orig(x))[1]
    DiscriminatorLoss(D, get_objective("gan"), reg)(real, fake, 5)
    GeneratorLoss(D, get_objective("gan"), reg)(fake, None, 5)
    assert seen == pytest.approx([0.1, 0.1, 0.1], rel=0.05)


def test_trainer_steps_are_short_and_name_no_regulariser():
    from robustgan.attacks import ATTACK_REGISTRY
    from robustgan.regularizers import REGULARIZERS
    from robustgan.train.loop import Trainer

    for method in (Trainer.d_step, Trainer.g_step):
        src = inspect.getsource(method)
        assert len(src.strip().splitlines()) < 25
        words = set(src.replace('"', " ").replace("'", " ").replace("(", " ").replace(".", " ").split())
        assert not words & (set(REGULARIZERS) - {"none"}) and not words & set(ATTACK_REGISTRY), method


@pytest.mark.parametrize("extra", [["loss=rpgan", "reg=r1r2"], ["reg=noise", "reg.sigma=0.5"],
                                   ["loss=rpgan", "reg=ar", "reg.every=2"]])
def test_trainer_runs_the_new_combinations(tmp_path, extra):
    import json

    from robustgan.train.loop import Trainer
    from test_train import toy_cfg

    tr = Trainer(toy_cfg(*extra, steps=4), tmp_path, resume=False)
    d = tr.d_step()
    assert set(d) == {"loss_d", "penalty", "d_real", "d_fake", "fake"} and tr.d_iter == 1
    g = tr.g_step()
    assert set(g) == {"loss_g"} and torch.isfinite(g["loss_g"])
    tr.fit()
    rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(torch.isfinite(torch.tensor(r["loss_g"])) for r in rows)
