"""Evaluation of a generator during or after training (glue between the trainer and robustgan.metrics)."""
from __future__ import annotations

import torch

from ..data.toy import TOY_DATASETS
from ..metrics.sampling import generate_samples
from ..ranges import range_to_uint8

__all__ = ["evaluate_samples", "evaluate_generator", "resolve_extractor"]


def resolve_extractor(extractor: str, channels: int) -> str:
    """"auto" -> "classifier" for 1-channel images, "inception" otherwise; other names unchanged."""
    if extractor == "auto":
        return "classifier" if channels == 1 else "inception"
    return extractor


def evaluate_samples(samples: torch.Tensor, cfg: dict, metrics=None, *, extractor=None, seed: int = 0,
                     weights: str | None = None, refresh: bool = False, device="cpu", progress: bool = False,
                     reference_images: torch.Tensor | None = None, **metric_options) -> dict:
    """Metrics of generated ``samples`` (model range, or 2-D points) against the run's data.

    2-D data: the registry's point metrics (modes covered, high-quality fraction within 3 std of a
    mode, exact W1 to the true mixture on 1000 points); those among ``metrics``, or all of them when
    ``metrics`` names none (the default ``log.metrics`` lists image metrics). Images:
    :func:`robustgan.metrics.evaluate.compute_metrics` (fd / fid, kid, pr, is) in the feature space
    ``extractor`` (default ``log.extractor``; "auto" = the Fashion-MNIST classifier for gray images,
    Inception otherwise) against the cached reference statistics of the training split, computed
    on ``device``. ``weights`` is a path to the Inception weights file; ``refresh`` recomputes the
    reference statistics; ``progress`` shows what is being computed (stderr); ``metric_options`` go
    to ``compute_metrics`` (e.g. ``kid_subsets``, ``pr_k``). ``reference_images`` (uint8
    (N, C, H, W)) replaces the named data set's statistics, e.g. for a user's own training data.
    """
    from ..metrics.registry import MetricInputs, available_metrics, get_metric

    metrics = list(metrics or cfg["log"]["metrics"])
    name = cfg["data"]["name"]
    if name in TOY_DATASETS:
        from ..data.toy import get_toy
        names = dict.fromkeys(get_metric(m).name for m in metrics if get_metric(m).needs == "points")
        point_metrics = [get_metric(m) for m in names] or available_metrics(("points",))
        inputs = MetricInputs(points=samples, toy=get_toy(name), seed=seed)
        out: dict = {}
        for metric in point_metrics:
            out.update(metric.compute(inputs))
        return out
    from ..metrics.evaluate import compute_metrics
    from ..metrics.features import get_extractor
    from ..metrics.reference import reference_stats

    images = range_to_uint8(samples, cfg["model"]["out_range"])
    extractor = resolve_extractor(extractor or cfg["log"]["extractor"], images.shape[1])
    image_metrics = [m for m in metrics if get_metric(m).needs != "points"]
    if not image_metrics:
        raise ValueError(f"no image metric among {metrics}; choose from fd (fid), kid, pr, is")
    kw = {"weights": weights} if (weights and extractor == "inception") else {}
    ext = get_extractor(extractor, device=device, **kw)
    if reference_images is not None:
        ref = reference_images
    else:
        ref = reference_stats(name, split=cfg["data"]["split"], extractor=ext, root=cfg["data"]["root"],
                              img_size=cfg["data"]["img_size"], download=cfg["data"]["download"], refresh=refresh,
                              progress=progress)
    return compute_metrics(images, ref, metrics=image_metrics, extractor=ext, seed=seed, progress=progress,
                           **metric_options)


def evaluate_generator(trainer, n: int) -> dict:
    """Metrics of ``n`` samples of the trainer's EMA generator (its G when it keeps no EMA copy),
    sampled and featurised on ``trainer.device``."""
    G = trainer.G_ema if trainer.G_ema is not None else trainer.G
    samples = generate_samples(G, n, trainer.device)
    # A user's own data (Trainer(..., data=...)) is its own reference: at most 10,000 of its images.
    reference = None
    if getattr(trainer, "user_data", False) and getattr(trainer.data, "images", None) is not None:
        images = trainer.data.images
        keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:10000]
        reference = images[keep.sort().values]
    return evaluate_samples(samples, trainer.cfg, device=trainer.device, reference_images=reference,
                            progress=bool(trainer.cfg["log"].get("progress", False)))
