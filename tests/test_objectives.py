import math

import pytest
import torch

from robustgan.objectives import OBJECTIVES, get_objective

T = torch.linspace(-4, 4, 41, dtype=torch.float64)


def test_gan_closed_forms():
    obj = get_objective("gan")
    dr, df = torch.randn(7, dtype=torch.float64), torch.randn(9, dtype=torch.float64)
    s = torch.sigmoid
    assert torch.allclose(obj.f(T), -torch.log1p(torch.exp(T)), atol=1e-12)
    expected_d = -(torch.log(s(dr)).mean() + torch.log(1 - s(df)).mean())
    assert obj.d_loss(dr, df).item() == pytest.approx(expected_d.item(), rel=1e-10)
    assert obj.g_loss(df).item() == pytest.approx(-torch.log(s(df)).mean().item(), rel=1e-10)
    sat = get_objective("gan", saturating=True)
    assert sat.g_loss(df).item() == pytest.approx(torch.log(1 - s(df)).mean().item(), rel=1e-10)
    assert obj.f0 == pytest.approx(-math.log(2.0), abs=1e-12)


def test_lsgan_closed_forms():
    obj = get_objective("lsgan")
    dr, df = torch.randn(7, dtype=torch.float64), torch.randn(9, dtype=torch.float64)
    assert torch.allclose(obj.f(T), -0.5 * (1 + T) ** 2)
    expected_d = 0.5 * ((1 - dr) ** 2).mean() + 0.5 * ((1 + df) ** 2).mean()
    assert obj.d_loss(dr, df).item() == pytest.approx(expected_d.item(), rel=1e-12)
    assert obj.g_loss(df).item() == pytest.approx((0.5 * (1 - df) ** 2).mean().item(), rel=1e-12)
    assert obj.f0 == -0.5


def test_wgan_and_hinge_closed_forms():
    dr, df = torch.randn(7, dtype=torch.float64), torch.randn(9, dtype=torch.float64)
    w = get_objective("wgan")
    assert w.d_loss(dr, df).item() == pytest.approx((df.mean() - dr.mean()).item(), rel=1e-12)
    assert w.g_loss(df).item() == pytest.approx(-df.mean().item(), rel=1e-12)
    assert not w.non_positive
    h = get_objective("hinge")
    expected = torch.relu(1 - dr).mean() + torch.relu(1 + df).mean()
    assert h.d_loss(dr, df).item() == pytest.approx(expected.item(), rel=1e-12)
    assert h.g_loss(df).item() == pytest.approx(-df.mean().item(), rel=1e-12)


@pytest.mark.parametrize("name", ["gan", "lsgan", "wgan", "hinge"])
def test_d_loss_is_minus_value_and_f_concave(name):
    obj = get_objective(name)
    dr, df = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    assert obj.d_loss(dr, df).item() == pytest.approx(-obj.value(dr, df).item(), rel=1e-12, abs=1e-12)
    second_diff = obj.f(T[2:]) - 2 * obj.f(T[1:-1]) + obj.f(T[:-2])
    assert (second_diff <= 1e-12).all()
    if obj.non_positive:
        assert (obj.f(T) <= 0).all()


def test_larger_d_means_more_real():
    # the discriminator loss falls when D(real) rises or D(fake) falls, for every loss
    for name in ["gan", "lsgan", "wgan", "hinge"]:
        obj = get_objective(name)
        base = obj.d_loss(torch.tensor([0.0]), torch.tensor([0.0]))
        assert obj.d_loss(torch.tensor([0.5]), torch.tensor([0.0])) < base
        assert obj.d_loss(torch.tensor([0.0]), torch.tensor([-0.5])) < base
        assert obj.g_loss(torch.tensor([0.5])) < obj.g_loss(torch.tensor([0.0]))


def test_unknown_loss():
    with pytest.raises(ValueError, match="choose one of gan, lsgan, wgan, hinge, rpgan"):
        get_objective("vanilla")


def test_rpgan_closed_form_and_pairing():
    obj = get_objective("rpgan")
    dr = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    df = torch.tensor([0.3, 0.1, -1.0], dtype=torch.float64)
    sp = lambda t: torch.log1p(torch.exp(t))  # noqa: E731
    assert obj.d_loss(dr, df).item() == pytest.approx(sp(-(dr - df)).mean().item(), rel=1e-12)
    assert obj.g_loss(df, dr).item() == pytest.approx(sp(-(df - dr)).mean().item(), rel=1e-12)
    assert obj.d_loss(dr, df).item() == pytest.approx(-obj.value(dr, df).item(), rel=1e-12)
    # larger D means more real, for D and (through the pairs) for G
    assert obj.d_loss(dr + 0.5, df) < obj.d_loss(dr, df) and obj.d_loss(dr, df - 0.5) < obj.d_loss(dr, df)
    assert obj.g_loss(df + 0.5, dr) < obj.g_loss(df, dr)
    # the generator's loss treats D(real) as a constant
    dr_g = dr.clone().requires_grad_(True)
    df_g = df.clone().requires_grad_(True)
    loss = obj.g_loss(df_g, dr_g)
    loss.backward()
    assert dr_g.grad is None and df_g.grad is not None
    assert obj.g_needs_real and not obj.has_f
    with pytest.raises(ValueError, match="needs D on a real batch"):
        obj.g_loss(df)
    with pytest.raises(ValueError, match="pairs real and fake"):
        obj.d_loss(dr, df[:2])
    with pytest.raises(ValueError, match="no per-sample f"):
        obj.f(dr)


def test_registry_flags():
    assert list(OBJECTIVES) == ["gan", "lsgan", "wgan", "hinge", "rpgan"]
    assert [n for n, c in OBJECTIVES.items() if c.g_needs_real] == ["rpgan"]
    assert all(c.description for c in OBJECTIVES.values())
    # every loss's default-weight row exists (directly or through weights_like)
    assert {n: c.weights_like for n, c in OBJECTIVES.items()} == {
        "gan": None, "lsgan": None, "wgan": None, "hinge": "gan", "rpgan": "gan"}
