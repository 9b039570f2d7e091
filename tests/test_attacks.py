import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robustgan.attacks import (
    ATTACK_NORMS, ATTACK_REGISTRY, ATTACKS, AttackSpec, attack_spec, fgm, get_attack, per_sample_norm, pgd,
    register_attack,
)

DELTA = 0.05


class SmallD(nn.Module):
    """A non-trivial conv discriminator for attack tests."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.last_linear = nn.Linear(16, 1)

    def features(self, x):
        x = F.leaky_relu(self.c1(x), 0.2)
        x = F.leaky_relu(self.c2(x), 0.2)
        return x.mean(dim=(2, 3))

    def forward(self, x):
        return self.last_linear(self.features(x)).squeeze(-1)


def _attack(name, D, x, delta=DELTA, **kw):
    return get_attack(name, **kw)(D, x, delta) if kw else ATTACKS[name](D, x, delta)


CASES = [("fgm", {}, 2), ("fgsm", {}, "inf"), ("pgd", {}, 2), ("pgd", {"p": "inf"}, "inf"), ("cw", {}, 2)]


@pytest.mark.parametrize("name,kw,p", CASES)
def test_norm_within_ball(name, kw, p):
    D = SmallD()
    x = torch.rand(8, 3, 8, 8)
    v = _attack(name, D, x, **kw)
    assert v.shape == x.shape
    n = per_sample_norm(v, p)
    assert (n <= DELTA * (1 + 1e-5)).all()
    if name in ("fgm", "fgsm"):  # single-step attacks sit on the sphere
        assert torch.allclose(n, torch.full_like(n, DELTA), rtol=1e-5)


@pytest.mark.parametrize("name,kw,p", CASES)
def test_changes_h_more_than_random(name, kw, p):
    """Single-step attacks raise h; multi-step ones maximise the squared change (up or down)."""
    D = SmallD()
    x = torch.rand(16, 3, 8, 8)
    v = _attack(name, D, x, **kw)
    with torch.no_grad():
        change = D(x + v) - D(x)
        norms = per_sample_norm(v, p)
        best_random = -float("inf")
        for _ in range(20):
            r = torch.randn_like(x) if p == 2 else torch.sign(torch.randn_like(x))
            r = r * (norms / per_sample_norm(r, p)).view(-1, 1, 1, 1)
            best_random = max(best_random, (D(x + r) - D(x)).pow(2).mean().item())
    if ATTACK_REGISTRY[name].single_step:
        assert change.mean().item() > 0
    assert change.pow(2).mean().item() > 9 * best_random


@pytest.mark.parametrize("name", list(ATTACKS))
def test_no_parameter_grads_no_graph_and_no_grad_input(name):
    D = SmallD()
    G = nn.Sequential(nn.Linear(4, 3 * 8 * 8), nn.Sigmoid())
    with torch.no_grad():
        x = G(torch.randn(4, 4)).view(4, 3, 8, 8)
    v = ATTACKS[name](D, x, DELTA)
    assert not v.requires_grad and v.grad_fn is None
    assert all(p.grad is None for p in D.parameters())
    assert all(p.grad is None for p in G.parameters())
    # also when called inside a no_grad region
    with torch.no_grad():
        v2 = ATTACKS[name](D, x, DELTA)
    assert per_sample_norm(v2, ATTACK_NORMS[name]).max() <= DELTA * (1 + 1e-5)
    assert per_sample_norm(v2, ATTACK_NORMS[name]).min() > 0


def test_fgm_matches_closed_form_for_linear_h():
    a = torch.randn(3 * 4 * 4, dtype=torch.float64)
    h = lambda x: x.flatten(1) @ a  # noqa: E731
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64)
    v = fgm(h, x, 0.1)
    expected = (0.1 * a / a.norm()).view(1, 3, 4, 4).expand_as(x)
    assert torch.allclose(v, expected, atol=1e-12)


def test_fgm_shares_forward_pass():
    D = SmallD()
    x = torch.rand(6, 3, 8, 8).requires_grad_(True)
    out = D(x)
    v_shared = fgm(D, x, DELTA, h_x=out)
    v_plain = fgm(D, x.detach(), DELTA)
    assert torch.allclose(v_shared, v_plain, atol=1e-6)
    out.sum().backward()  # the shared graph is still usable afterwards
    assert D.c1.weight.grad is not None


def test_bf16_autocast_norm_exact_and_direction_accurate():
    D = SmallD()
    x = torch.rand(8, 3, 16, 16)
    v32 = fgm(D, x, DELTA)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v16 = fgm(D, x, DELTA)
    assert v16.dtype == torch.float32
    n = per_sample_norm(v16)
    assert torch.allclose(n, torch.full_like(n, DELTA), rtol=1e-5)
    cos = F.cosine_similarity(v16.flatten(1), v32.flatten(1), dim=1)
    assert (cos >= 0.99).all(), cos


class SmoothD(nn.Module):
    """A smooth random discriminator (softplus MLP) with a pooled feature layer."""

    def __init__(self, dim=48, feat=32, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.l1 = nn.Linear(dim, 64)
        self.l2 = nn.Linear(64, feat)
        self.last_linear = nn.Linear(feat, 1)

    def features(self, x):
        return F.softplus(self.l2(F.softplus(self.l1(x.flatten(1)) * 3)))

    def forward(self, x):
        return self.last_linear(self.features(x)).squeeze(-1)


def _sq_change(fn, x, v):
    with torch.no_grad():
        return (fn(x + v) - fn(x)).reshape(x.shape[0], -1).pow(2).sum(1)


@pytest.mark.parametrize("delta", [0.05, 0.5, 2.0])
@pytest.mark.parametrize("name", ["pgd", "cw"])
def test_multi_step_attacks_find_at_least_what_fgm_finds(name, delta):
    """PGD / CW maximise (h(x) - h(x+v))^2, the penalised quantity, so they beat FGM's v on it."""
    D = SmoothD()
    x = torch.rand(32, 3, 4, 4)
    fgm_change = _sq_change(D, x, fgm(D, x, delta))
    v = get_attack(name, steps=10)(D, x, delta)
    assert (per_sample_norm(v) <= delta * (1 + 1e-5)).all()
    change = _sq_change(D, x, v)
    assert change.mean() >= fgm_change.mean() * (1 - 1e-4)
    assert (change >= fgm_change * (1 - 1e-3)).float().mean() >= 0.9


def test_pgd_maximises_feature_distance_when_asked():
    D = SmoothD()
    x = torch.rand(32, 3, 4, 4)
    v_out = pgd(D, x, 0.5, steps=10)
    v_feat = pgd(D, x, 0.5, steps=10, measure=D.features)
    assert _sq_change(D.features, x, v_feat).mean() >= _sq_change(D.features, x, v_out).mean()
    assert _sq_change(D.features, x, v_feat).mean() >= _sq_change(D.features, x, fgm(D, x, 0.5)).mean()


def test_pgd_goes_down_where_that_changes_h_more():
    """h(x) = -(x.a)^2: with s = x.a and t = v.a, |t| <= T = delta ||a||, raising h changes it by at
    most max(2|s|T - T^2, ...) <= s^2 (capped at h = 0), lowering it by 2|s|T + T^2. The squared
    change is maximised by going down; the old one-sided ascent could not."""
    torch.manual_seed(0)
    a = torch.randn(12, dtype=torch.float64)

    def h(t):
        return -(t.flatten(1) @ a) ** 2

    x = torch.randn(8, 12, dtype=torch.float64)
    delta = 0.3
    s_, T = (x @ a).abs(), delta * a.norm()
    v = pgd(h, x, delta, steps=20)
    with torch.no_grad():
        change = h(x + v) - h(x)
    best_down = 2 * s_ * T + T ** 2
    best_up = torch.minimum(2 * s_ * T - T ** 2, s_ ** 2).clamp_min(0)
    assert (change < 0).all()
    assert torch.allclose(change.abs(), best_down, rtol=1e-3)
    assert (change.abs() > best_up).all()


def test_registry_declares_norm_and_single_step():
    assert {n: s.norm for n, s in ATTACK_REGISTRY.items()} == ATTACK_NORMS
    assert ATTACK_NORMS == {"fgm": "2", "fgsm": "inf", "pgd": "2", "cw": "2"}
    assert [n for n, s in ATTACK_REGISTRY.items() if s.single_step] == ["fgm", "fgsm"]
    assert attack_spec("pgd").norm_with({"p": "inf"}) == "inf"
    with pytest.raises(ValueError, match="unknown options"):
        register_attack(AttackSpec("bad", fgm, ("2",), single_step=True, options=("nonsense",)))


def test_adding_an_attack_is_one_registration():
    """A new attack registered here is valid in the config and used by the regularisers."""
    from robustgan.regularizers import adversarial_regularization
    from robustgan.train.config import resolve

    def random_sign(h, x, delta=0.05, *, h_x=None):
        g = torch.Generator().manual_seed(0)
        return delta * torch.sign(torch.randn(x.shape, generator=g)).to(x.dtype)

    register_attack(AttackSpec("random-sign", random_sign, ("inf",), single_step=False))
    try:
        cfg = resolve("toy-8gaussians", ["reg=ar", "reg.attack=random-sign", "reg.delta_inf=0.1"])
        assert cfg["reg"]["attack"] == "random-sign"
        D = SmoothD(dim=2)
        x = torch.rand(4, 2)
        rho = adversarial_regularization(D, x, delta=0.1, attack="random-sign")
        v = random_sign(D, x, 0.1)
        expected = (D(x) - D(x + v)).pow(2).mean()
        assert rho.item() == pytest.approx(expected.item(), rel=1e-6)
    finally:
        ATTACK_REGISTRY.pop("random-sign")


def test_attack_option_errors():
    with pytest.raises(ValueError, match="unknown attack"):
        get_attack("deepfool")
    with pytest.raises(ValueError, match="takes no options"):
        get_attack("fgm", steps=3)
    with pytest.raises(ValueError, match="takes .*steps"):
        get_attack("cw", p="inf")
    with pytest.raises(ValueError, match="steps >= 1"):
        pgd(lambda x: x.flatten(1).sum(1), torch.zeros(2, 3), steps=0)
