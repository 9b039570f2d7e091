"""Inception Score (Salimans et al. 2016): exp( E_x KL( p(y|x) || p(y) ) ), averaged over splits.

The usual protocol (the original TensorFlow code, torch-fidelity) splits the N samples into 10
consecutive parts, rows ``[k * N // splits, (k + 1) * N // splits)`` for part k (so every row is used
and part sizes differ by at most one), computes p(y) as the mean prediction within each part, and reports the mean and standard
deviation (ddof=0) of the per-split scores. With the FID Inception weights the class probabilities
are the softmax over all 1008 outputs of the *bias-free* logits pool3 @ fc.weight^T (that is what the
original code computes; see :meth:`robustgan.metrics.inception.FIDInceptionV3.forward`).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["inception_score"]


def inception_score(predictions, splits: int = 10, logits: bool = False,
                    seed: int | None = None) -> tuple[float, float]:
    """Inception Score from class predictions.

    Args:
        predictions: (N, K) array or tensor: class probabilities (rows >= 0 summing to 1, checked to
            1e-3), or logits when ``logits=True`` (then log_softmax is applied, exact for zeros).
        splits: number of parts (default 10); part k is rows [k * N // splits, (k + 1) * N // splits),
            so every row is used, as in the original code and torch-fidelity. Needs N >= splits.
        logits: whether ``predictions`` are unnormalised logits.
        seed: if not None, rows are shuffled with this seed before splitting (torch-fidelity shuffles;
            the original code does not). Default None: keep the given order.

    Returns:
        (is_mean, is_std): Python floats, 1 <= IS <= K.
    """
    p = predictions.detach() if isinstance(predictions, torch.Tensor) else torch.as_tensor(np.asarray(predictions))
    if p.ndim != 2:
        raise ValueError(f"predictions must be (N, K), got shape {tuple(p.shape)}")
    p = p.to(device="cpu", dtype=torch.float64)
    n = p.shape[0]
    if splits < 1 or n < splits:
        raise ValueError(f"need at least `splits` ({splits}) samples, got {n}")
    if logits:
        log_p = torch.log_softmax(p, dim=1)
        p = log_p.exp()
    else:
        if (p < 0).any() or not torch.allclose(p.sum(1), torch.ones(n, dtype=p.dtype), atol=1e-3):
            raise ValueError("probabilities must be non-negative and sum to 1 per row; pass logits=True for logits")
        p = p / p.sum(1, keepdim=True)
        log_p = None
    if seed is not None:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
        p = p[perm]
        log_p = None if log_p is None else log_p[perm]
    scores = []
    for k in range(splits):
        lo, hi = k * n // splits, (k + 1) * n // splits
        part = p[lo:hi]
        p_y = part.mean(0, keepdim=True)
        # KL(p || p_y) = sum p log p - sum p log p_y; xlogy makes 0 log 0 = 0 for one-hot predictions
        if log_p is None:
            plogp = torch.special.xlogy(part, part)
        else:
            plogp = part * log_p[lo:hi]
        kl = (plogp - torch.special.xlogy(part, p_y)).sum(1)
        scores.append(float(torch.exp(kl.mean())))
    scores = np.array(scores)
    return float(scores.mean()), float(scores.std())
