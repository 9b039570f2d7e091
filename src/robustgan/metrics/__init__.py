"""Evaluation metrics: Frechet distance (FID), KID, Inception Score, precision/recall, 2-D toy metrics.

Entry points:

* :func:`compare` (compare_sets.py): metrics between two image sets (folders, named data sets,
  stats files, tensors); the Python side of ``robustgan fd A B``.
* :func:`compute_metrics` (evaluate.py): fake uint8 images + reference -> dict of metrics.
* :func:`reference_stats` (reference.py): cached statistics of a real data set.
* :func:`get_extractor` / :func:`extract_features` (features.py): "inception" (2048-d FID Inception,
  pytorch-fid weights) and "classifier" (128-d Fashion-MNIST classifier), a registry of extractors.
* :func:`generate_samples` (sampling.py): a generator's samples for evaluation, seeded.
* The metric registry (registry.py): :func:`get_metric`, :func:`register_metric`,
  :func:`metric_directions`.
* The metric functions themselves work on feature matrices: :func:`frechet_distance`,
  :func:`feature_statistics`, :func:`kid`, :func:`inception_score`, :func:`precision_recall`,
  :func:`mode_stats`, :func:`wasserstein1`.

See docs/metrics.md for which metric to use when.
"""
from robustgan.metrics.compare_sets import compare
from robustgan.metrics.evaluate import compute_metrics
from robustgan.metrics.features import extract_features, get_extractor, register_extractor
from robustgan.metrics.frechet import feature_statistics, frechet_distance, frechet_distance_sqrtm
from robustgan.metrics.inception_score import inception_score
from robustgan.metrics.kid import kid
from robustgan.metrics.precision_recall import precision_recall
from robustgan.metrics.reference import reference_stats
from robustgan.metrics.registry import Metric, get_metric, metric_directions, register_metric
from robustgan.metrics.sampling import generate_samples
from robustgan.metrics.toy import mode_stats, wasserstein1

__all__ = [
    "compare", "compute_metrics", "extract_features", "get_extractor", "register_extractor", "feature_statistics",
    "frechet_distance", "frechet_distance_sqrtm", "inception_score", "kid", "precision_recall", "reference_stats",
    "Metric", "get_metric", "metric_directions", "register_metric", "generate_samples", "mode_stats", "wasserstein1",
]
