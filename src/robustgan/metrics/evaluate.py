"""One call that computes the image metrics for a batch of generated images.

    compute_metrics(fake_uint8, reference, metrics=("fd", "kid", "pr"), extractor="classifier")

Features of the fake images are computed once and shared by every metric. ``reference`` is a stats
dict from :mod:`robustgan.metrics.reference` (or the path of its .npz), or a uint8 image tensor of
real images whose features are computed on the spot. The metrics themselves, their options and
output keys are the entries of :mod:`robustgan.metrics.registry`.

Result keys (Python floats, counts as ints):

    ============ ==================================================================================
    fd / fid     Frechet distance in the extractor's feature space: key "fid" in Inception space,
                 "fd" in any other. Requesting "fid" with another extractor is an error, so a
                 classifier-space number is never reported under the FID name
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
from robustgan.metrics.frechet import feature_statistics
from robustgan.metrics.reference import check_fingerprint, load_stats, stats_from_features
from robustgan.metrics.registry import MetricInputs, get_metric, metric_names

__all__ = ["METRICS", "FeatureSet", "compute_metrics", "metrics_from_features", "resolve_metrics"]

#: the image metrics (and aliases) compute_metrics accepts, from the registry
METRICS = metric_names(("features", "logits"))


class FeatureSet:
    """Features of one image set: the rows (N, F) and/or their mean (F,) and covariance (F, F).

    ``mu`` / ``sigma`` are computed from the rows on first use when not given (as in a stats dict,
    where the rows may be a random subset of the images behind mu and sigma).
    """

    def __init__(self, features=None, mu=None, sigma=None, n: int | None = None):
        if isinstance(features, torch.Tensor):
            features = features.detach().cpu().numpy()
        self.features = None if features is None else np.asarray(features, dtype=np.float32)
        self._mu, self._sigma = mu, sigma
        self.n = int(n if n is not None else (0 if self.features is None else self.features.shape[0]))

    @classmethod
    def from_stats(cls, stats: dict) -> "FeatureSet":
        return cls(stats.get("features"), stats["mu"], stats["sigma"], stats.get("n"))

    @property
    def dim(self) -> int:
        return int(np.asarray(self._mu).shape[0]) if self._mu is not None else int(self.features.shape[1])

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        if self._mu is None:
            self._mu, self._sigma = feature_statistics(self.features)
        return np.asarray(self._mu, dtype=np.float64), np.asarray(self._sigma, dtype=np.float64)

    def require_features(self, what: str) -> np.ndarray:
        if self.features is None or len(self.features) < 2:
            raise ValueError(f"{what} needs raw features of the generated set; these statistics have none")
        return self.features


def resolve_metrics(metrics, extractor_name: str | None = None):
    """Requested names -> list of (requested name, Metric), duplicates removed, checked against the
    feature space: "fid" (and any metric restricted to some extractors, e.g. "is") with another
    extractor is a ValueError saying what to use instead."""
    if isinstance(metrics, str):
        metrics = [metrics]
    out, seen = [], set()
    for name in metrics:
        metric = get_metric(name)
        if metric.needs == "points":
            raise ValueError(f"{name!r} is a metric of 2-D data; for images choose from {', '.join(METRICS)}")
        if extractor_name is not None:
            if name == "fid" and extractor_name != "inception":
                raise ValueError(f"'fid' is the Frechet distance in Inception space, but the extractor is "
                                 f"{extractor_name!r}: ask for 'fd' (reported as 'fd', {extractor_name} space) "
                                 "or use the inception extractor")
            if metric.extractors is not None and extractor_name not in metric.extractors:
                what = "the Inception Score" if metric.name == "is" else f"metric {name!r}"
                raise ValueError(f"{what} needs extractor={' or '.join(map(repr, metric.extractors))}, "
                                 f"not {extractor_name!r}")
        if metric.name not in seen:
            seen.add(metric.name)
            out.append((name, metric))
    if not out:
        raise ValueError(f"no metric requested; choose from {', '.join(METRICS)}")
    return out


def _options_for(metric, options: dict) -> dict:
    return {k: options[k] for k in metric.options if k in options}


def metrics_from_features(fake: FeatureSet, reference: dict | None, metrics, extractor_name: str,
                          logits=None, seed: int = 0, **options) -> dict:
    """The registry's metrics from features already computed (see :func:`compute_metrics`).

    ``fake``: FeatureSet of the generated images; ``reference``: stats dict (mu, sigma, features) or
    None; ``logits``: Inception logits of the fakes (for "is"); ``options``: the metrics' options
    (kid_subsets, kid_subset_size, pr_k, max_pr, is_splits). Unknown options are a ValueError.
    """
    chosen = resolve_metrics(metrics, extractor_name)
    known = {k for _, m in chosen for k in m.options} | {k for m in (get_metric(n) for n in METRICS)
                                                         for k in m.options}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown metric options {unknown}; known: {', '.join(sorted(known))}")
    needs_ref = [name for name, m in chosen if m.needs_reference]
    if needs_ref and reference is None:
        raise ValueError(f"metrics {needs_ref} need a reference (stats dict, .npz path or real images)")
    if any(m.needs == "logits" for _, m in chosen) and logits is None:
        raise ValueError("the Inception Score needs the Inception logits of the generated images")
    result: dict = {"n_fake": fake.n}
    if needs_ref:
        mu = np.asarray(reference["mu"])
        if mu.shape[0] != fake.dim:
            raise ValueError(f"reference features are {mu.shape[0]}-d but the {extractor_name} extractor gives "
                             f"{fake.dim}-d")
        result["n_ref"] = int(reference.get("n", 0))
    inputs = MetricInputs(fake=fake, reference=reference, logits=logits, extractor=extractor_name, seed=seed)
    for _, metric in chosen:
        result.update(metric.compute(inputs, **_options_for(metric, options)))
    return result


def compute_metrics(fake, reference=None, metrics=("fd", "kid", "pr"), extractor="classifier",
                    batch_size: int = 100, seed: int = 0, device: str = "cpu", kid_subsets: int = 100,
                    kid_subset_size: int = 1000, pr_k: int = 3, max_pr: int = 10000, is_splits: int = 10,
                    progress: bool = False) -> dict:
    """Image-quality metrics of generated images against a reference.

    Args:
        fake: uint8 tensor (N, C, H, W) of generated images (convert model output with
            robustgan.ranges.range_to_uint8), N >= 2.
        reference: stats dict (reference.reference_stats), path of a stats .npz, or a uint8 tensor of
            real images; may be None if only "is" is requested. Statistics made with another
            extractor, other weights or another resize convention are refused (ValueError).
        metrics: names from the registry: "fd" (alias "fid", Inception only), "kid", "pr", "is".
        extractor: "classifier" (128-d, Fashion-MNIST classifier; default), "inception" (2048-d), or a
            FeatureExtractor instance (reuse one across calls to avoid reloading weights).
        batch_size: images per forward pass. seed: seeds KID subsets and PR subsampling (default 0).
        device: for the extractor when given by name.
        kid_subsets, kid_subset_size: KID protocol (defaults 100 x 1000, capped at the sample counts).
        pr_k: k of precision/recall. max_pr: rows of each set used for precision/recall (default 10000).
        is_splits: Inception Score splits (default 10).
        progress: tqdm bars for feature extraction.

    Returns:
        dict of Python floats (see the module docstring for the keys).
    """
    if isinstance(metrics, str):
        metrics = [metrics]
    for name in metrics:
        get_metric(name)  # unknown names fail before any extractor is loaded
    if not isinstance(fake, torch.Tensor) or fake.dtype != torch.uint8 or fake.ndim != 4:
        raise ValueError("fake must be a uint8 tensor (N, C, H, W); convert with robustgan.ranges.range_to_uint8")
    if fake.shape[0] < 2:
        raise ValueError(f"need at least 2 fake images, got {fake.shape[0]}")

    ext = get_extractor(extractor, device=device)
    chosen = resolve_metrics(metrics, ext.name)
    needs_ref = [name for name, m in chosen if m.needs_reference]
    if needs_ref and reference is None:
        raise ValueError(f"metrics {needs_ref} need a reference (stats dict, .npz path or real images)")

    with_logits = any(m.needs == "logits" for _, m in chosen)
    out = extract_features(ext, fake, batch_size=batch_size, with_logits=with_logits, progress=progress)
    fake_feats, logits = out if with_logits else (out, None)

    if needs_ref:
        where = "the reference statistics"
        if isinstance(reference, (str, os.PathLike)):
            where = str(reference)
            reference = load_stats(reference)
        elif isinstance(reference, torch.Tensor):
            real = extract_features(ext, reference, batch_size=batch_size, progress=progress)
            reference = stats_from_features(real, max_features=max(max_pr, real.shape[0]), seed=seed,
                                            extractor=ext.name, extractor_fingerprint=ext.fingerprint())
        elif not isinstance(reference, dict):
            raise ValueError("reference must be a stats dict, a stats .npz path or a uint8 image tensor")
        check_fingerprint(reference, ext, where=where)
    return metrics_from_features(FeatureSet(fake_feats), reference if needs_ref else None, metrics, ext.name,
                                 logits=logits, seed=seed, kid_subsets=kid_subsets,
                                 kid_subset_size=kid_subset_size, pr_k=pr_k, max_pr=max_pr, is_splits=is_splits)
