import math

import pytest
import torch
import torch.nn as nn

from robustgan.objectives import get_objective
from robustgan.regularizers import (
    REGULARIZERS, SETTINGS, InstanceNoise, Regularizer, adversarial_regularization, default_weight,
    discriminator_robustness, gradient_penalty, linf_radius, make_regularizer, register_regularizer,
    robust_feature_matching, zero_centred_penalty,
)
from test_attacks import SmallD

DELTA = 0.05


class LinearD(nn.Module):
    """A linear D following the protocol: phi(x) = W x, D(x) = w . phi(x) + b, so a = W^T w."""

    def __init__(self, dim, feat=None, dtype=torch.float64):
        super().__init__()
        feat = feat or dim
        self.proj = nn.Linear(dim, feat, bias=False, dtype=dtype)
        self.last_linear = nn.Linear(feat, 1, dtype=dtype)

    def features(self, x):
        return self.proj(x.flatten(1))

    def forward(self, x):
        return self.last_linear(self.features(x)).squeeze(-1)

    def a(self):
        return (self.last_linear.weight @ self.proj.weight).flatten()


class ConstantD(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Parameter(torch.tensor(0.7))

    def forward(self, x):
        return self.c.expand(x.shape[0]) + 0.0 * x.flatten(1).sum(1)


def test_ar_is_zero_for_constant_d():
    D = ConstantD()
    x = torch.rand(6, 3, 4, 4)
    for attack in ["fgm", "fgsm", "pgd", "cw"]:
        assert adversarial_regularization(D, x, attack=attack).item() == 0.0


def test_ar_linear_d_fgm_closed_form():
    D = LinearD(12)
    x = torch.randn(5, 3, 2, 2, dtype=torch.float64)
    rho = adversarial_regularization(D, x, delta=DELTA)
    expected = (DELTA * D.a().norm()) ** 2
    assert rho.item() == pytest.approx(expected.item(), rel=1e-10)


def test_rfm_linear_closed_form_includes_alpha_w():
    D = LinearD(12, feat=6)
    x = torch.randn(5, 3, 2, 2, dtype=torch.float64)
    alpha = 0.3
    rho = robust_feature_matching(D, x, delta=DELTA, alpha=alpha)
    a = D.a()
    v = DELTA * a / a.norm()
    W = D.proj.weight
    expected = (W @ v).pow(2).sum() + alpha * D.last_linear.weight.pow(2).sum()
    assert rho.item() == pytest.approx(expected.item(), rel=1e-10)
    # with the feature term removed (alpha only) the difference is exactly alpha * ||w||^2
    rho0 = robust_feature_matching(D, x, delta=DELTA, alpha=0.0)
    assert (rho - rho0).item() == pytest.approx(alpha * D.last_linear.weight.pow(2).sum().item(), rel=1e-10)


def test_gp_zero_for_unit_linear_d_and_closed_form_otherwise():
    D = LinearD(12)
    with torch.no_grad():
        D.proj.weight.copy_(torch.eye(12, dtype=torch.float64))
        D.last_linear.weight.normal_()
        D.last_linear.weight /= D.last_linear.weight.norm()
    real = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    fake = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    assert gradient_penalty(D, real, fake).item() == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        D.last_linear.weight *= 3.0
    assert gradient_penalty(D, real, fake).item() == pytest.approx(4.0, rel=1e-10)


class QuadD(nn.Module):
    """D(x) = sum(a * x^2): v depends on a, so detaching v changes the gradient."""

    def __init__(self, dim):
        super().__init__()
        self.a = nn.Parameter(torch.rand(dim, dtype=torch.float64) + 0.5)

    def forward(self, x):
        return (self.a * x.flatten(1) ** 2).sum(1)


def test_penalty_gradient_reaches_d_but_not_through_attack_vector():
    D = QuadD(6)
    x = torch.randn(4, 6, dtype=torch.float64)
    rho = adversarial_regularization(D, x, delta=0.3)
    (g_ours,) = torch.autograd.grad(rho, D.a)
    assert g_ours.abs().sum() > 0

    def manual(detach_v):
        g = 2 * D.a * x
        v = 0.3 * g / g.norm(dim=1, keepdim=True)
        if detach_v:
            v = v.detach()
        return ((D(x) - D(x + v)) ** 2).mean()

    (g_const,) = torch.autograd.grad(manual(True), D.a)
    (g_through,) = torch.autograd.grad(manual(False), D.a)
    assert torch.allclose(g_ours, g_const, rtol=1e-10)
    assert (g_ours - g_through).abs().max() > 1e-3  # the two really differ for this D


@pytest.mark.parametrize("attack", ["fgm", "fgsm", "pgd", "cw"])
def test_rfm_and_ar_backprop_to_parameters(attack):
    D = SmallD()
    x = torch.rand(4, 3, 8, 8)
    for fn in (adversarial_regularization, robust_feature_matching):
        D.zero_grad()
        fn(D, x, attack=attack).backward()
        # rfm does not use D's last bias (features and w only); everything else gets a gradient
        grads = [p.grad for p in D.parameters() if not (fn is robust_feature_matching and p is D.last_linear.bias)]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert sum(g.abs().sum() for g in grads) > 0


def test_shared_forward_gives_same_penalty():
    D = SmallD()
    x = torch.rand(6, 3, 8, 8)
    for name in ["ar", "rfm"]:
        reg = make_regularizer(name, lam=2.0)
        plain = reg.penalty(D, x, x)
        xg = x.clone().requires_grad_(True)
        shared = reg.penalty(D, x, xg, fake_features=D.features(xg))
        assert shared.item() == pytest.approx(plain.item(), rel=1e-5)


def test_robust_loss_target():
    D = LinearD(12)
    x = torch.randn(5, 3, 2, 2, dtype=torch.float64)
    # for wgan, f(t) = -t: the robust loss penalty equals the robust discriminator one
    a = adversarial_regularization(D, x, target="discriminator")
    b = adversarial_regularization(D, x, target="loss", objective="wgan")
    assert b.item() == pytest.approx(a.item(), rel=1e-10)
    # for gan, it is (f(D(x)) - f(D(x + v)))^2 with v attacking f o D, i.e. along -a
    f = get_objective("gan").f
    v = -DELTA * D.a() / D.a().norm()
    with torch.no_grad():
        expected = ((f(D(x)) - f(D(x + v.view(1, 3, 2, 2)))) ** 2).mean()
    got = adversarial_regularization(D, x, target="loss", objective="gan")
    assert got.item() == pytest.approx(expected.item(), rel=1e-8)
    with pytest.raises(ValueError, match="needs the objective"):
        adversarial_regularization(D, x, target="loss")


def test_gp_accurate_under_bf16():
    D = SmallD()
    real, fake = torch.rand(8, 3, 16, 16), torch.rand(8, 3, 16, 16)
    torch.manual_seed(1)
    p32 = gradient_penalty(D, real, fake)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        p16 = gradient_penalty(D, real, fake)
    assert p16.dtype == torch.float32
    assert p16.item() == pytest.approx(p32.item(), rel=0.02)


def test_instance_noise_anneals_and_has_right_std():
    reg = InstanceNoise(sigma=0.2, anneal_steps=100)
    assert reg.sigma_at(0) == 0.2 and reg.sigma_at(50) == pytest.approx(0.1) and reg.sigma_at(200) == 0.0
    real, fake = torch.zeros(200, 1, 16, 16), torch.ones(200, 1, 16, 16)
    r, f = reg.perturb(real, fake, step=50)
    assert r.std().item() == pytest.approx(0.1, rel=0.02)
    assert (f - 1).std().item() == pytest.approx(0.1, rel=0.02)
    r, f = reg.perturb(real, fake, step=100)
    assert torch.equal(r, real) and torch.equal(f, fake)
    assert reg.penalty(None, real, fake).item() == 0.0


def test_make_regularizer_errors_and_defaults():
    assert make_regularizer("gp").lam == 10.0
    rfm = make_regularizer("rfm")
    assert rfm.alpha == 1e-4 and rfm.delta == 0.05 and rfm.attack == "fgm" and rfm.target == "discriminator"
    with pytest.raises(ValueError, match="unknown regulariser"):
        make_regularizer("spectral")
    with pytest.raises(ValueError, match="valid settings: .*alpha"):
        make_regularizer("rfm", gamma=1)
    with pytest.raises(ValueError, match="unknown attack"):
        make_regularizer("ar", attack="fgn")
    with pytest.raises(TypeError, match="discriminator protocol"):
        robust_feature_matching(nn.Sequential(nn.Flatten(), nn.Linear(12, 1)), torch.rand(2, 3, 2, 2))


def test_measured_robustness_linear_d():
    D = LinearD(12)
    x = torch.randn(5, 3, 2, 2, dtype=torch.float64)
    assert discriminator_robustness(D, x, delta=DELTA) == pytest.approx(DELTA * D.a().norm().item(), rel=1e-10)


def test_theorem_4_3_bound_on_trained_linear_d():
    """Train a regularised linear D to (near) optimality on fixed data; check the robustness bound."""
    torch.manual_seed(0)
    real = torch.randn(256, 4, dtype=torch.float64) + 2.0
    fake = torch.randn(256, 4, dtype=torch.float64)
    obj = get_objective("gan")
    for lam in [1.0, 10.0, 100.0]:
        D = LinearD(4)
        opt = torch.optim.LBFGS(D.parameters(), max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = obj.d_loss(D(real), D(fake)) + lam * adversarial_regularization(D, fake, delta=0.5)
            loss.backward()
            return loss

        for _ in range(5):
            opt.step(closure)
        robustness = discriminator_robustness(D, fake, delta=0.5)
        bound = math.sqrt(-2 * obj.f0 / lam)
        assert robustness <= bound


# ------------------------------------------------------------------ rivals, robust-loss gp, registry
@pytest.mark.parametrize("name,factor", [("r1", 1.0), ("r2", 1.0), ("r1r2", 2.0)])
def test_zero_centred_penalty_of_a_linear_d(name, factor):
    """R1 / R2 of D(x) = a.x + b is gamma/2 * ||a||^2 (per batch, on real / fake / both)."""
    D = LinearD(12)
    real, fake = torch.randn(5, 3, 2, 2, dtype=torch.float64), torch.randn(5, 3, 2, 2, dtype=torch.float64)
    gamma = 0.7
    reg = make_regularizer(name, lam=gamma)
    expected = factor * gamma / 2 * D.a().pow(2).sum()
    assert reg.penalty(D, real, fake).item() == pytest.approx(expected.item(), rel=1e-10)
    # the shared forward pass (inputs that require grad, D's outputs passed in) gives the same value
    r, f = real.clone().requires_grad_(True), fake.clone().requires_grad_(True)
    shared = reg.penalty(D, r, f, fake_features=D.features(f), d_real=D(r))
    assert shared.item() == pytest.approx(expected.item(), rel=1e-10)
    assert reg.input_grads() == {"r1": {"real"}, "r2": {"fake"}, "r1r2": {"real", "fake"}}[name]


def test_zero_centred_penalty_backprops_to_parameters():
    D = QuadD(6)
    x = torch.randn(4, 6, dtype=torch.float64)
    rho = zero_centred_penalty(D, x)
    (g,) = torch.autograd.grad(rho, D.a)
    # rho = 1/2 mean_i sum_j (2 a_j x_ij)^2 -> d rho / d a_j = mean_i 4 a_j x_ij^2
    assert torch.allclose(g, 4 * D.a.detach() * (x ** 2).mean(0), rtol=1e-10)


def test_gp_on_the_robust_loss():
    """gp with target=loss penalises grad f(D(x_hat)): equal to the ordinary gp for wgan (f = -t);
    for gan (f = -softplus) the gradient is -sigmoid(D(x_hat)) a."""
    D = LinearD(12)
    real, fake = torch.randn(6, 3, 2, 2, dtype=torch.float64), torch.randn(6, 3, 2, 2, dtype=torch.float64)

    def gp(**kw):
        torch.manual_seed(3)
        return gradient_penalty(D, real, fake, **kw).item()

    plain = gp()
    assert gp(target="loss", objective="wgan") == pytest.approx(plain, rel=1e-12)
    torch.manual_seed(3)
    e = torch.rand(6, 1, 1, 1)
    x_hat = e * real + (1 - e) * fake
    with torch.no_grad():
        norms = torch.sigmoid(D(x_hat)) * D.a().norm()
    expected = ((norms - 1) ** 2).mean().item()
    assert gp(target="loss", objective="gan") == pytest.approx(expected, rel=1e-8)
    assert gp(target="loss", objective="gan") != pytest.approx(plain, rel=1e-3)
    reg = make_regularizer("gp", target="loss")
    torch.manual_seed(3)
    assert reg.rho(D, real, fake, objective="gan").item() == pytest.approx(expected, rel=1e-8)
    with pytest.raises(ValueError, match="no per-sample f"):
        gradient_penalty(D, real, fake, target="loss", objective="rpgan")


def test_ar_over_delta_squared_converges_to_the_r2_value():
    """First order: E (D(x) - D(x + v))^2 = delta^2 E ||grad D||^2 + O(delta^3) with FGM, i.e.
    AR(delta) / delta^2 -> 2 * rho_R2 (rho_R2 = 1/2 E ||grad D||^2); the error falls like delta."""
    from test_attacks import SmoothD

    D = SmoothD().double()
    x = torch.rand(16, 3, 4, 4, dtype=torch.float64)
    r2 = 2 * zero_centred_penalty(D, x).item()
    errors = []
    for delta in [1e-1, 1e-2, 1e-3]:
        ar = adversarial_regularization(D, x, delta=delta).item() / delta ** 2
        errors.append(abs(ar - r2) / r2)
    assert errors[2] < 2e-3
    assert errors[1] < errors[0] / 5 and errors[2] < errors[1] / 5


def test_linf_radius_defaults_to_the_l2_length_of_fgm():
    x = torch.rand(4, 3, 8, 8)
    reg = make_regularizer("ar", attack="fgsm", delta=0.05)
    assert reg.radius(x) == pytest.approx(0.05 / math.sqrt(3 * 8 * 8))
    assert linf_radius(0.05, None, torch.zeros(1, 3, 32, 32)) * math.sqrt(3072) == pytest.approx(0.05)
    assert make_regularizer("ar", attack="fgsm", delta_inf=0.05).radius(x) == 0.05
    assert make_regularizer("ar", attack="pgd", attack_kwargs={"p": "inf"}, delta_inf=0.02).radius(x) == 0.02
    assert make_regularizer("ar", attack="pgd", delta_inf=0.02).radius(x) == 0.05  # L2 pgd: delta
    # the penalty uses that radius: fgsm on a linear D changes it by delta_inf * ||a||_1
    L = LinearD(12)
    xs = torch.randn(3, 3, 2, 2, dtype=torch.float64)
    rho = make_regularizer("ar", attack="fgsm", delta=0.05, lam=1.0).rho(L, xs, xs)
    assert rho.item() == pytest.approx(((0.05 / math.sqrt(12)) * L.a().abs().sum()).pow(2).item(), rel=1e-8)


def test_rfm_feature_measure_attack_runs_and_differs():
    D = SmallD()
    x = torch.rand(6, 3, 8, 8)
    a = robust_feature_matching(D, x, attack="pgd", attack_kwargs={"steps": 3})
    b = robust_feature_matching(D, x, attack="pgd", attack_kwargs={"steps": 3}, attack_measure="features")
    assert torch.isfinite(a) and torch.isfinite(b) and b.item() >= 0


def test_registry_declares_settings_and_weights_for_every_loss():
    from robustgan.objectives import OBJECTIVES
    assert list(REGULARIZERS) == ["none", "noise", "gp", "r1", "r2", "r1r2", "ar", "rfm"]
    for name, cls in REGULARIZERS.items():
        assert cls.description and all(k in SETTINGS for k in cls.settings)
        for loss in OBJECTIVES:
            w = default_weight(name, loss)
            assert (w > 0) == (cls.default_weights is not None)
    assert default_weight("rfm", "wgan") == 100.0 and default_weight("rfm", "rpgan") == 1.0
    assert default_weight("gp", "hinge") == 10.0 and default_weight("r1r2", "rpgan") == 0.5
    assert [n for n, c in REGULARIZERS.items() if c.uses_attack] == ["ar", "rfm"]


def test_missing_default_weight_is_an_error():
    from robustgan.objectives import OBJECTIVES, Objective, register_objective
    from robustgan.options import ConfigError

    class Odd(Objective):
        name = "odd"

        def f(self, t):
            return -t

    register_objective(Odd)
    try:
        with pytest.raises(ConfigError, match="no default weight for reg=ar with loss=odd; set reg.lam"):
            default_weight("ar", "odd")
        assert default_weight("none", "odd") == 0.0
    finally:
        OBJECTIVES.pop("odd")


def test_adding_a_regulariser_is_one_class():
    """A regulariser registered here is a valid reg.name, gets its default weight and is built."""
    from robustgan.train.build import build_regularizer
    from robustgan.train.config import resolve

    @register_regularizer
    class Centre(Regularizer):
        name = "centre"
        description = "lam * E D(G(z))^2"
        settings = ("lam", "every")
        default_weights = {"gan": 0.25, "lsgan": 0.25, "wgan": 0.25}

        def rho(self, D, real, fake, **kw):
            return D(fake).pow(2).mean()

    try:
        reg = build_regularizer(resolve("toy-8gaussians", ["reg=centre"]))
        assert isinstance(reg, Centre) and reg.lam == 0.25
    finally:
        REGULARIZERS.pop("centre")
