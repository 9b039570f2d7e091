"""Tests of the Dirac-GAN figures (robustgan.experiments.dirac.plots) and of adding a method.

The figures are checked for what they show (panel layout, labels, plotted data, limits), not
for pixels; the library must draw without pyplot and without ``matplotlib.use``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from robustgan.experiments import dirac
from robustgan.experiments.dirac import METHODS, DiracGAN, make_field, register_method, simulate
from robustgan.experiments.dirac.plots import LOSS_LABEL, METHOD_TITLE, objective_figure, vector_field_figure

SRC = Path(__file__).resolve().parents[1] / "src" / "robustgan"
LOSSES, METHOD_NAMES = ("gan", "wgan"), ("none", "robust_discriminator", "ar")
THETA = np.linspace(-2.0, 2.0, 41)


def _curves():
    return {loss: {m: make_field(m, loss).generator_objective(THETA).l for m in METHOD_NAMES} for loss in LOSSES}


def test_objective_figure_layout_and_data():
    curves = _curves()
    fig = objective_figure(THETA, curves)
    axes = np.array(fig.axes).reshape(len(LOSSES), len(METHOD_NAMES))
    assert [ax.get_title() for ax in axes[0]] == [METHOD_TITLE[m] for m in METHOD_NAMES]
    assert [ax.get_title() for ax in axes[1]] == ["", "", ""]
    for r, loss in enumerate(LOSSES):
        assert axes[r, 0].get_ylabel().startswith(LOSS_LABEL[loss])
    # panel (wgan, ar) shows l(theta) - 2 f(0) = theta^2 / (4 lam delta^2) with f(0) = 0, lam delta^2 = 0.5
    (line,) = [ln for ln in axes[1, 2].get_lines() if len(ln.get_xdata()) > 1 and ln.get_color() == "C0"]
    np.testing.assert_allclose(line.get_ydata(), THETA ** 2 / 2.0, atol=1e-12)
    # unconstrained wgan is +inf away from 0: drawn as the dashed line at the top of the panel
    dashed = [ln for ln in axes[1, 0].get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and len(dashed[0].get_xdata()) == len(THETA) - 1


def test_vector_field_figure_shows_the_trajectories_on_equal_axes():
    fields = {loss: {m: make_field(m, loss) for m in METHOD_NAMES} for loss in LOSSES}
    trajs = {loss: {m: simulate(f, 1.0, 1.0, steps=50) for m, f in row.items()} for loss, row in fields.items()}
    fig = vector_field_figure(fields, trajs, extent=2.5)
    axes = np.array(fig.axes).reshape(len(LOSSES), len(METHOD_NAMES))
    for r, loss in enumerate(LOSSES):
        for c, m in enumerate(METHOD_NAMES):
            ax = axes[r, c]
            assert ax.get_xlim() == (-2.5, 2.5) and ax.get_ylim() == (-2.5, 2.5)
            assert ax.get_title().startswith(LOSS_LABEL[loss])
            (traj,) = [ln for ln in ax.get_lines() if ln.get_label() == "trajectory"]
            np.testing.assert_array_equal(np.c_[traj.get_xdata(), traj.get_ydata()], trajs[loss][m])
    # the robust discriminator's infeasible region |psi| > eps / delta = 0.25 is shaded (two bands)
    assert len(axes[0, 1].patches) == 2 and len(axes[0, 0].patches) == 0


def test_figures_are_saved_without_pyplot(tmp_path):
    fields = {"gan": {"ar": make_field("ar", "gan")}}
    trajs = {"gan": {"ar": simulate(fields["gan"]["ar"], steps=5)}}
    path = dirac.plot_vector_fields(fields, trajs, tmp_path / "v.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # library code draws on bare Figures: no pyplot, no matplotlib.use (it would switch the user's backend)
    for file in sorted((SRC / "experiments" / "dirac").glob("*.py")):
        tree = ast.parse(file.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any("pyplot" in n for n in names), f"{file.name} imports pyplot"
            if isinstance(node, ast.Attribute) and node.attr == "use":
                assert not (isinstance(node.value, ast.Name) and node.value.id == "matplotlib"), file.name


def test_a_new_method_is_one_small_class(tmp_path):
    # R1 on the Dirac-GAN: D maximises L - gamma/2 * |dD/dx|^2 = L - gamma/2 psi^2, which is AR
    # with lam delta^2 = gamma / 2: the two fields must agree everywhere.
    @register_method
    class ZeroCentredPenalty(DiracGAN):
        name = "r1_test"
        gamma = 1.0

        def penalty(self, psi):
            return 0.5 * self.gamma * np.asarray(psi, dtype=np.float64) ** 2

        def penalty_grad(self, psi):
            return self.gamma * np.asarray(psi, dtype=np.float64)

    try:
        with pytest.raises(ValueError, match="already registered"):
            register_method(ZeroCentredPenalty)
        th, ps = np.meshgrid(np.linspace(-2, 2, 9), np.linspace(-2, 2, 9))
        for loss in ("gan", "lsgan", "wgan"):
            new = make_field("r1_test", loss)
            ar = make_field("ar", loss, lam=0.5, delta=1.0)
            for a, b in zip(new.vector(th, ps), ar.vector(th, ps)):
                np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)
        report = dirac.run_study(tmp_path, losses=["wgan"], methods=["r1_test", "ar"], steps=200, n_theta=21,
                                 plots=False)
        res = report["results"]["wgan"]
        assert res["r1_test"]["final_distance"] == pytest.approx(res["ar"]["final_distance"], rel=1e-12)
        assert res["r1_test"]["l"] == pytest.approx(res["ar"]["l"], abs=1e-12)
    finally:
        del METHODS["r1_test"]
