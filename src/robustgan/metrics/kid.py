"""Kernel Inception Distance (Binkowski et al., "Demystifying MMD GANs", ICLR 2018).

KID is the unbiased estimate of the squared maximum mean discrepancy (MMD^2) between the two feature
distributions under the cubic polynomial kernel

    k(x, y) = (gamma * x.y + coef0) ** degree,   gamma = 1 / d, coef0 = 1, degree = 3,

averaged over random subsets of both sets (defaults as torch-fidelity: 100 subsets of 1000 rows,
drawn without replacement within a subset). The per-subset estimator drops the diagonal of the
within-set kernel matrices (so it is unbiased and can be negative) and keeps all cross terms:

    MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m-1)) + sum_{i != j} k(y_i, y_j) / (m (m-1))
              - 2 sum_{i, j} k(x_i, y_j) / m^2

"KID" is used here in any feature space (Inception pool3 or the Fashion-MNIST classifier's).
"""
from __future__ import annotations

import numpy as np
import torch

from .arrays import feature_matrix

__all__ = ["polynomial_kernel", "mmd2_unbiased", "kid"]


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> torch.Tensor:
    """Kernel matrix (N, M) with entries (gamma * x_i.y_j + coef0) ** degree; gamma defaults to 1 / F.

    Args: x (N, F), y (M, F) float tensors (the result has their dtype).
    """
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(x, y, degree: int = 3, gamma: float | None = None, coef0: float = 1.0,
                  dtype: torch.dtype = torch.float64) -> float:
    """Unbiased MMD^2 between two equal-size samples x (m, F) and y (m, F), m >= 2, polynomial kernel.

    Computed in ``dtype`` (default float64). Returns a Python float (may be slightly negative).
    """
    x = feature_matrix(x, "x", dtype)
    y = feature_matrix(y, "y", dtype)
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise ValueError(f"mmd2_unbiased needs two samples of the same size >= 2, got {x.shape[0]} and {y.shape[0]}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} and {y.shape[1]}")
    k_xx = polynomial_kernel(x, x, degree, gamma, coef0)
    k_yy = polynomial_kernel(y, y, degree, gamma, coef0)
    k_xy = polynomial_kernel(x, y, degree, gamma, coef0)
    sum_xx = k_xx.sum() - k_xx.diagonal().sum()
    sum_yy = k_yy.sum() - k_yy.diagonal().sum()
    value = (sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m)
    return float(value)


def kid(features_fake, features_real, num_subsets: int = 100, subset_size: int = 1000, degree: int = 3,
        gamma: float | None = None, coef0: float = 1.0, seed: int = 0,
        dtype: torch.dtype = torch.float64) -> tuple[float, float]:
    """KID: mean and standard deviation of the unbiased MMD^2 over random subsets.

    Args:
        features_fake: (N1, F) array or tensor. features_real: (N2, F), same F.
        num_subsets: number of subsets (default 100, as torch-fidelity).
        subset_size: rows per subset from each set (default 1000), capped at min(N1, N2); at least 2.
        degree, gamma, coef0: the polynomial kernel (defaults 3, 1/F, 1).
        seed: seeds the subset draws (torch.Generator); the same inputs and seed give the same value.
        dtype: computation dtype (default float64, as torch-fidelity's numpy code).

    Returns:
        (kid_mean, kid_std): Python floats; std is the population standard deviation (ddof=0) of the
        per-subset values, as torch-fidelity reports it. Values are usually quoted x 1000.
    """
    x = feature_matrix(features_fake, "features_fake", dtype)
    y = feature_matrix(features_real, "features_real", dtype)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: fake {x.shape[1]}, real {y.shape[1]}")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
    m = min(int(subset_size), x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples in each set, got {x.shape[0]} fake and {y.shape[0]} real")
    gen = torch.Generator().manual_seed(int(seed))
    values = np.empty(num_subsets, dtype=np.float64)
    for i in range(num_subsets):
        xi = x[torch.randperm(x.shape[0], generator=gen)[:m]]
        yi = y[torch.randperm(y.shape[0], generator=gen)[:m]]
        values[i] = mmd2_unbiased(xi, yi, degree, gamma, coef0, dtype)
    return float(values.mean()), float(values.std())
