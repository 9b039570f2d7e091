"""Tests of the Dirac-GAN vector fields (robustgan.experiments.dirac.fields) and Figure 2's objectives.

Numbers are checked against closed forms, finite differences, an independent root finder or a
dense grid search, and the paper's theorems (4.1, 4.2, 4.3), each with a stated tolerance.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.special import expit

from robustgan.experiments import dirac
from robustgan.experiments.dirac import make_field, robust_loss_bound

LOSSES = ("gan", "lsgan", "wgan")
REGULARISED = ("robust_loss", "robust_discriminator", "ar")
THETA = np.linspace(-2.0, 2.0, 201)  # 0 is the middle point
F0 = {"gan": -math.log(2.0), "lsgan": -0.5, "wgan": 0.0}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def softplus(x):
    return np.logaddexp(0.0, x)


@pytest.mark.parametrize("method", list(dirac.METHODS))
@pytest.mark.parametrize("loss", LOSSES)
def test_vector_field_matches_finite_differences(loss, method):
    # dtheta = -dL/dtheta (G descends L), dpsi = +d(L - penalty)/dpsi (D ascends its objective).
    field = make_field(method, loss)
    rng = np.random.default_rng(0)
    th, ps = rng.uniform(-2, 2, 20), rng.uniform(-2, 2, 20)
    h = 1e-6
    fd_theta = -(field.value(th + h, ps) - field.value(th - h, ps)) / (2 * h)
    fd_psi = (field.d_objective(th, ps + h) - field.d_objective(th, ps - h)) / (2 * h)
    dtheta, dpsi = field.vector(th, ps)
    np.testing.assert_allclose(dtheta, fd_theta, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dpsi, fd_psi, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# generator objective (Figure 2)


@pytest.mark.parametrize("method", REGULARISED)
@pytest.mark.parametrize("loss", LOSSES)
def test_regularised_objectives_are_finite_with_minimum_at_zero(loss, method):
    curve = make_field(method, loss).generator_objective(THETA)
    l = curve.l
    mid = len(THETA) // 2
    assert THETA[mid] == 0.0
    assert np.isfinite(l).all()
    assert l[mid] == pytest.approx(2 * F0[loss], abs=1e-12)
    assert np.all(np.diff(l[: mid + 1]) < 1e-12)  # non-increasing on [-2, 0]
    assert np.all(np.diff(l[mid:]) > -1e-12)  # non-decreasing on [0, 2]
    assert l.min() >= l[mid] - 1e-12
    assert min(l[0], l[-1]) > l[mid] + 0.1  # and not flat: a useful signal at |theta| = 2
    np.testing.assert_allclose(l, l[::-1], atol=1e-9)  # symmetric in theta


@pytest.mark.parametrize("loss", ["gan", "lsgan"])
def test_unconstrained_objective_is_flat_away_from_zero(loss):
    # sup_t f(t) = 0 for gan (approached as t -> -inf) and lsgan (at t = -1): l = f(0) for theta != 0.
    curve = make_field("none", loss).generator_objective(THETA)
    away = np.abs(THETA) >= 0.02
    np.testing.assert_allclose(curve.l[away], F0[loss], rtol=0, atol=1e-9)
    assert curve.l[len(THETA) // 2] == pytest.approx(2 * F0[loss], abs=1e-12)
    if loss == "lsgan":  # attained at psi* = -1 / theta
        np.testing.assert_allclose(curve.psi_star[away], -1.0 / THETA[away], rtol=1e-6)
    else:  # only approached as psi -> -sign(theta) inf
        assert np.all(np.isinf(curve.psi_star[away]))
        assert np.all(np.sign(curve.psi_star[away]) == -np.sign(THETA[away]))


def test_unconstrained_wgan_is_unbounded():
    curve = make_field("none", "wgan").generator_objective(THETA)
    mid = len(THETA) // 2
    assert np.all(np.isposinf(np.delete(curve.l, mid)))
    assert curve.l[mid] == 0.0 and curve.unbounded


@pytest.mark.parametrize("loss", LOSSES)
def test_robust_discriminator_objective_closed_form(loss):
    # |psi| <= c = eps / delta: the maximiser pushes psi * theta towards argmax f (-inf, -1, -inf).
    eps, delta = 0.25, 1.0
    c = eps / delta
    t = -c * np.abs(THETA)
    if loss == "lsgan":
        t = np.maximum(t, -1.0)
    f = {"gan": lambda x: -softplus(x), "lsgan": lambda x: -0.5 * (1 + x) ** 2, "wgan": lambda x: -x}[loss]
    curve = make_field("robust_discriminator", loss, eps=eps, delta=delta).generator_objective(THETA)
    np.testing.assert_allclose(curve.l, f(t) + F0[loss], rtol=0, atol=1e-12)


@pytest.mark.parametrize("lam,delta", [(0.5, 1.0), (2.0, 0.3), (0.05, 1.0)])
def test_ar_objective_closed_forms(lam, delta):
    k = lam * delta ** 2
    theta = np.linspace(-3, 3, 61)
    # wgan: psi* = -theta / (2k), l = theta^2 / (4k)
    w = make_field("ar", "wgan", lam=lam, delta=delta).generator_objective(theta)
    # psi* from a value-based search is accurate to ~sqrt(machine eps |h| / curvature) ~ 1e-7
    np.testing.assert_allclose(w.psi_star, -theta / (2 * k), rtol=1e-7, atol=1e-6)
    np.testing.assert_allclose(w.l, theta ** 2 / (4 * k), rtol=1e-12, atol=1e-12)
    # lsgan: psi* = -theta / (theta^2 + 2k), l = f(0) - k / (theta^2 + 2k)
    s = make_field("ar", "lsgan", lam=lam, delta=delta).generator_objective(theta)
    np.testing.assert_allclose(s.psi_star, -theta / (theta ** 2 + 2 * k), rtol=1e-7, atol=1e-6)
    np.testing.assert_allclose(s.l, -0.5 - k / (theta ** 2 + 2 * k), rtol=0, atol=1e-12)


def test_robust_loss_bound_closed_forms():
    delta, eps, R = 1.0, 0.25, 2.0
    # wgan: |psi| |v| <= eps
    assert robust_loss_bound("wgan", delta, eps, R) == pytest.approx(eps / delta, rel=1e-9)
    # lsgan: worst case at x = R, v = delta: p delta (1 + p R) + (p delta)^2 / 2 = eps
    a, b = delta * R + delta ** 2 / 2, delta
    p_ls = (-b + math.sqrt(b * b + 4 * a * eps)) / (2 * a)
    assert robust_loss_bound("lsgan", delta, eps, R) == pytest.approx(p_ls, rel=1e-9)
    # gan: softplus(p (R + delta)) - softplus(p R) = eps (softplus is convex and increasing)
    p_gan = brentq(lambda p: softplus(p * (R + delta)) - softplus(p * R) - eps, 1e-9, 100.0, xtol=1e-14)
    assert robust_loss_bound("gan", delta, eps, R) == pytest.approx(p_gan, rel=1e-9)
    assert make_field("robust_loss", "gan", eps=eps, delta=delta, domain=R).psi_max == pytest.approx(p_gan, rel=1e-9)


@pytest.mark.parametrize("loss", LOSSES)
def test_theorem_4_1_robust_loss_makes_objective_robust(loss):
    # |l(theta) - l(theta + u)| <= eps for |u| <= delta (theta, theta + u in the robust region).
    eps, delta = 0.25, 0.5
    curve = make_field("robust_loss", loss, eps=eps, delta=delta).generator_objective(THETA)
    step = THETA[1] - THETA[0]
    worst = max(np.abs(curve.l[j:] - curve.l[:-j]).max() for j in range(1, int(round(delta / step)) + 1))
    assert worst <= eps + 1e-9
    assert worst > 0.5 * eps  # the bound is not vacuous here


@pytest.mark.parametrize("loss", ["gan", "wgan"])
def test_theorem_4_2_robust_discriminator_makes_objective_robust(loss):
    # C = max |f'| <= 1 for gan and wgan, so |l(theta) - l(theta + u)| <= eps for |u| <= delta.
    eps, delta = 0.25, 0.5
    curve = make_field("robust_discriminator", loss, eps=eps, delta=delta).generator_objective(THETA)
    step = THETA[1] - THETA[0]
    worst = max(np.abs(curve.l[j:] - curve.l[:-j]).max() for j in range(1, int(round(delta / step)) + 1))
    assert worst <= eps + 1e-9


def _dense_argmax(loss, theta, lam, delta, n=400001):
    """Independent check: brute-force grid search for argmax_psi f(psi theta) - lam (psi delta)^2."""
    bound = abs(theta) / (2 * lam * delta ** 2) + 1e-3  # |f'| <= 1 on the relevant side for gan, lsgan
    psi = np.linspace(-bound, bound, n)
    t = psi * theta
    f = -softplus(t) if loss == "gan" else -0.5 * (1 + t) ** 2
    return psi[np.argmax(f - lam * (psi * delta) ** 2)], psi[1] - psi[0]


@pytest.mark.parametrize("loss", ["gan", "lsgan"])
def test_theorem_4_3_regularised_optimum_is_robust(loss):
    # For non-positive f the AR-optimal D satisfies |D(theta) - D(theta + u)| = |psi*| |u|
    # <= sqrt(-2 f(0) / lam) for |u| <= delta; psi* is also checked against an independent
    # root of the stationarity condition (gan) / closed form (lsgan) and a dense grid search.
    f0 = F0[loss]
    thetas = np.linspace(-3.0, 3.0, 25)
    worst_ratio = 0.0
    for delta in (0.3, 1.0):
        for lam in (0.01, 0.1, 1.0, 10.0):
            k = lam * delta ** 2
            curve = make_field("ar", loss, lam=lam, delta=delta).generator_objective(thetas)
            psi = curve.psi_star
            bound = math.sqrt(-2.0 * f0 / lam)
            for u in np.linspace(-delta, delta, 7):
                # D(x) = psi x, so |D(theta) - D(theta + u)| = |psi| |u|
                assert np.all(np.abs(psi * thetas - psi * (thetas + u)) <= bound + 1e-12)
            worst_ratio = max(worst_ratio, float(np.max(np.abs(psi) * delta / bound)))
            for th, p in zip(thetas, psi):
                if loss == "lsgan":
                    ref = -th / (th ** 2 + 2 * k)
                else:
                    g = lambda q: th * expit(q * th) + 2 * k * q  # noqa: E731 (d/dpsi = 0)
                    lim = abs(th) / (2 * k) + 1.0
                    ref = 0.0 if th == 0 else brentq(g, -lim, lim, xtol=1e-15)
                # value-based maximisation locates psi* to ~sqrt(machine eps |h| / curvature)
                assert p == pytest.approx(ref, rel=1e-6, abs=2e-6)
                dense, spacing = _dense_argmax(loss, th, lam, delta, n=20001)
                assert abs(p - dense) <= spacing + 2e-6
    assert worst_ratio > 0.2  # the bound is approached for some (theta, lam), so the test has teeth


def test_bad_field_settings_are_clear_errors():
    with pytest.raises(ValueError, match="unknown Dirac-GAN method"):
        make_field("spectral", "gan")
    with pytest.raises(ValueError, match="delta must be a positive number"):
        make_field("ar", "gan", delta=-1.0)
    with pytest.raises(ValueError, match="unknown loss"):
        make_field("ar", "bogus")
