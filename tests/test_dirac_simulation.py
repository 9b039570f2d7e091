"""Tests of the Dirac-GAN simulators (robustgan.experiments.dirac.simulation): Figure 5's dynamics.

Claims of Appendix E checked on trajectories with stated tolerances, and one step checked by hand.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robustgan.experiments.dirac import make_field, simulate

LOSSES = ("gan", "lsgan", "wgan")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def final_distance(traj):
    return float(np.hypot(*traj[-1]))


@pytest.mark.parametrize("mode", ["alternating", "simultaneous"])
@pytest.mark.parametrize("loss", LOSSES)
def test_adversarial_regularisation_converges(loss, mode):
    # Appendix E: AR makes the Dirac-GAN converge to (0, 0).
    traj = simulate(make_field("ar", loss), 1.0, 1.0, lr=0.1, steps=500, mode=mode)
    assert final_distance(traj) < 0.05


@pytest.mark.parametrize("loss", ["gan", "wgan"])
def test_unregularised_circles_and_never_converges(loss):
    # The continuous flow keeps theta^2 + psi^2 constant; alternating steps stay near that circle.
    traj = simulate(make_field("none", loss), 1.0, 1.0, lr=0.1, steps=500)
    dist = np.hypot(traj[:, 0], traj[:, 1])
    assert final_distance(traj) > 0.5
    assert dist.min() > 0.5 * math.sqrt(2.0)
    assert np.abs(dist - math.sqrt(2.0)).max() < 0.15  # within ~10% of the starting radius


def test_unregularised_lsgan_stalls_on_stationary_curve():
    # Minimax LSGAN: the field vanishes where psi * theta = -1 (D optimal and f'(-1) = 0).
    traj = simulate(make_field("none", "lsgan"), 1.0, 1.0, lr=0.1, steps=500)
    assert final_distance(traj) > 0.5
    assert traj[-1, 0] * traj[-1, 1] == pytest.approx(-1.0, abs=0.02)


@pytest.mark.parametrize("method", ["robust_discriminator", "robust_loss"])
@pytest.mark.parametrize("loss", LOSSES)
def test_hard_constraint_distance_shrinks_with_eps(loss, method):
    # Appendix E: the hard constraint ends within a distance d of the optimum, smaller for smaller
    # eps. The projection only removes energy, and inside |psi| <= psi_max the orbit is a circle,
    # so the late orbit radius is about psi_max (tolerance: 10% + lr-sized discretisation).
    radii = []
    for eps in (0.1, 0.25, 0.5):
        field = make_field(method, loss, eps=eps)
        traj = simulate(field, 1.0, 1.0, lr=0.1, steps=500)
        dist = np.hypot(traj[:, 0], traj[:, 1])
        tail = dist[-100:].max()
        assert tail <= 1.1 * field.psi_max + 0.02
        assert dist[-1] < math.sqrt(2.0) - 0.5  # much closer than the unregularised orbit
        radii.append(tail)
    assert radii[0] < radii[1] < radii[2]


def test_simulators_one_step_by_hand():
    # wgan: dtheta = psi, dpsi = -theta.
    f = make_field("none", "wgan")
    alt = simulate(f, 1.0, 1.0, lr=0.1, steps=1, mode="alternating")
    sim = simulate(f, 1.0, 1.0, lr=0.1, steps=1, mode="simultaneous")
    np.testing.assert_allclose(alt[1], [1.1, 1.0 - 0.1 * 1.1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(sim[1], [1.1, 0.9], rtol=0, atol=1e-15)
    # the hard constraint projects psi onto |psi| <= eps / delta after the D step
    proj = simulate(make_field("robust_discriminator", "wgan", eps=0.25, delta=1.0), 1.0, 1.0, lr=0.1, steps=1)
    np.testing.assert_allclose(proj[1], [1.1, 0.25], rtol=0, atol=1e-15)
    assert alt.shape == (2, 2)


def test_bad_simulator_settings_are_clear_errors():
    with pytest.raises(ValueError, match="simulator"):
        simulate(make_field("ar", "gan"), mode="leapfrog")
    with pytest.raises(ValueError, match="lr must be a positive number"):
        simulate(make_field("ar", "gan"), lr=0.0)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        simulate(make_field("ar", "gan"), steps=2.5)
