"""Robust 1-D maximisation: l(theta) = max over psi of a function concave in psi.

Knows nothing about GANs: :func:`maximize_concave` takes any ``h(theta, psi)`` on numpy arrays.
The vector fields (:mod:`.fields`) use it for the generator's objective of Figure 2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ObjectiveCurve", "maximize_concave"]


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
