"""Figures 2 and 5 of the Dirac-GAN study, drawn on bare :class:`matplotlib.figure.Figure` objects.

No pyplot and no ``matplotlib.use``: the figures have their own canvas, so drawing them neither
changes the user's backend nor opens windows. ``*_figure`` builds a figure (for tests and
notebooks), ``plot_*`` builds it and saves it as PNG.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .fields import ScalarLoss

__all__ = ["LOSS_LABEL", "METHOD_TITLE", "objective_figure", "plot_objectives", "vector_field_figure",
           "plot_vector_fields"]

LOSS_LABEL = {"gan": "GAN (JS)", "lsgan": "LSGAN", "wgan": "WGAN", "hinge": "hinge"}
METHOD_TITLE = {
    "none": "(a) unconstrained",
    "robust_loss": "(b) robust loss (Thm 4.1)",
    "robust_discriminator": "(c) robust discriminator (Thm 4.2)",
    "ar": "(d) adv. regularisation (Thm 4.3)",
}
_DYN_TITLE = {
    "none": "unregularised",
    "robust_loss": "robust loss (hard, projected)",
    "robust_discriminator": "robust D (hard, projected)",
    "ar": "adv. regularisation",
}


def _split_at_jumps(x, y, jump):
    """Split a curve into pieces wherever |dy| > jump (so a discontinuity is not drawn as a wall)."""
    cuts = np.flatnonzero(np.abs(np.diff(y)) > jump) + 1
    return zip(np.split(x, cuts), np.split(y, cuts))


def objective_figure(theta: np.ndarray, curves: dict, *, l0: dict | None = None) -> Figure:
    """Figure 2: a grid of l(theta) - l(0) panels, rows = losses, columns = methods.

    ``curves[loss][method]`` is an (N,) array of l over ``theta`` (+inf allowed: drawn as a dashed
    line at the top of the panel); ``l0[loss]`` the value at theta = 0 (default 2 f(0)). Jumps
    (the unconstrained objectives are discontinuous at 0) are drawn as gaps with a dot at the
    isolated value.
    """
    losses = list(curves)
    methods = list(next(iter(curves.values())))
    nr, nc = len(losses), len(methods)
    fig = Figure(figsize=(3.2 * nc, 2.3 * nr + 0.6))
    axes = fig.subplots(nr, nc, sharex=True, squeeze=False)
    fig.subplots_adjust(left=0.075, right=0.99, bottom=0.08, top=0.9, wspace=0.22, hspace=0.18)
    for r, loss in enumerate(losses):
        base = l0[loss] if l0 else 2.0 * ScalarLoss(loss).f0
        finite_max = max([float(np.max(c[np.isfinite(c)] - base)) for c in curves[loss].values()
                          if np.isfinite(c).any()] + [0.0])
        top = 1.12 * finite_max if finite_max > 0 else 1.0
        for c_, method in enumerate(methods):
            ax = axes[r, c_]
            y = np.asarray(curves[loss][method], dtype=np.float64) - base
            fin = np.isfinite(y)
            for xs, ys in _split_at_jumps(theta[fin], y[fin], 0.2 * top):
                if len(xs) == 1:
                    ax.plot(xs, ys, "o", color="C0", ms=5)
                else:
                    ax.plot(xs, ys, color="C0", lw=2)
            if (~fin).any():
                ax.plot(theta[~fin], np.full(int((~fin).sum()), 0.96 * top), color="C3", lw=2, ls="--")
                ax.text(0.5, 0.72, "+inf for theta != 0\n(drawn at the top)", transform=ax.transAxes,
                        ha="center", color="C3", fontsize=8)
            ax.axvline(0.0, color="0.8", lw=0.8, zorder=0)
            ax.set_ylim(-0.05 * top, top)
            ax.grid(alpha=0.3)
            if r == 0:
                ax.set_title(METHOD_TITLE.get(method, method), fontsize=10)
            if c_ == 0:
                ax.set_ylabel(f"{LOSS_LABEL.get(loss, loss)}\nl(theta) - l(0)")
            if r == nr - 1:
                ax.set_xlabel("theta")
    fig.suptitle("Dirac-GAN generator objective l(theta) = max_psi [f(psi theta) + f(0) - penalty], "
                 "relative to l(0) = 2 f(0)", fontsize=11)
    return fig


def plot_objectives(theta: np.ndarray, curves: dict, path: str | Path, *, l0: dict | None = None) -> Path:
    """:func:`objective_figure` saved as a PNG at ``path`` (100 dpi); returns the path."""
    path = Path(path)
    objective_figure(theta, curves, l0=l0).savefig(path, dpi=100)
    return path


def vector_field_figure(fields: dict, trajectories: dict, *, extent: float = 2.0, n_arrows: int = 17) -> Figure:
    """Figure 5: rows = losses, columns = methods; the (theta, psi) field with the trajectory.

    ``fields[loss][method]`` is a :class:`DiracGAN`, ``trajectories[loss][method]`` a (T, 2) array.
    Arrows show the direction of the field (normalised length); the region a hard constraint
    forbids is shaded.
    """
    losses = list(fields)
    methods = list(next(iter(fields.values())))
    nr, nc = len(losses), len(methods)
    fig = Figure(figsize=(3.0 * nc, 3.05 * nr + 0.4))
    axes = fig.subplots(nr, nc, squeeze=False)
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.1, top=0.95, wspace=0.25, hspace=0.35)
    g = np.linspace(-extent, extent, n_arrows)
    T, P = np.meshgrid(g, g)
    handles = None
    for r, loss in enumerate(losses):
        for c_, method in enumerate(methods):
            ax = axes[r, c_]
            field = fields[loss][method]
            u, v = field.vector(T, P)
            mag = np.maximum(np.hypot(u, v), 1e-12)
            ax.quiver(T, P, u / mag, v / mag, color="0.55", angles="xy", scale=n_arrows * 1.3,
                      width=0.005)
            m = field.psi_max
            if m is not None and m < extent:
                for lo, hi in ((m, extent), (-extent, -m)):
                    ax.axhspan(lo, hi, color="C1", alpha=0.15, lw=0)
            tr = trajectories[loss][method]
            h1, = ax.plot(tr[:, 0], tr[:, 1], color="C0", lw=1.3, label="trajectory")
            h2, = ax.plot(*tr[0], "o", color="C2", ms=6, label="start (theta0, psi0)")
            h3, = ax.plot(*tr[-1], "s", color="C3", ms=6, label="end")
            h4, = ax.plot(0, 0, "*", color="k", ms=10, label="optimum (0, 0)")
            handles = [h1, h2, h3, h4]
            ax.set_xlim(-extent, extent)
            ax.set_ylim(-extent, extent)
            ax.set_aspect("equal")
            ax.set_title(f"{LOSS_LABEL.get(loss, loss)}: {_DYN_TITLE.get(method, method)}\n"
                         f"final distance {float(np.hypot(*tr[-1])):.3g}", fontsize=9)
            if r == nr - 1:
                ax.set_xlabel("theta (generator)")
            if c_ == 0:
                ax.set_ylabel("psi (discriminator)")
    handles.append(Patch(color="C1", alpha=0.15, label="infeasible |psi| > psi_max"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
    return fig


def plot_vector_fields(fields: dict, trajectories: dict, path: str | Path, *, extent: float = 2.0,
                       n_arrows: int = 17) -> Path:
    """:func:`vector_field_figure` saved as a PNG at ``path`` (90 dpi); returns the path."""
    path = Path(path)
    vector_field_figure(fields, trajectories, extent=extent, n_arrows=n_arrows).savefig(path, dpi=90)
    return path

