"""The metric registry: one entry per metric, declaring what the rest of the code needs to know.

Each :class:`Metric` says what it needs (``"features"`` of the images in an extractor's space,
the Inception ``"logits"``, or 2-D ``"points"`` with their toy distribution), whether it needs a
reference, its output keys with their direction (``"min"``: smaller is better, ``"max"``: larger
is better, ``None``: a spread or a count, not ranked), its options with defaults, and a
``compute(inputs, **options) -> dict`` function. :func:`robustgan.metrics.compute_metrics`, the
training-time evaluation, ``robustgan eval`` / ``robustgan fd`` and the experiment tables'
:data:`robustgan.experiments.results.METRIC_DIRECTION` all read this table, so adding a metric
is one :func:`register_metric` call plus its test.

Its own code imports numpy and torch only inside the compute functions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Metric", "MetricInputs", "register_metric", "get_metric", "available_metrics", "metric_names",
           "metric_directions", "frechet_key", "METRIC_REGISTRY"]


@dataclass
class MetricInputs:
    """What a metric's ``compute`` receives.

    fake: a :class:`robustgan.metrics.evaluate.FeatureSet` of the generated images (features (N, F)
        and/or their mean and covariance), or None for 2-D data.
    reference: stats dict of the real data (mu, sigma, features), or None.
    logits: Inception bias-free logits (N, 1008) of the generated images, or None.
    extractor: the feature space's name ("classifier", "inception", ...), or None for 2-D data.
    points: generated 2-D points (N, 2) and toy: their toy distribution (2-D data only).
    seed: seeds subsets (KID, precision/recall subsampling, the W1 reference sample).
    """

    fake: object = None
    reference: dict | None = None
    logits: object = None
    extractor: str | None = None
    points: object = None
    toy: object = None
    seed: int = 0


@dataclass(frozen=True)
class Metric:
    """One metric. ``keys``: output key -> "min" / "max" / None; ``primary``: the key that ranks runs
    when the metric is named by its ``name`` (None: not rankable as a whole, e.g. precision/recall);
    ``needs``: "features", "logits" or "points"; ``extractors``: the feature spaces it is defined in
    (None: any); ``options``: option name -> default; ``aliases``: other names that request it."""

    name: str
    needs: str
    keys: dict
    compute: Callable
    primary: str | None = None
    needs_reference: bool = True
    extractors: tuple | None = None
    options: dict = field(default_factory=dict)
    aliases: tuple = ()
    doc: str = ""

    def __post_init__(self):
        if self.needs not in ("features", "logits", "points"):
            raise ValueError(f"metric {self.name!r}: needs must be features, logits or points, not {self.needs!r}")
        bad = {k: d for k, d in self.keys.items() if d not in ("min", "max", None)}
        if bad:
            raise ValueError(f"metric {self.name!r}: directions must be 'min', 'max' or None, got {bad}")
        if self.primary is not None and self.keys.get(self.primary) is None:
            raise ValueError(f"metric {self.name!r}: primary key {self.primary!r} needs a direction in keys")


METRIC_REGISTRY: dict[str, Metric] = {}
_ALIASES: dict[str, str] = {}


def register_metric(metric: Metric) -> Metric:
    """Add (or replace) ``metric`` and its aliases; returns it."""
    for alias, target in list(_ALIASES.items()):
        if target == metric.name:
            del _ALIASES[alias]
    METRIC_REGISTRY[metric.name] = metric
    for alias in metric.aliases:
        _ALIASES[alias] = metric.name
    return metric


def get_metric(name: str) -> Metric:
    """The metric called ``name`` (or one of its aliases); ValueError listing the choices otherwise."""
    key = _ALIASES.get(name, name)
    if key not in METRIC_REGISTRY:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(metric_names())}")
    return METRIC_REGISTRY[key]


def available_metrics(needs: tuple[str, ...] | None = None) -> list[Metric]:
    """Registered metrics, optionally only those whose ``needs`` is in ``needs``."""
    return [m for m in METRIC_REGISTRY.values() if needs is None or m.needs in needs]


def metric_names(needs: tuple[str, ...] | None = None, aliases: bool = True) -> tuple[str, ...]:
    """Names (and aliases) that may be requested, e.g. ("fd", "fid", "kid", "pr", "is", ...)."""
    out = []
    for m in available_metrics(needs):
        out.append(m.name)
        if aliases:
            out.extend(m.aliases)
    return tuple(out)


def metric_directions() -> dict[str, str]:
    """Every rankable name -> "min" or "max": each output key with a direction, and each metric's
    name and aliases (ranked by its primary key)."""
    out: dict[str, str] = {}
    for m in METRIC_REGISTRY.values():
        for key, direction in m.keys.items():
            if direction is not None:
                out.setdefault(key, direction)
        if m.primary is not None:
            for name in (m.name, *m.aliases):
                out.setdefault(name, m.keys[m.primary])
    return out


def frechet_key(extractor: str | None) -> str:
    """Result key of the Frechet distance in a feature space: "fid" for Inception, "fd" otherwise."""
    return "fid" if extractor == "inception" else "fd"


# ---------------------------------------------------------------------------------------- the metrics
def _need_ref_features(inputs: MetricInputs, what: str):
    import numpy as np
    feats = inputs.reference.get("features")
    if feats is None or len(feats) < 2:
        raise ValueError(f"the reference has no raw features, which {what} needs")
    return np.asarray(feats, dtype=np.float32)


def _subsample(features, max_rows: int, seed: int):
    import numpy as np
    if features.shape[0] <= max_rows:
        return features
    idx = np.sort(np.random.default_rng(seed).choice(features.shape[0], size=max_rows, replace=False))
    return features[idx]


def _fd(inputs: MetricInputs) -> dict:
    from robustgan.metrics.frechet import frechet_distance
    mu, sigma = inputs.fake.stats()
    value = frechet_distance(mu, sigma, inputs.reference["mu"], inputs.reference["sigma"])
    return {frechet_key(inputs.extractor): value}


def _kid(inputs: MetricInputs, kid_subsets: int = 100, kid_subset_size: int = 1000) -> dict:
    from robustgan.metrics.kid import kid
    mean, std = kid(inputs.fake.require_features("KID"), _need_ref_features(inputs, "KID"),
                    num_subsets=kid_subsets, subset_size=kid_subset_size, seed=inputs.seed)
    return {"kid_mean": mean, "kid_std": std}


def _pr(inputs: MetricInputs, pr_k: int = 3, max_pr: int = 10000) -> dict:
    from robustgan.metrics.precision_recall import precision_recall
    f = _subsample(inputs.fake.require_features("precision/recall"), max_pr, inputs.seed)
    r = _subsample(_need_ref_features(inputs, "precision/recall"), max_pr, inputs.seed + 1)
    precision, recall = precision_recall(f, r, k=pr_k, batch_size=1024)
    return {"precision": precision, "recall": recall}


def _is(inputs: MetricInputs, is_splits: int = 10) -> dict:
    from robustgan.metrics.inception_score import inception_score
    mean, std = inception_score(inputs.logits, splits=is_splits, logits=True)
    return {"is_mean": mean, "is_std": std}


def _modes(inputs: MetricInputs) -> dict:
    from robustgan.metrics.toy import mode_stats
    if inputs.toy.centers is None:
        return {}
    stats = mode_stats(inputs.points, inputs.toy.centers, inputs.toy.std)
    return {k: stats[k] for k in ("modes_covered", "high_quality_fraction", "num_modes")}


def _w1(inputs: MetricInputs, w1_n: int = 1000) -> dict:
    import torch

    from robustgan.metrics.toy import wasserstein1
    n = min(w1_n, len(inputs.points))
    real = inputs.toy.sample(len(inputs.points), generator=torch.Generator().manual_seed(99 + inputs.seed))
    return {"w1": wasserstein1(inputs.points[:n], real[:n])}


register_metric(Metric(
    "fd", "features", {"fd": "min", "fid": "min"}, _fd, primary="fd", aliases=("fid",),
    doc="Frechet distance between Gaussian fits of the features; key 'fid' in Inception space, 'fd' "
        "in any other (requesting 'fid' needs the inception extractor)"))
register_metric(Metric(
    "kid", "features", {"kid_mean": "min", "kid_std": None}, _kid, primary="kid_mean",
    options={"kid_subsets": 100, "kid_subset_size": 1000},
    doc="kernel inception distance: unbiased MMD^2 with the cubic kernel, mean and std over subsets"))
register_metric(Metric(
    "pr", "features", {"precision": "max", "recall": "max"}, _pr, options={"pr_k": 3, "max_pr": 10000},
    doc="improved precision and recall (Kynkaanniemi et al. 2019)"))
register_metric(Metric(
    "is", "logits", {"is_mean": "max", "is_std": None}, _is, primary="is_mean", needs_reference=False,
    extractors=("inception",), options={"is_splits": 10},
    doc="Inception Score over splits (no reference)"))
register_metric(Metric(
    "modes", "points", {"modes_covered": "max", "high_quality_fraction": "max", "num_modes": None}, _modes,
    primary="modes_covered", needs_reference=False,
    doc="2-D mixtures: modes covered and the fraction of samples within 3 std of a mode"))
register_metric(Metric(
    "w1", "points", {"w1": "min"}, _w1, primary="w1", needs_reference=False, options={"w1_n": 1000},
    doc="2-D data: exact Wasserstein-1 distance to a sample of the true distribution"))
