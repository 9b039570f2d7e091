"""Improved precision and recall (Kynkaanniemi et al., NeurIPS 2019).

Each feature set defines a manifold: the union of balls around its points whose radius is the
distance to the point's k-th nearest neighbour within the set (k = 3 by default; the point itself
does not count). Then

    precision = fraction of fake samples inside the real manifold   (quality: are fakes realistic?)
    recall    = fraction of real samples inside the fake manifold   (coverage: are all modes produced?)

A point q is inside the manifold of set S when ||q - s|| <= radius(s) for at least one s in S.
Distances are computed in batches with torch (squared distances via ||a||^2 + ||b||^2 - 2 a.b on
features centred on the reference mean, to limit cancellation), so memory stays at
batch_size x N entries.
"""
from __future__ import annotations

import torch

from .arrays import feature_matrix

__all__ = ["knn_radii", "manifold_coverage", "precision_recall"]


def _sq_distances(a: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    d = (a * a).sum(1, keepdim=True) + b_sq[None, :] - 2.0 * (a @ b.T)
    return d.clamp_min_(0.0)


def knn_radii(features, k: int = 3, batch_size: int = 1024, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Squared distance from each row to its k-th nearest other row.

    Args:
        features: (N, F) array or tensor, N > k.
        k: neighbour index (default 3); the row itself (distance 0) is not counted.
        batch_size: rows per distance block. dtype: computation dtype (default float32).

    Returns:
        (N,) tensor of squared radii in ``dtype``.
    """
    x = feature_matrix(features, "features", dtype)
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, N-1] for N = {n} samples, got k = {k}")
    x = x - x.mean(0, keepdim=True)
    x_sq = (x * x).sum(1)
    out = torch.empty(n, dtype=dtype)
    for start in range(0, n, batch_size):
        d = _sq_distances(x[start:start + batch_size], x, x_sq)
        # the (k+1)-th smallest including the row itself (distance ~0) is the k-th other neighbour
        out[start:start + batch_size] = d.kthvalue(k + 1, dim=1).values
    return out


def manifold_coverage(queries, support, support_radii_sq: torch.Tensor, batch_size: int = 1024,
                      dtype: torch.dtype = torch.float32) -> float:
    """Fraction of ``queries`` (Q, F) inside the manifold of ``support`` (S, F) with squared radii (S,)."""
    q = feature_matrix(queries, "queries", dtype)
    s = feature_matrix(support, "support", dtype)
    if q.shape[1] != s.shape[1]:
        raise ValueError(f"feature dimensions differ: {q.shape[1]} and {s.shape[1]}")
    r = support_radii_sq.to(dtype)
    centre = s.mean(0, keepdim=True)
    q, s = q - centre, s - centre
    s_sq = (s * s).sum(1)
    inside = 0
    for start in range(0, q.shape[0], batch_size):
        d = _sq_distances(q[start:start + batch_size], s, s_sq)
        inside += int((d <= r[None, :]).any(1).sum())
    return inside / q.shape[0]


def precision_recall(features_fake, features_real, k: int = 3, batch_size: int = 1024,
                     dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    """Improved precision and recall of fake features against real features.

    Args:
        features_fake: (N1, F), features_real: (N2, F) arrays or tensors, N1, N2 > k. The paper uses
            equal sizes (50k / 10k); unequal sizes are allowed but change the radii.
        k: nearest-neighbour index for the radii (default 3, as the paper).
        batch_size: rows per distance block (memory batch_size x N floats).
        dtype: computation dtype (default float32; use torch.float64 for bit-exact comparisons).

    Returns:
        (precision, recall): Python floats in [0, 1].
    """
    fake = feature_matrix(features_fake, "features_fake", dtype)
    real = feature_matrix(features_real, "features_real", dtype)
    if fake.shape[1] != real.shape[1]:
        raise ValueError(f"feature dimensions differ: fake {fake.shape[1]}, real {real.shape[1]}")
    real_r = knn_radii(real, k, batch_size, dtype)
    fake_r = knn_radii(fake, k, batch_size, dtype)
    precision = manifold_coverage(fake, real, real_r, batch_size, dtype)
    recall = manifold_coverage(real, fake, fake_r, batch_size, dtype)
    return precision, recall
