"""Evaluation metrics: Frechet distance (FID), KID, Inception Score, precision/recall, 2-D toy metrics.

Entry points:

* :func:`compare` (compare.py): metrics between two image sets (folders, named data sets, tensors),
  the Python side of ``robustgan fd A B``.
* :func:`compute_metrics` (evaluate.py): fake uint8 images + reference -> dict of metrics.
* :func:`reference_stats` (reference.py): cached statistics of a real data set.
* :func:`get_extractor` / :func:`extract_features` (features.py): "inception" (2048-d FID Inception,
  pytorch-fid weights) and "classifier" (128-d Fashion-MNIST classifier).
* :func:`generate_samples` (sampling.py): a generator's samples for evaluation, seeded.
* The metric registry (registry.py): :func:`get_metric`, :func:`register_metric`,
  :func:`metric_directions`.
* The metric functions themselves work on feature matrices: :func:`frechet_distance`,
  :func:`feature_statistics`, :func:`kid`, :func:`inception_score`, :func:`precision_recall`,
  :func:`mode_stats`, :func:`wasserstein1`.

Names are imported on first use, so reading the registry does not load torch.
See docs/metrics.md for which metric to use when.
"""
from __future__ import annotations

import importlib

_WHERE = {
    "compare": "compare", "compute_metrics": "evaluate", "extract_features": "features",
    "get_extractor": "features", "register_extractor": "features", "available_extractors": "features",
    "feature_statistics": "frechet", "frechet_distance": "frechet", "frechet_distance_sqrtm": "frechet",
    "inception_score": "inception_score", "kid": "kid", "precision_recall": "precision_recall",
    "reference_stats": "reference", "mode_stats": "toy", "wasserstein1": "toy",
    "generate_samples": "sampling", "get_metric": "registry", "register_metric": "registry",
    "metric_directions": "registry", "Metric": "registry",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
