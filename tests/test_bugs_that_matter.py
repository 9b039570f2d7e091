"""Tests aimed at plausible bugs that would leave training running but quietly wrong.

Each test names the bug it is there to catch; ``scripts/mutation_check.py`` applies each bug to a
copy of the source and checks that these tests fail on it. The checks are closed forms (a quadratic
D, whose gradient changes along every line, so where a penalty is evaluated matters),
invariants (interpolates lie on the real-fake segment, noise draws are uncorrelated) or
independent autograd computations. Tolerances: float64 closed forms to rel 1e-9; quantities that
pass through the phase losses' float32 cast to rel 1e-5.
"""
import math

import pytest
import torch
import torch.nn as nn

from robustgan.attacks import fgm, pgd
from robustgan.objectives import get_objective
from robustgan.regularizers import (InstanceNoise, adversarial_regularization, gradient_penalty, make_regularizer,
                                    robust_feature_matching)
from robustgan.train.loop import Trainer
from robustgan.train.phases import DiscriminatorLoss
from test_attacks import SmallD
from test_train import toy_cfg

SHAPE = (3, 4, 4)


class QuadraticD(nn.Module):
    """``D(x) = 1/2 sum_j a_j x_j^2 + b . x`` per sample, so ``grad_x D(x) = a * x + b`` (float64).

    It follows the discriminator protocol with one feature: ``features(x) = D(x)[:, None]`` and
    ``last_linear`` the identity map ``Linear(1, 1)`` (weight 1, bias 0). ``inputs`` records every
    batch D is run on.
    """

    def __init__(self, shape=SHAPE, seed=3):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        a = 2.0 + 2.0 * torch.rand(shape, generator=g, dtype=torch.float64)
        # the gradient a * (x - 1/2) + noise is small mid-image and large at the edges of [0, 1]
        self.a = nn.Parameter(a)
        self.b = nn.Parameter(-0.5 * a + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64))
        self.last_linear = nn.Linear(1, 1, dtype=torch.float64)
        with torch.no_grad():
            self.last_linear.weight.fill_(1.0)
            self.last_linear.bias.zero_()
        self.inputs = []

    def features(self, x):
        self.inputs.append(x.detach().clone())
        return (0.5 * self.a * x * x + self.b * x).flatten(1).sum(1, keepdim=True)

    def forward(self, x):
        return self.last_linear(self.features(x)).squeeze(-1)

    def grad(self, x):
        """The closed-form input gradient ``a * x + b`` (no graph)."""
        return (self.a * x + self.b).detach()


def batches(n=64, seed=11):
    """Reals uniform in [0, 1], fakes uniform in [0.25, 0.75] (so a penalty tells them apart)."""
    g = torch.Generator().manual_seed(seed)
    real = torch.rand((n, *SHAPE), generator=g, dtype=torch.float64)
    fake = 0.25 + 0.5 * torch.rand((n, *SHAPE), generator=g, dtype=torch.float64)
    return real, fake


def gp_closed_form(D, x_hat, center=1.0):
    return (D.grad(x_hat).flatten(1).norm(dim=1) - center).pow(2).mean().item()


def ar_fgm_closed_form(D, x, delta):
    """AR with FGM on the quadratic D: with ``g = a x + b`` and ``v = delta g / ||g||``,
    ``D(x + v) - D(x) = delta ||g|| + delta^2 / 2 * sum(a g^2) / ||g||^2``."""
    g = D.grad(x).flatten(1)
    a = D.a.detach().flatten()
    n = g.norm(dim=1)
    change = delta * n + 0.5 * delta ** 2 * (a * g * g).sum(1) / n ** 2
    return change.pow(2).mean().item()


def interpolation_weights(x_hat, real, fake):
    """Per sample, the ``e`` that best writes ``x_hat = e * real + (1 - e) * fake``, and the largest
    distance of ``x_hat`` from that point (0 when it lies on the line through real and fake)."""
    d = (real - fake).flatten(1)
    e = ((x_hat - fake).flatten(1) * d).sum(1) / d.pow(2).sum(1)
    off = (x_hat - fake).flatten(1) - e[:, None] * d
    return e, off.abs().max().item()


# ------------------------------------------------------------------ the gradient penalty
def test_gradient_penalty_interpolates_per_sample_between_real_and_fake():
    """Catches: per-pixel interpolation weights; interpolates taken at the fakes only (or the reals only).

    Every interpolate lies on the segment from its fake to its real (off-line distance < 1e-12), at a
    weight e ~ U[0, 1] (mean 0.5 +- 0.1, std 0.29 +- 0.08 for 256 samples: more than 4 standard
    errors), and the penalty is the closed form of the quadratic D at those points (rel 1e-9).
    """
    D = QuadraticD()
    real, fake = batches(256)
    rho = gradient_penalty(D, real, fake).item()
    (x_hat,) = D.inputs
    e, off = interpolation_weights(x_hat, real, fake)
    assert off < 1e-12, "interpolates leave the real-fake segment: the weight is not one per sample"
    assert e.min() >= -1e-12 and e.max() <= 1 + 1e-12
    assert e.mean().item() == pytest.approx(0.5, abs=0.1)
    assert e.std().item() == pytest.approx(1 / math.sqrt(12), abs=0.08)
    assert rho == pytest.approx(gp_closed_form(D, x_hat), rel=1e-9)
    # not vacuous: on this D the penalty at the fakes (or the reals) alone is far from it
    assert abs(gp_closed_form(D, fake) - rho) > 0.2 * rho
    assert abs(gp_closed_form(D, real) - rho) > 0.2 * rho


@pytest.mark.parametrize("lam", [1.0, 10.0])
def test_gradient_penalty_weight_is_applied_once(lam):
    """Catches: lambda applied twice. ``penalty = lam * rho`` with rho the closed form (rel 1e-9)."""
    D = QuadraticD()
    real, fake = batches()
    reg = make_regularizer("gp", lam=lam)
    penalty = reg.penalty(D, real, fake).item()
    (x_hat,) = D.inputs
    assert penalty == pytest.approx(lam * gp_closed_form(D, x_hat), rel=1e-9)


@pytest.mark.parametrize("name", ["gp", "r1", "r2", "r1r2", "ar", "rfm"])
def test_every_penalty_is_linear_in_its_weight(name):
    """Catches: a weight applied twice (or squared) anywhere: penalty(lam=3) = 3 penalty(lam=1), rel 1e-9."""
    D = QuadraticD()
    real, fake = batches(16)
    values = []
    for lam in (1.0, 3.0):
        torch.manual_seed(7)  # gp draws its interpolation weights
        values.append(make_regularizer(name, lam=lam).penalty(D, real, fake, objective="gan").item())
    assert values[0] > 0
    assert values[1] == pytest.approx(3 * values[0], rel=1e-9)


# ------------------------------------------------------------------ the discriminator's phase loss
def test_phase_loss_puts_the_penalty_on_the_fakes():
    """Catches: the penalty computed on the real batch instead of the generated one.

    Through :class:`DiscriminatorLoss` on the quadratic D (rel 1e-9): R2 is
    ``lam/2 E ||a G(z) + b||^2``, AR with FGM the closed form at the fakes, and GP's interpolates
    lie between the reals and the fakes at spread-out weights.
    """
    obj = get_objective("gan")
    real, fake = batches()
    delta = 0.05

    D = QuadraticD()
    _, stats = DiscriminatorLoss(D, obj, make_regularizer("r2", lam=2.0))(real, fake, 0)
    expected = 2.0 * 0.5 * D.grad(fake).flatten(1).pow(2).sum(1).mean().item()
    assert stats["penalty"].item() == pytest.approx(expected, rel=1e-9)
    on_real = 2.0 * 0.5 * D.grad(real).flatten(1).pow(2).sum(1).mean().item()
    assert abs(on_real - expected) > 0.5 * expected  # the two batches are told apart

    D = QuadraticD()
    _, stats = DiscriminatorLoss(D, obj, make_regularizer("ar", lam=3.0, delta=delta))(real, fake, 0)
    assert stats["penalty"].item() == pytest.approx(3.0 * ar_fgm_closed_form(D, fake, delta), rel=1e-9)

    D = QuadraticD()
    _, stats = DiscriminatorLoss(D, obj, make_regularizer("gp", lam=10.0))(real, fake, 0)
    x_hat = D.inputs[-1]  # D's passes: fake, real, then the interpolates
    e, off = interpolation_weights(x_hat, real, fake)
    assert off < 1e-12 and e.std().item() > 0.15
    assert stats["penalty"].item() == pytest.approx(10.0 * gp_closed_form(D, x_hat), rel=1e-9)


def _param_grads(D, loss):
    D.zero_grad(set_to_none=True)
    loss.backward()
    grads = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in D.parameters()]
    D.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("name", ["none", "ar", "r2", "rfm", "gp"])
def test_phase_loss_gradient_reaches_d_through_both_terms(name):
    """Catches: D's fake term detached (in the shared forward pass or not): D would never learn from fakes.

    The gradient of the phase loss to D's parameters equals that of ``d_loss(D(x), D(G(z))) +
    k * penalty`` computed independently (rtol 1e-5, float32 cast), and the fake term's own
    gradient is far from zero.
    """
    torch.manual_seed(0)
    D = SmallD().double()
    real, fake = torch.rand(8, *SHAPE, dtype=torch.float64), torch.rand(8, *SHAPE, dtype=torch.float64)
    obj = get_objective("gan")
    reg = make_regularizer(name, **({} if name == "none" else {"lam": 2.0}))
    torch.manual_seed(1)
    total, _ = DiscriminatorLoss(D, obj, reg, every=2)(real, fake, step=4)
    got = _param_grads(D, total)
    torch.manual_seed(1)
    expected_loss = obj.d_loss(D(real), D(fake)) + 2 * reg.penalty(D, real, fake, objective=obj)
    expected = _param_grads(D, expected_loss)
    for g, e in zip(got, expected):
        assert torch.allclose(g, e, rtol=1e-5, atol=1e-8)
    fake_term = _param_grads(D, obj.d_loss(D(real).detach(), D(fake)))
    assert max(g.abs().max().item() for g in fake_term) > 1e-3


@pytest.mark.parametrize("name", ["ar", "r1", "gp"])
def test_lazy_penalty_is_scaled_by_its_interval(name):
    """Catches: lazy regularisation not multiplied by k. Every k-th step adds ``k * lam * rho`` (rel 1e-6)."""
    D = QuadraticD()
    real, fake = batches(16)
    obj = get_objective("gan")
    for every in (1, 4):
        torch.manual_seed(2)
        total, stats = DiscriminatorLoss(D, obj, make_regularizer(name, lam=1.5), every=every)(real, fake, 8)
        assert stats["penalty"].item() > 0
        assert total.item() == pytest.approx(stats["loss_d"].item() + every * stats["penalty"].item(), rel=1e-6)


# ------------------------------------------------------------------ instance noise
def test_instance_noise_is_a_fresh_draw_every_step():
    """Catches: the same noise every step (a constant seed or a cached draw).

    D's inputs are zeros, so it sees the noise itself: std sigma at each step (rel 5%), and the
    draws of two steps, and of the real and fake batches, are uncorrelated (|r| < 0.05 for 16000
    values; the standard error is 0.008).
    """
    reg = InstanceNoise(sigma=0.2, anneal_steps=0)
    D = QuadraticD(shape=(4,))
    zeros = torch.zeros(4000, 4, dtype=torch.float64)
    loss_fn = DiscriminatorLoss(D, get_objective("gan"), reg)
    loss_fn(zeros, zeros, 3)
    loss_fn(zeros, zeros, 4)
    fake3, real3, fake4, real4 = D.inputs
    for x in D.inputs:
        assert x.std().item() == pytest.approx(0.2, rel=0.05)

    def corr(x, y):
        return torch.corrcoef(torch.stack([x.flatten(), y.flatten()]))[0, 1].abs().item()

    assert corr(fake3, fake4) < 0.05 and corr(real3, real4) < 0.05
    assert corr(fake3, real3) < 0.05


# ------------------------------------------------------------------ robust feature matching
@pytest.mark.parametrize("shared", [True, False])
def test_rfm_gradient_includes_the_clean_features(shared):
    """Catches: RFM's clean features detached (only the attacked features would be trained).

    The gradient of rho_r to D's parameters equals that of ``E ||phi(x) - phi(x + v)||^2 + alpha
    ||w||^2`` built independently with v from :func:`fgm` (rtol 1e-9, float64).
    """
    torch.manual_seed(0)
    D = SmallD().double()
    fake = torch.rand(8, *SHAPE, dtype=torch.float64)
    delta, alpha = 0.05, 1e-4
    if shared:
        x = fake.clone().requires_grad_(True)
        rho = robust_feature_matching(D, x, delta=delta, alpha=alpha, fake_features=D.features(x))
    else:
        rho = robust_feature_matching(D, fake, delta=delta, alpha=alpha)
    got = _param_grads(D, rho)
    v = fgm(lambda t: D(t), fake, delta)
    expected_rho = ((D.features(fake) - D.features(fake + v)).pow(2).sum(1).mean()
                    + alpha * D.last_linear.weight.pow(2).sum())
    assert rho.item() == pytest.approx(expected_rho.item(), rel=1e-9)
    expected = _param_grads(D, expected_rho)
    for g, e in zip(got, expected):
        assert torch.allclose(g, e, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("shared", [True, False])
def test_ar_gradient_includes_the_clean_term(shared):
    """The same for AR: the gradient of ``E (D(x) - D(x + v))^2`` reaches D through both terms (rtol 1e-9)."""
    torch.manual_seed(0)
    D = SmallD().double()
    fake = torch.rand(8, *SHAPE, dtype=torch.float64)
    delta = 0.05
    if shared:
        x = fake.clone().requires_grad_(True)
        rho = adversarial_regularization(D, x, delta=delta, fake_features=D.features(x))
    else:
        rho = adversarial_regularization(D, fake, delta=delta)
    got = _param_grads(D, rho)
    v = fgm(lambda t: D(t), fake, delta)
    expected = _param_grads(D, (D(fake) - D(fake + v)).pow(2).mean())
    for g, e in zip(got, expected):
        assert torch.allclose(g, e, rtol=1e-9, atol=1e-14)


# ------------------------------------------------------------------ PGD
@pytest.mark.parametrize("p", [2, "inf"])
def test_pgd_random_start_escapes_a_flat_point(p):
    """Catches: PGD ignoring its random start.

    ``h(x) = ||x||^2`` at ``x = 0``: the gradient vanishes, so FGM and PGD without a random start
    return v = 0; the squared change ``||v||^4`` (L2) grows along v, so from a random start PGD
    reaches the sphere: ``||v_i||_p = delta`` for every sample (rel 1e-6), and the result depends
    on the draw.
    """
    delta = 0.05
    x = torch.zeros(16, *SHAPE)

    def h(t):
        return t.flatten(1).pow(2).sum(1)

    assert pgd(h, x, delta, p=p, random_start=False).abs().max().item() == 0.0
    v1 = pgd(h, x, delta, p=p, generator=torch.Generator().manual_seed(1))
    v2 = pgd(h, x, delta, p=p, generator=torch.Generator().manual_seed(2))
    norms = v1.flatten(1).norm(dim=1) if p == 2 else v1.flatten(1).abs().amax(dim=1)
    assert torch.allclose(norms, torch.full_like(norms, delta), rtol=1e-6)
    assert (v1 - v2).abs().max().item() > 0.1 * delta


# ------------------------------------------------------------------ the trainer
def test_discriminator_step_draws_fresh_noise_vectors(tmp_path):
    """Catches: the D step's fakes made from the fixed sampling z (the same batch every step).

    G does not change between two D steps, so two D steps' fakes differ only if z is drawn anew;
    neither is G applied to the fixed sampling z.
    """
    tr = Trainer(toy_cfg(steps=2), tmp_path, resume=False)
    first, second = tr.d_step()["fake"], tr.d_step()["fake"]
    assert (first - second).abs().max().item() > 0.1
    with torch.no_grad():
        fixed = tr.G(tr.fixed_z)[: len(first)]
    assert (first - fixed).abs().max().item() > 0.1 and (second - fixed).abs().max().item() > 0.1


def _constant_output(G, point):
    """Make an MLP generator output ``point`` for every z (last layer: zero weight, bias = point)."""
    last = [m for m in G.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor(point, dtype=last.bias.dtype))


def test_sampling_and_evaluation_use_the_ema_generator(tmp_path):
    """Catches: ``sample()`` or ``evaluate()`` using the trained G instead of its EMA.

    The EMA generator outputs one mode's centre for every z, the trained G a point far from every
    mode: samples equal the centre (exactly) and the evaluation sees one mode covered with every
    sample of high quality; ``sample(ema=False)`` gives G's point.
    """
    tr = Trainer(toy_cfg("train.ema=0.999", "log.eval_n=200", "train.amp=none", steps=2), tmp_path, resume=False)
    centre = [float(c) for c in tr.data.centers[0]]
    _constant_output(tr.G_ema, centre)
    _constant_output(tr.G, [100.0, 100.0])
    out = tr.sample()
    assert torch.equal(out, torch.tensor(centre).expand_as(out))
    assert torch.equal(tr.sample(ema=False), torch.full_like(out, 100.0))
    metrics = tr.evaluate()
    assert metrics["modes_covered"] == 1
    assert metrics["high_quality_fraction"] == pytest.approx(1.0)


def test_ema_follows_batch_norm_statistics(tmp_path):
    """Catches: the EMA update skipping buffers (batch-norm running statistics).

    A generator with batch norm trains a few steps, which moves its running means and variances;
    after the EMA update every buffer of the EMA copy equals the trained G's exactly.
    """
    tr = Trainer(toy_cfg("train.ema=0.999", "model.normalisation=batch", steps=3), tmp_path, resume=False)
    before = {k: b.clone() for k, b in tr.G.named_buffers()}
    assert any("running_mean" in k for k in before)
    for _ in range(2):
        tr.d_step()
        tr.g_step()
        tr.step += 1
        tr._update_ema()
    moved = [k for k, b in tr.G.named_buffers() if "running" in k and not torch.equal(b, before[k])]
    assert moved, "training did not move the batch-norm statistics; the test would prove nothing"
    ema = dict(tr.G_ema.named_buffers())
    for k, b in tr.G.named_buffers():
        assert torch.equal(ema[k], b), k
