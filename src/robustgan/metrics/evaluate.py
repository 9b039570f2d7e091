"""One call that computes the image metrics for a batch of generated images.

    compute_metrics(fake_uint8, reference, metrics=("fd", "kid", "pr"), extractor="classifier")

Features of the fake images are computed once and shared by every metric. ``reference`` is a stats
dict from :mod:`robustgan.metrics.reference` (or the path of its .npz), or a uint8 image tensor of
real images whose features are computed on the spot.

Result keys (Python floats):

    ============ ==================================================================================
    fd / fid     Frechet distance in the extractor's feature space; called "fid" for "inception"
    kid_mean,    KID (unbiased MMD^2, cubic kernel): mean and std over subsets (subsets of at most
    kid_std      1000 rows; x 1000 is the usual way to quote it)
    precision,   improved precision / recall (k = 3) against at most ``max_pr`` reference rows
    recall
    is_mean,     Inception Score over 10 splits (inception extractor only; needs no reference)
    is_std
    n_fake       number of fake images; n_ref: number of reference images behind mu / sigma
    ============ ==================================================================================
"""
from __future__ import annotations

import os

import numpy as np
import torch

from robustgan.metrics.features import extract_features, get_extractor
from robustgan.metrics.frechet import feature_statistics, frechet_distance
from robustgan.metrics.inception_score import inception_score
from robustgan.metrics.kid import kid
from robustgan.metrics.precision_recall import precision_recall
from robustgan.metrics.reference import load_stats, stats_from_features

__all__ = ["METRICS", "compute_metrics"]

METRICS = ("fd", "fid", "kid", "pr", "is")


def _subsample(features: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    if features.shape[0] <= max_rows:
        return features
    idx = np.sort(np.random.default_rng(seed).choice(features.shape[0], size=max_rows, replace=False))
    return features[idx]


def compute_metrics(fake, reference=None, metrics=("fd", "kid", "pr"), extractor="classifier",
                    batch_size: int = 100, seed: int = 0, device: str = "cpu", kid_subsets: int = 100,
                    kid_subset_size: int = 1000, pr_k: int = 3, max_pr: int = 10000, is_splits: int = 10,
                    progress: bool = False) -> dict:
    """Image-quality metrics of generated images against a reference.

    Args:
        fake: uint8 tensor (N, C, H, W) of generated images (convert model output with
            robustgan.ranges.range_to_uint8), N >= 2.
        reference: stats dict (reference.reference_stats), path of a stats .npz, or a uint8 tensor of
            real images; may be None if only "is" is requested.
        metrics: any of "fd" (alias "fid"), "kid", "pr", "is".
        extractor: "classifier" (128-d, Fashion-MNIST classifier; default), "inception" (2048-d), or a
            FeatureExtractor instance (reuse one across calls to avoid reloading weights).
        batch_size: images per forward pass. seed: seeds KID subsets and PR subsampling (default 0).
        device: for the extractor when given by name.
        kid_subsets, kid_subset_size: KID protocol (defaults 100 x 1000, capped at the sample counts).
        pr_k: k of precision/recall. max_pr: rows of each set used for precision/recall (default 10000).
        is_splits: Inception Score splits (default 10).

    Returns:
        dict of Python floats (see the module docstring for the keys).
    """
    metrics = tuple(dict.fromkeys("fd" if m == "fid" else m for m in metrics))
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"unknown metrics {unknown}; choose from fd (fid), kid, pr, is")
    if not isinstance(fake, torch.Tensor) or fake.dtype != torch.uint8 or fake.ndim != 4:
        raise ValueError("fake must be a uint8 tensor (N, C, H, W); convert with robustgan.ranges.range_to_uint8")
    if fake.shape[0] < 2:
        raise ValueError(f"need at least 2 fake images, got {fake.shape[0]}")

    ext = get_extractor(extractor, device=device)
    if "is" in metrics and not getattr(ext, "has_logits", False):
        raise ValueError("the Inception Score needs extractor='inception'")
    needs_ref = [m for m in metrics if m != "is"]
    if needs_ref and reference is None:
        raise ValueError(f"metrics {needs_ref} need a reference (stats dict, .npz path or real images)")

    with_logits = "is" in metrics
    out = extract_features(ext, fake, batch_size=batch_size, with_logits=with_logits, progress=progress)
    fake_feats, logits = out if with_logits else (out, None)
    fake_np = fake_feats.numpy()
    result: dict = {"n_fake": int(fake.shape[0])}

    if needs_ref:
        if isinstance(reference, (str, os.PathLike)):
            reference = load_stats(reference)
        elif isinstance(reference, torch.Tensor):
            real = extract_features(ext, reference, batch_size=batch_size, progress=progress)
            reference = stats_from_features(real, max_features=max(max_pr, real.shape[0]), seed=seed,
                                            extractor=ext.name)
        elif not isinstance(reference, dict):
            raise ValueError("reference must be a stats dict, a stats .npz path or a uint8 image tensor")
        ref_name = reference.get("extractor")
        if ref_name is not None and str(ref_name) != ext.name:
            raise ValueError(f"reference statistics were computed with the {ref_name!r} extractor, "
                             f"not {ext.name!r}; recompute them or change extractor")
        mu = np.asarray(reference["mu"], dtype=np.float64)
        if mu.shape[0] != fake_np.shape[1]:
            raise ValueError(f"reference features are {mu.shape[0]}-d but the {ext.name} extractor gives "
                             f"{fake_np.shape[1]}-d")
        result["n_ref"] = int(reference.get("n", 0))

    if "fd" in metrics:
        mu_f, sigma_f = feature_statistics(fake_np)
        fd = frechet_distance(mu_f, sigma_f, reference["mu"], reference["sigma"])
        result["fid" if ext.name == "inception" else "fd"] = fd
    if "kid" in metrics or "pr" in metrics:
        ref_feats = reference.get("features")
        if ref_feats is None or len(ref_feats) < 2:
            raise ValueError("the reference has no raw features, which KID and precision/recall need")
        ref_feats = np.asarray(ref_feats, dtype=np.float32)
    if "kid" in metrics:
        result["kid_mean"], result["kid_std"] = kid(fake_np, ref_feats, num_subsets=kid_subsets,
                                                    subset_size=kid_subset_size, seed=seed)
    if "pr" in metrics:
        f = _subsample(fake_np, max_pr, seed)
        r = _subsample(ref_feats, max_pr, seed + 1)
        result["precision"], result["recall"] = precision_recall(f, r, k=pr_k, batch_size=1024)
    if "is" in metrics:
        result["is_mean"], result["is_std"] = inception_score(logits, splits=is_splits, logits=True)
    return result
