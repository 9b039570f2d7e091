import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robustgan.attacks import ATTACK_NORMS, ATTACKS, fgm, get_attack, per_sample_norm, pgd

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
def test_increases_h_more_than_random(name, kw, p):
    D = SmallD()
    x = torch.rand(16, 3, 8, 8)
    v = _attack(name, D, x, **kw)
    with torch.no_grad():
        gain = (D(x + v) - D(x)).mean()
        norms = per_sample_norm(v, p)
        best_random = -float("inf")
        for _ in range(20):
            r = torch.randn_like(x) if p == 2 else torch.sign(torch.randn_like(x))
            r = r * (norms / per_sample_norm(r, p)).view(-1, 1, 1, 1)
            best_random = max(best_random, (D(x + r) - D(x)).mean().item())
    assert gain.item() > 0
    assert gain.item() > 3 * abs(best_random)


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


def test_pgd_beats_fgm_or_ties_on_nonlinear_net():
    D = SmallD()
    x = torch.rand(16, 3, 8, 8)
    with torch.no_grad():
        base = D(x)
    v1 = fgm(D, x, 0.5)
    v2 = pgd(D, x, 0.5, steps=20, random_start=False)
    with torch.no_grad():
        g1 = (D(x + v1) - base).mean()
        g2 = (D(x + v2) - base).mean()
    assert g2 >= g1 - 1e-4


def test_attack_option_errors():
    with pytest.raises(ValueError, match="unknown attack"):
        get_attack("deepfool")
    with pytest.raises(ValueError, match="takes no options"):
        get_attack("fgm", steps=3)
    with pytest.raises(ValueError, match="steps >= 1"):
        pgd(lambda x: x.flatten(1).sum(1), torch.zeros(2, 3), steps=0)
