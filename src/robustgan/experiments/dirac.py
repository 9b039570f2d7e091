"""The Dirac-GAN study of Section 4.2 / Appendix E (Figures 2 and 5 of the paper).

Data is a Dirac at 0, the generator a Dirac at ``theta`` and the discriminator the line
``D(x) = psi * x``. Eq. 1 reduces to

    L(theta, psi) = f(psi * theta) + f(0)

(the real sample gives f(-D(0)) = f(0)). D maximises, G minimises. Each method is one small
class (a "vector field", after the Dirac-GAN notebook of Mescheder et al.) that knows

* the discriminator's objective ``d_objective(theta, psi)`` (L minus a penalty) and its feasible
  set ``|psi| <= psi_max`` (``None``: unconstrained);
* ``vector(theta, psi) -> (dtheta, dpsi)``: gradient *descent* direction of L for G and *ascent*
  direction of the discriminator's objective for D;
* ``generator_objective(thetas)``: l(theta) = max_psi of the discriminator's objective (Figure 2),
  by a robust 1-D maximisation (:func:`maximize_concave`).

Methods (constructor settings ``delta``, ``eps``, ``lam``):

============================  =============================================================
``none``                      plain game; l is flat (or +inf for wgan) away from theta = 0
``robust_loss``               Thm 4.1: |f(D(x)) - f(D(x + v))| <= eps for |v| <= delta and
                              every x in [-theta_max, theta_max] (see :func:`robust_loss_bound`)
``robust_discriminator``      Thm 4.2: |D(x) - D(x + v)| = |psi| |v| <= eps, i.e. |psi| <= eps/delta
``ar``                        Thm 4.3: maximise L - lam * (psi * delta)^2 (Eq. 4 with the
                              exact attack v = +-delta)
============================  =============================================================

In the dynamics the hard constraints are enforced by projecting psi back onto the feasible
interval after every D step. A new method is a new subclass of :class:`DiracGAN`.

The study (:func:`run_study`) writes ``objective.png``, ``vector_fields.png`` and ``dirac.json``;
``robustgan dirac --out DIR`` runs it from the command line.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robustgan.objectives import Objective, get_objective

__all__ = [
    "DEFAULTS",
    "DiracGAN",
    "RobustLoss",
    "RobustDiscriminator",
    "AdversarialRegularization",
    "METHODS",
    "make_field",
    "ObjectiveCurve",
    "maximize_concave",
    "robust_loss_bound",
    "simulate",
    "plot_objectives",
    "plot_vector_fields",
    "run_study",
    "distance_table",
    "CONVERGED_TOL",
    "add_arguments",
    "run",
]

#: Defaults of :func:`run_study`, mirrored one-to-one by the command-line flags.
#: delta is in the units of x (the generator's theta); the paper's Figure 2/5 settings are not
#: given in the text, so these are chosen to make the curves readable on theta in [-2, 2]:
#: eps/delta = 0.25 keeps the lsgan robust-discriminator curve strictly monotone on [-2, 2]
#: (its maximiser psi*theta = -1 is only reached at |theta| = 4), and lam * delta^2 = 0.5
#: critically damps the linearised AR dynamics of gan (f'(0) = -1/2).
DEFAULTS = {
    "losses": ("gan", "lsgan", "wgan"),
    "methods": ("none", "robust_loss", "robust_discriminator", "ar"),
    "delta": 1.0,
    "eps": 0.25,
    "lam": 0.5,
    "lr": 0.1,
    "steps": 500,
    "theta0": 1.0,
    "psi0": 1.0,
    "simulator": "alternating",
    "theta_max": 2.0,
    "n_theta": 401,
}

#: A run "converges" when it ends this close to the optimum (0, 0).
CONVERGED_TOL = 0.05


# --------------------------------------------------------------------------------------------
# f and f' on numpy arrays (float64), from the project's torch objectives


class _ScalarLoss:
    """numpy view of an :class:`~robustgan.objectives.Objective`: ``f(t)``, ``df(t)`` in float64."""

    def __init__(self, loss: str | Objective):
        self.objective = get_objective(loss)
        self.name = self.objective.name
        self.f0 = float(self.objective.f0)

    def f(self, t) -> np.ndarray:
        with torch.no_grad():
            return self.objective.f(torch.as_tensor(np.asarray(t, dtype=np.float64))).numpy()

    def df(self, t) -> np.ndarray:
        tt = torch.as_tensor(np.asarray(t, dtype=np.float64)).clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.objective.f(tt).sum(), tt)
        return grad.numpy()


# --------------------------------------------------------------------------------------------
# robust 1-D maximisation


@dataclass
class ObjectiveCurve:
    """l(theta) = max_psi of a discriminator objective, on a grid of theta.

    ``l``: (N,) float64, ``+inf`` where the objective is unbounded in psi.
    ``psi_star``: (N,) maximisers; ``+-inf`` where the sup is only approached as |psi| -> inf,
    ``nan`` where l is +inf.
    """

    theta: np.ndarray
    l: np.ndarray
    psi_star: np.ndarray

    @property
    def unbounded(self) -> bool:
        return bool(np.isinf(self.l).any())


def _golden_max(h, theta, a, b, iters):
    """Vectorised golden-section search for the max of h(theta_i, .) on [a_i, b_i] (unimodal)."""
    g = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - g * (b - a), a + g * (b - a)
    hc, hd = h(theta, c), h(theta, d)
    for _ in range(iters):
        left = hc >= hd  # the max lies in [a, d]: keep c as the new d; else in [c, b]
        a, b = np.where(left, a, c), np.where(left, d, b)
        c_new = np.where(left, b - g * (b - a), d)
        d_new = np.where(left, c, a + g * (b - a))
        hc, hd = np.where(left, h(theta, c_new), hd), np.where(left, hc, h(theta, d_new))
        c, d = c_new, d_new
    mid = 0.5 * (a + b)
    return mid, h(theta, mid)


def maximize_concave(h, thetas, psi_max: float | None = None, *, n_grid: int = 1001,
                     bound_max: float = 1e6, iters: int = 90, grow_tol: float = 1e-6):
    """Maximise a function that is concave in psi, for every theta on a grid.

    ``h(theta, psi)`` takes broadcastable float64 arrays and returns the objective. With
    ``psi_max`` the search is over ``|psi| <= psi_max``; without it the interval [-B, B] grows
    (B = 1, 10, 100, ... up to ``bound_max``) until the grid maximiser is interior. A dense grid of
    ``n_grid`` points brackets the maximiser (for a concave function it lies between the grid
    neighbours of the best grid point), then ``iters`` golden-section steps refine it.

    Where the maximiser is still on the boundary at ``bound_max``: if h grows by more than
    ``grow_tol`` from ``bound_max/2`` to ``bound_max``, the value is reported as ``+inf``
    (unbounded, psi* = nan); otherwise the sup is only approached at infinity and the value at
    ``bound_max`` is reported with psi* = +-inf. Where h is constant in psi, psi* = 0.

    Returns ``(psi_star, value)``, two (N,) float64 arrays.
    """
    thetas = np.asarray(thetas, dtype=np.float64)
    n = thetas.size
    psi_star = np.full(n, np.nan)
    value = np.full(n, np.nan)
    todo = np.arange(n)
    if psi_max is not None:
        bounds = [float(psi_max)]
    else:
        bounds = [b for b in 10.0 ** np.arange(0, 20) if b < bound_max] + [float(bound_max)]
    for k, bound in enumerate(bounds):
        last = k == len(bounds) - 1
        grid = np.linspace(-bound, bound, n_grid)
        th = thetas[todo][:, None]
        vals = h(th, grid[None, :])
        i = np.argmax(vals, axis=1)
        vmax = vals[np.arange(len(i)), i]
        tie = 4 * np.finfo(np.float64).eps * (1.0 + np.abs(vmax))
        left_hit = vals[:, 0] >= vmax - tie  # an end of the interval is (also) a maximiser
        right_hit = vals[:, -1] >= vmax - tie
        flat = left_hit & right_hit  # concave and maximal at both ends: constant
        interior = ~left_hit & ~right_hit
        accept = interior | flat | last | (psi_max is not None)
        sel, ii = todo[accept], i[accept]
        if sel.size:
            a = grid[np.maximum(ii - 1, 0)]
            b = grid[np.minimum(ii + 1, n_grid - 1)]
            p, v = _golden_max(h, thetas[sel], a, b, iters)
            # the grid point itself (a boundary maximiser, or a plateau) may beat the refinement
            gv = vmax[accept]
            better = gv > v
            p, v = np.where(better, grid[ii], p), np.where(better, gv, v)
            fl = flat[accept]
            p = np.where(fl, 0.0, p)
            v = np.where(fl, h(thetas[sel], np.zeros(sel.size)), v)
            if psi_max is None and last:
                # still maximal at an end of [-bound_max, bound_max]: unbounded or sup at infinity
                on_edge = ~interior[accept] & ~fl
                edge_psi = np.where(right_hit[accept], bound, -bound)
                edge_val = h(thetas[sel], edge_psi)
                grow = edge_val - h(thetas[sel], edge_psi / 2.0)
                unbounded = on_edge & (grow > grow_tol)
                v = np.where(unbounded, np.inf, np.where(on_edge, np.maximum(v, edge_val), v))
                p = np.where(unbounded, np.nan, np.where(on_edge, np.sign(edge_psi) * np.inf, p))
            psi_star[sel], value[sel] = p, v
        todo = todo[~accept]
        if not todo.size:
            break
    return psi_star, value


def robust_loss_bound(loss: str | Objective, delta: float, eps: float, domain: float = 2.0,
                      *, n_x: int = 401, n_v: int = 41, bound_max: float = 1e6) -> float:
    """The largest p such that |psi| <= p makes the loss robust on the whole domain (Thm 4.1).

    Robust loss: |f(psi x) - f(psi (x + v))| <= eps for every x in [-domain, domain] (which holds
    the real sample 0 and every generator position theta we plot) and every |v| <= delta. The
    worst case over (x, v) is a non-decreasing function of |psi|, so p is found by bisection;
    the worst case is taken over a grid of ``n_x`` x-values and ``n_v`` v-values that includes
    the corners x = +-domain, v = +-delta (where it sits for gan, lsgan and wgan).

    Returns p (>= 0; ``inf`` if no |psi| <= ``bound_max`` violates the constraint).
    """
    sl = _ScalarLoss(loss)
    x = np.linspace(-domain, domain, n_x)[:, None]
    v = np.linspace(-delta, delta, n_v)[None, :]

    def worst(p: float) -> float:
        return float(np.max(np.abs(sl.f(p * x) - sl.f(p * (x + v)))))

    lo, hi = 0.0, 1.0
    while worst(hi) <= eps:
        lo, hi = hi, 2.0 * hi
        if hi > bound_max:
            return math.inf
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if worst(mid) <= eps:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-14 * hi:
            break
    return lo


# --------------------------------------------------------------------------------------------
# vector fields: one class per method


class DiracGAN:
    """The unregularised Dirac-GAN (method ``none``) and the base class of every method.

    ``loss``: a loss name of :mod:`robustgan.objectives` (``gan``, ``lsgan``, ``wgan``, ``hinge``)
    or an Objective. ``delta``, ``eps``, ``lam``: the attack radius, robustness level and
    regularisation weight (unused by this class; subclasses read them). ``domain``: half-width of
    the region of x on which :class:`RobustLoss` asks for robustness.

    The generator minimises L(theta, psi) itself (the minimax game of Eq. 1, as in Mescheder's
    Dirac-GAN), so the field is

        dtheta = -dL/dtheta = -psi f'(psi theta)
        dpsi   = +d(L - penalty)/dpsi = theta f'(psi theta) - penalty'(psi)
    """

    name = "none"
    label = "unconstrained"

    def __init__(self, loss: str | Objective = "gan", *, delta: float = DEFAULTS["delta"],
                 eps: float = DEFAULTS["eps"], lam: float = DEFAULTS["lam"],
                 domain: float = DEFAULTS["theta_max"]):
        for key, val in (("delta", delta), ("eps", eps), ("lam", lam), ("domain", domain)):
            if not (isinstance(val, (int, float)) and math.isfinite(val) and val > 0):
                raise ValueError(f"{key} must be a positive number, got {val!r}")
        self.loss = _ScalarLoss(loss)
        self.delta, self.eps, self.lam, self.domain = float(delta), float(eps), float(lam), float(domain)

    # -- the game
    def value(self, theta, psi) -> np.ndarray:
        """L(theta, psi) = f(psi theta) + f(0) (broadcast arrays)."""
        return self.loss.f(np.asarray(psi) * np.asarray(theta)) + self.loss.f0

    def penalty(self, psi) -> np.ndarray:
        """What the discriminator's objective subtracts from L (0 here)."""
        return np.zeros_like(np.asarray(psi, dtype=np.float64))

    def penalty_grad(self, psi) -> np.ndarray:
        """d penalty / d psi."""
        return np.zeros_like(np.asarray(psi, dtype=np.float64))

    def d_objective(self, theta, psi) -> np.ndarray:
        """What D maximises: L(theta, psi) - penalty(psi)."""
        return self.value(theta, psi) - self.penalty(psi)

    @property
    def psi_max(self) -> float | None:
        """Feasible set |psi| <= psi_max of the hard constraint, ``None`` when unconstrained."""
        return None

    def project(self, psi):
        """Project psi onto the feasible set (identity when unconstrained)."""
        m = self.psi_max
        return psi if m is None else np.clip(psi, -m, m)

    def vector(self, theta, psi):
        """The update directions ``(dtheta, dpsi)`` at (theta, psi) (floats or arrays)."""
        theta = np.asarray(theta, dtype=np.float64)
        psi = np.asarray(psi, dtype=np.float64)
        g = self.loss.df(psi * theta)
        return -psi * g, theta * g - self.penalty_grad(psi)

    # -- Figure 2
    def generator_objective(self, thetas) -> ObjectiveCurve:
        """l(theta) = max over feasible psi of ``d_objective(theta, psi)``, on ``thetas`` (N,).

        For the regularised method this is the value of the regularised game,
        max_psi L - lam (psi delta)^2, as in Figure 2(d).
        """
        thetas = np.asarray(thetas, dtype=np.float64)
        psi_star, value = maximize_concave(self.d_objective, thetas, self.psi_max)
        return ObjectiveCurve(thetas, value, psi_star)

    def __repr__(self):
        return (f"{type(self).__name__}(loss={self.loss.name!r}, delta={self.delta}, "
                f"eps={self.eps}, lam={self.lam})")


class RobustDiscriminator(DiracGAN):
    """Hard robust-discriminator constraint (Thm 4.2): |D(x) - D(x+v)| = |psi||v| <= eps, |v| <= delta."""

    name = "robust_discriminator"
    label = "robust discriminator |psi| delta <= eps"

    @property
    def psi_max(self) -> float:
        return self.eps / self.delta


class RobustLoss(DiracGAN):
    """Hard robust-loss constraint (Thm 4.1) on every x in [-domain, domain].

    The constraint is asked on a fixed region (not only at the current generator position) so
    that the feasible set does not move with theta, which is what the proof of Thm 4.1 uses
    (the optimal D for theta + u must be feasible at theta). It is a box |psi| <= p, p from
    :func:`robust_loss_bound`. For wgan it equals the robust discriminator (p = eps/delta).
    """

    name = "robust_loss"
    label = "robust loss |f(D(x)) - f(D(x+v))| <= eps"

    @property
    def psi_max(self) -> float | None:
        if not hasattr(self, "_psi_max"):
            p = robust_loss_bound(self.loss.objective, self.delta, self.eps, self.domain)
            self._psi_max = p if math.isfinite(p) else None  # eps so large that nothing is excluded
        return self._psi_max


class AdversarialRegularization(DiracGAN):
    """Adversarial regularisation (Eq. 4, Thm 4.3): D maximises L - lam * (psi * delta)^2.

    In the Dirac-GAN the attack is exact: max_{|v| <= delta} (D(theta) - D(theta + v))^2 = (psi delta)^2.
    """

    name = "ar"
    label = "adv. regularisation L - lam (psi delta)^2"

    def penalty(self, psi):
        return self.lam * (np.asarray(psi, dtype=np.float64) * self.delta) ** 2

    def penalty_grad(self, psi):
        return 2.0 * self.lam * self.delta ** 2 * np.asarray(psi, dtype=np.float64)


METHODS: dict[str, type[DiracGAN]] = {
    cls.name: cls for cls in (DiracGAN, RobustLoss, RobustDiscriminator, AdversarialRegularization)
}


def make_field(method: str, loss: str | Objective = "gan", **settings) -> DiracGAN:
    """The vector field of ``method`` (one of :data:`METHODS`) for ``loss``; settings as DiracGAN."""
    try:
        cls = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown Dirac-GAN method {method!r}; choose one of {', '.join(METHODS)}") from None
    return cls(loss, **settings)


# --------------------------------------------------------------------------------------------
# simulators (kept apart from the fields)


def simulate(field: DiracGAN, theta0: float = 1.0, psi0: float = 1.0, *, lr: float = 0.1,
             steps: int = 500, mode: str = "alternating") -> np.ndarray:
    """Gradient descent for G / ascent for D with a fixed step size ``lr``.

    ``alternating``: a G step, then a D step at the updated theta (then psi is projected onto
    the feasible set). ``simultaneous``: both steps from the same point, then the projection.
    Returns the trajectory, a (steps + 1, 2) float64 array of (theta, psi), row 0 the start.
    """
    if mode not in ("alternating", "simultaneous"):
        raise ValueError(f"unknown simulator {mode!r}; choose 'alternating' or 'simultaneous'")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    traj = np.empty((int(steps) + 1, 2))
    theta, psi = float(theta0), float(psi0)
    traj[0] = theta, psi
    for k in range(1, int(steps) + 1):
        if mode == "alternating":
            dtheta, _ = field.vector(theta, psi)
            theta = theta + lr * float(dtheta)
            _, dpsi = field.vector(theta, psi)
            psi = psi + lr * float(dpsi)
        else:
            dtheta, dpsi = field.vector(theta, psi)
            theta, psi = theta + lr * float(dtheta), psi + lr * float(dpsi)
        psi = float(field.project(psi))
        traj[k] = theta, psi
    return traj


# --------------------------------------------------------------------------------------------
# plotting (Agg backend, imported lazily)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_LOSS_LABEL = {"gan": "GAN (JS)", "lsgan": "LSGAN", "wgan": "WGAN", "hinge": "hinge"}
_METHOD_TITLE = {
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


def plot_objectives(theta: np.ndarray, curves: dict, path: str | Path, *, l0: dict | None = None) -> Path:
    """Figure 2: a grid of l(theta) - l(0) panels, rows = losses, columns = methods.

    ``curves[loss][method]`` is an (N,) array of l over ``theta`` (+inf allowed: drawn as a dashed
    line at the top of the panel); ``l0[loss]`` the value at theta = 0 (default 2 f(0)). Jumps
    (the unconstrained objectives are discontinuous at 0) are drawn as gaps with a dot at the
    isolated value.
    """
    plt = _pyplot()
    losses = list(curves)
    methods = list(next(iter(curves.values())))
    nr, nc = len(losses), len(methods)
    fig, axes = plt.subplots(nr, nc, figsize=(3.2 * nc, 2.3 * nr + 0.6), sharex=True, squeeze=False)
    fig.subplots_adjust(left=0.075, right=0.99, bottom=0.08, top=0.9, wspace=0.22, hspace=0.18)
    for r, loss in enumerate(losses):
        base = l0[loss] if l0 else 2.0 * _ScalarLoss(loss).f0
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
                ax.set_title(_METHOD_TITLE.get(method, method), fontsize=10)
            if c_ == 0:
                ax.set_ylabel(f"{_LOSS_LABEL.get(loss, loss)}\nl(theta) - l(0)")
            if r == nr - 1:
                ax.set_xlabel("theta")
    fig.suptitle("Dirac-GAN generator objective l(theta) = max_psi [f(psi theta) + f(0) - penalty], "
                 "relative to l(0) = 2 f(0)", fontsize=11)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_vector_fields(fields: dict, trajectories: dict, path: str | Path, *, extent: float = 2.0,
                       n_arrows: int = 17) -> Path:
    """Figure 5: rows = losses, columns = methods; the (theta, psi) field with the trajectory.

    ``fields[loss][method]`` is a :class:`DiracGAN`, ``trajectories[loss][method]`` a (T, 2) array.
    Arrows show the direction of the field (normalised length); the region a hard constraint
    forbids is shaded.
    """
    plt = _pyplot()
    losses = list(fields)
    methods = list(next(iter(fields.values())))
    nr, nc = len(losses), len(methods)
    fig, axes = plt.subplots(nr, nc, figsize=(3.0 * nc, 3.05 * nr + 0.4), squeeze=False)
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
            ax.set_title(f"{_LOSS_LABEL.get(loss, loss)}: {_DYN_TITLE.get(method, method)}\n"
                         f"final distance {float(np.hypot(*tr[-1])):.3g}", fontsize=9)
            if r == nr - 1:
                ax.set_xlabel("theta (generator)")
            if c_ == 0:
                ax.set_ylabel("psi (discriminator)")
    from matplotlib.patches import Patch

    handles.append(Patch(color="C1", alpha=0.15, label="infeasible |psi| > psi_max"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# the study


def _finite_or_none(a) -> list:
    return [float(x) + 0.0 if np.isfinite(x) else None for x in np.asarray(a, dtype=np.float64)]


def _signed_inf(a) -> list:
    out = []
    for x in np.asarray(a, dtype=np.float64):
        out.append(float(x) + 0.0 if np.isfinite(x) else (None if np.isnan(x) else ("+inf" if x > 0 else "-inf")))
    return out


def run_study(out_dir: str | Path = "dirac_out", *, losses=DEFAULTS["losses"], methods=DEFAULTS["methods"],
              delta: float = DEFAULTS["delta"], eps: float = DEFAULTS["eps"], lam: float = DEFAULTS["lam"],
              lr: float = DEFAULTS["lr"], steps: int = DEFAULTS["steps"], theta0: float = DEFAULTS["theta0"],
              psi0: float = DEFAULTS["psi0"], simulator: str = DEFAULTS["simulator"],
              theta_max: float = DEFAULTS["theta_max"], n_theta: int = DEFAULTS["n_theta"],
              plots: bool = True) -> dict:
    """Run the Dirac-GAN study and write ``objective.png``, ``vector_fields.png``, ``dirac.json``.

    For every loss x method: l(theta) on ``n_theta`` points of [-theta_max, theta_max] (Figure 2)
    and a ``steps``-step run of ``simulator`` gradient descent/ascent with step ``lr`` from
    (``theta0``, ``psi0``) (Figure 5). Defaults: :data:`DEFAULTS`; an even ``n_theta`` is made
    odd so that theta = 0 is on the grid. Returns the dict written to ``dirac.json``;
    ``plots=False`` skips the PNGs.
    """
    for key, val in (("delta", delta), ("eps", eps), ("lam", lam), ("lr", lr), ("theta_max", theta_max)):
        if not (isinstance(val, (int, float)) and math.isfinite(val) and val > 0):
            raise ValueError(f"{key} must be a positive number, got {val!r}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if int(n_theta) != n_theta or n_theta < 3:
        raise ValueError(f"n_theta must be an integer >= 3, got {n_theta!r}")
    losses, methods = tuple(losses), tuple(methods)
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown Dirac-GAN method {m!r}; choose from {', '.join(METHODS)}")
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_theta = int(n_theta) | 1  # odd, so that theta = 0 is on the grid
    theta = np.linspace(-theta_max, theta_max, n_theta)
    theta[n_theta // 2] = 0.0

    settings = {
        "losses": list(losses), "methods": list(methods), "delta": delta, "eps": eps, "lam": lam,
        "lr": lr, "steps": int(steps), "theta0": theta0, "psi0": psi0, "simulator": simulator,
        "theta_max": theta_max, "n_theta": n_theta, "converged_tol": CONVERGED_TOL,
        "generator_loss": "minimax: G minimises L(theta, psi) = f(psi theta) + f(0)",
        "robust_loss_region": f"|f(psi x) - f(psi (x+v))| <= eps for all x in [-{theta_max}, {theta_max}], |v| <= delta",
        "hard_constraints": "psi projected onto |psi| <= psi_max after every D step",
    }
    fields, trajs, curves, l0 = {}, {}, {}, {}
    results: dict = {}
    for loss in losses:
        fields[loss], trajs[loss], curves[loss], results[loss] = {}, {}, {}, {}
        for method in methods:
            field = make_field(method, loss, delta=delta, eps=eps, lam=lam, domain=theta_max)
            curve = field.generator_objective(theta)
            traj = simulate(field, theta0, psi0, lr=lr, steps=steps, mode=simulator)
            dist = np.hypot(traj[:, 0], traj[:, 1])
            tail = dist[-max(1, len(dist) // 5):]
            fields[loss][method], trajs[loss][method], curves[loss][method] = field, traj, curve.l
            results[loss][method] = {
                "psi_max": field.psi_max,
                "final_distance": float(dist[-1]),
                "tail_max_distance": float(tail.max()),
                "converged": bool(dist[-1] < CONVERGED_TOL),
                "end_point": [float(traj[-1, 0]), float(traj[-1, 1])],
                "l": _finite_or_none(curve.l),
                "l_unbounded": curve.unbounded,
                "psi_star": _signed_inf(curve.psi_star),
            }
        l0[loss] = 2.0 * fields[loss][methods[0]].loss.f0 + 0.0
    files = {"json": "dirac.json"}
    if plots:
        plot_objectives(theta, curves, out / "objective.png", l0=l0)
        plot_vector_fields(fields, trajs, out / "vector_fields.png", extent=max(2.0, abs(theta0), abs(psi0)))
        files.update(objective="objective.png", vector_fields="vector_fields.png")
    report = {
        "settings": settings,
        "notes": {
            "l": "l(theta) = max_psi [f(psi theta) + f(0) - penalty(psi)] over the feasible psi; "
                 "null means +inf (unbounded in psi: wgan without constraint)",
            "psi_star": "maximiser; '+inf'/'-inf' where the sup is only approached as |psi| -> inf, "
                        "null where l is +inf",
            "l_at_theta_0": "2 f(0) for every method; objective.png plots l(theta) - l(0)",
            "final_distance": "sqrt(theta^2 + psi^2) after `steps` steps; optimum (0, 0) for every method",
            "tail_max_distance": "max distance over the last 20% of the steps (the orbit's radius)",
        },
        "l_at_theta_0": l0,
        "theta": [float(t) for t in theta],
        "results": results,
        "files": files,
        "seconds": None,
    }
    report["seconds"] = round(time.perf_counter() - start, 3)
    text = json.dumps(report, indent=1, allow_nan=False)
    # one line per list of numbers, so that the file stays readable
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    (out / "dirac.json").write_text(text + "\n")
    return report


def distance_table(report: dict) -> str:
    """A Markdown table of final distances (rows losses, columns methods) from a study report."""
    res = report["results"]
    methods = report["settings"]["methods"]
    lines = ["| loss | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for loss, row in res.items():
        lines.append(f"| {loss} | " + " | ".join(f"{row[m]['final_distance']:.3g}" for m in methods) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# command line: `robustgan dirac`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``robustgan dirac`` (defaults: :data:`DEFAULTS`)."""
    d = DEFAULTS
    parser.add_argument("--out", default="dirac_out", help="output folder (default: dirac_out)")
    parser.add_argument("--losses", nargs="+", default=list(d["losses"]), metavar="LOSS",
                        help="losses (default: gan lsgan wgan)")
    parser.add_argument("--methods", nargs="+", default=list(d["methods"]), metavar="METHOD",
                        help=f"methods (default: {' '.join(d['methods'])})")
    parser.add_argument("--delta", type=float, default=d["delta"], help=f"attack radius (default {d['delta']})")
    parser.add_argument("--eps", type=float, default=d["eps"], help=f"robustness level of the hard constraints (default {d['eps']})")
    parser.add_argument("--lam", type=float, default=d["lam"], help=f"AR weight lambda (default {d['lam']})")
    parser.add_argument("--lr", type=float, default=d["lr"], help=f"step size of both players (default {d['lr']})")
    parser.add_argument("--steps", type=int, default=d["steps"], help=f"number of G/D step pairs (default {d['steps']})")
    parser.add_argument("--simulator", choices=("alternating", "simultaneous"), default=d["simulator"],
                        help="update scheme (default alternating)")
    parser.add_argument("--theta-max", type=float, default=d["theta_max"], help="plot l(theta) on [-theta_max, theta_max] (default 2)")
    parser.add_argument("--n-theta", type=int, default=d["n_theta"], help=f"points of the theta grid (default {d['n_theta']})")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``robustgan dirac``: run the study and print the final-distance table."""
    report = run_study(args.out, losses=args.losses, methods=args.methods, delta=args.delta, eps=args.eps,
                       lam=args.lam, lr=args.lr, steps=args.steps, simulator=args.simulator,
                       theta_max=args.theta_max, n_theta=args.n_theta)
    print(f"final distance to the optimum (0, 0) after {args.steps} {args.simulator} steps (lr {args.lr}):")
    print(distance_table(report))
    print(f"wrote {Path(args.out) / 'dirac.json'}, objective.png, vector_fields.png ({report['seconds']:.1f} s)")
    return 0
