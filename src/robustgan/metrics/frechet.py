"""Frechet distance between two Gaussians fitted to feature sets (FID when the features are Inception pool3).

    FD = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr( (S1 S2)^(1/2) )

S1 S2 is not symmetric, but it is similar to the symmetric positive semi-definite matrix
M = A^T S2 A for any factor S1 = A A^T (the non-zero eigenvalues agree), so
tr((S1 S2)^(1/2)) = sum_i sqrt(lambda_i(M)). The default route takes A from LAPACK's pivoted Cholesky
factorisation, which stops at the numerical rank, so rank-deficient covariances (fewer samples than
dimensions) are as cheap and as exact as full-rank ones; then it needs only the eigenvalues of the
symmetric M. Symmetric solvers are backward stable, several times faster than a general matrix
square root at 2048-d, and never produce complex numbers: eigenvalues that round-off pushes below
zero are clipped to zero, so no eps offset is needed.

:func:`frechet_distance_sqrtm` is the classic route (pytorch-fid, the TTUR code): scipy.linalg.sqrtm of
the product, with an eps * I offset when the product is near singular. It is kept as an independent
reference for tests and benchmarks.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import scipy.linalg.lapack

__all__ = ["feature_statistics", "frechet_distance", "frechet_distance_sqrtm", "frechet_distance_from_features"]


def _as_float64_2d(features, name: str = "features") -> np.ndarray:
    if hasattr(features, "detach"):  # torch tensor
        features = features.detach().cpu().double().numpy()
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N, F), got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows to estimate a covariance, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf values")
    return x


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature set.

    Args:
        features: (N, F) numpy array or torch tensor, N >= 2, any float dtype.

    Returns:
        (mu, sigma): float64 numpy arrays of shape (F,) and (F, F); sigma uses the unbiased N - 1
        denominator, as numpy.cov and pytorch-fid do.
    """
    x = _as_float64_2d(features)
    mu = x.mean(axis=0)
    centred = x - mu
    sigma = centred.T @ centred / (x.shape[0] - 1)
    return mu, sigma


def _check_stats(mu1, sigma1, mu2, sigma2):
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = mu1.shape[0]
    if mu1.ndim != 1 or mu2.shape != (d,):
        raise ValueError(f"means must be vectors of the same length, got shapes {mu1.shape} and {mu2.shape}")
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"covariances must be ({d}, {d}) to match the means, got {sigma1.shape} and {sigma2.shape}"
        )
    for name, a in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or inf values")
    # symmetrise: covariances read back from disk or accumulated in float32 can be off by round-off
    sigma1 = 0.5 * (sigma1 + sigma1.T)
    sigma2 = 0.5 * (sigma2 + sigma2.T)
    return mu1, sigma1, mu2, sigma2


def _psd_factor(sigma: np.ndarray) -> np.ndarray:
    """A (F, r) with A A^T = sigma for symmetric PSD sigma, r its numerical rank.

    LAPACK's pivoted Cholesky (dpstrf) stops at the numerical rank (pivots below F * eps * max(diag)),
    which makes it fast and exact for rank-deficient covariances. If it reports an error we fall back
    to sigma^(1/2) from a symmetric eigendecomposition with round-off-negative eigenvalues clipped.
    """
    c, piv, rank, info = scipy.linalg.lapack.dpstrf(sigma, lower=1)
    if info >= 0 and rank > 0:
        factor = np.empty((sigma.shape[0], rank))
        factor[piv - 1] = np.tril(c)[:, :rank]
        return factor
    w, v = scipy.linalg.eigh(sigma, check_finite=False)
    return v * np.sqrt(np.clip(w, 0.0, None))


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((S1 S2)^(1/2)) for symmetric PSD S1, S2.

    For any factor A with S1 = A A^T, S1 S2 = A (A^T S2) has the same non-zero eigenvalues as the
    symmetric PSD matrix A^T S2 A, so the trace is sum sqrt(eigvalsh(A^T S2 A)).
    """
    factor = _psd_factor(sigma1)
    m = factor.T @ sigma2 @ factor
    m = 0.5 * (m + m.T)
    lam = scipy.linalg.eigvalsh(m, check_finite=False)
    return float(np.sqrt(np.clip(lam, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), computed in float64.

    Args:
        mu1, mu2: (F,) means. sigma1, sigma2: (F, F) symmetric positive semi-definite covariances
            (rank-deficient ones are fine, e.g. from N < F samples).
        eps: offset added to both diagonals only if the eigen route fails to give a finite value
            (it has not been seen to; kept for parity with pytorch-fid's signature). Default 1e-6.

    Returns:
        The squared Frechet distance as a Python float >= 0 (rounding can leave values of order
        1e-12 * scale below zero; they are clipped to 0). FD(x, x) is 0 up to round-off.
    """
    mu1, sigma1, mu2, sigma2 = _check_stats(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    tr_covmean = _trace_sqrt_product(sigma1, sigma2)
    if not np.isfinite(tr_covmean):
        offset = np.eye(sigma1.shape[0]) * eps
        tr_covmean = _trace_sqrt_product(sigma1 + offset, sigma2 + offset)
    fd = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    return max(fd, 0.0)


def frechet_distance_sqrtm(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Reference route: the same distance with scipy.linalg.sqrtm(sigma1 @ sigma2), as pytorch-fid does.

    If the square root is not finite (a near-singular product), eps * I is added to both covariances
    and the root recomputed. A small imaginary part from round-off is dropped; a large one
    (> 1e-3 of the largest entry) raises ValueError. Slower than :func:`frechet_distance` (a
    general Schur decomposition); use it to cross-check.

    Args/Returns: as :func:`frechet_distance`.
    """
    mu1, sigma1, mu2, sigma2 = _check_stats(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm warns on singular input; we check the result ourselves
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.all(np.isfinite(covmean)):
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        scale = max(np.abs(covmean).max(), 1e-300)
        if np.abs(covmean.imag).max() > 1e-3 * scale:
            raise ValueError("matrix square root has a large imaginary component; are the covariances PSD?")
        covmean = covmean.real
    fd = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))
    return max(fd, 0.0)


def frechet_distance_from_features(features1, features2) -> float:
    """FD between two feature sets (N1, F) and (N2, F): statistics, then :func:`frechet_distance`."""
    mu1, s1 = feature_statistics(features1)
    mu2, s2 = feature_statistics(features2)
    return frechet_distance(mu1, s1, mu2, s2)
