"""Metrics for 2-D Gaussian mixtures (rings and grids of modes).

* :func:`mode_stats`: the mode-collapse statistics of Srivastava et al. (VEEGAN, 2017) and later
  papers. A sample is *high quality* (HQ) if it lies within ``threshold`` standard deviations of its
  nearest mode centre; a mode is *covered* when at least ``min_count`` HQ samples are assigned to it.
  Default min_count: 5 % of the samples a perfect generator would put on each mode,
  max(1, ceil(0.05 * N / K)) -- e.g. 16 of 2500 samples on 8 modes, 13 of 10000 on a 5x5 grid --
  so a handful of stray samples does not count as covering a mode.
* :func:`wasserstein1`: exact W1 between two equal-size point clouds by optimal assignment.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

__all__ = ["mode_stats", "wasserstein1"]


def _points(x, name: str, dim: int | None = 2) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or (dim is not None and a.shape[1] != dim):
        raise ValueError(f"{name} must have shape (N, {dim}), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf values")
    return a


def mode_stats(samples, centers, std: float, threshold: float = 3.0, min_count: int | None = None) -> dict:
    """Mode coverage and sample quality of 2-D samples against a Gaussian mixture.

    Args:
        samples: (N, 2) generated points (array or tensor).
        centers: (K, 2) mode centres.
        std: standard deviation of each mixture component (isotropic), > 0.
        threshold: HQ radius in units of std (default 3).
        min_count: HQ samples a mode needs to count as covered; default max(1, ceil(0.05 * N / K)).

    Returns:
        dict with ``modes_covered`` (int, 0..K), ``high_quality_fraction`` (float in [0, 1]),
        ``mode_counts`` (list of K ints: HQ samples per mode), ``num_modes`` (K) and ``min_count``.
    """
    x = _points(samples, "samples")
    c = _points(centers, "centers")
    if std <= 0:
        raise ValueError(f"std must be > 0, got {std}")
    n, k = x.shape[0], c.shape[0]
    if n == 0 or k == 0:
        raise ValueError("need at least one sample and one centre")
    if min_count is None:
        min_count = max(1, math.ceil(0.05 * n / k))
    d = cdist(x, c)
    nearest = d.argmin(1)
    hq = d[np.arange(n), nearest] <= threshold * std
    counts = np.bincount(nearest[hq], minlength=k)
    return {
        "modes_covered": int((counts >= min_count).sum()),
        "high_quality_fraction": float(hq.mean()),
        "mode_counts": counts.tolist(),
        "num_modes": k,
        "min_count": int(min_count),
    }


def wasserstein1(a, b) -> float:
    """Exact 1-Wasserstein distance between two equal-size empirical distributions in R^d.

    Solves the optimal assignment on the Euclidean cost matrix (scipy linear_sum_assignment, O(N^3):
    a few seconds at N = 2000; subsample larger sets) and returns the mean matched distance.

    Args: a (N, d), b (N, d) arrays or tensors (usually d = 2).
    Returns: W1 as a Python float >= 0.
    """
    x = _points(a, "a", None)
    y = _points(b, "b", None)
    if x.shape != y.shape:
        raise ValueError(f"wasserstein1 needs two sets of the same shape, got {x.shape} and {y.shape}; subsample the larger")
    cost = cdist(x, y)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())
