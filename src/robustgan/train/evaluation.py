"""Evaluation of a generator during or after training (glue between the trainer and robustgan.metrics)."""
from __future__ import annotations

import torch

from ..ranges import range_to_uint8


def _generate(G, n: int, device, batch: int = 500, seed: int = 2024, autocast=None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    outs = []
    was = G.training
    G.eval()
    with torch.no_grad():
        for i in range(0, n, batch):
            z = torch.randn(min(batch, n - i), G.z_dim, generator=g).to(device)
            outs.append(G(z).float().cpu())
    G.train(was)
    return torch.cat(outs)


def evaluate_samples(samples: torch.Tensor, cfg: dict, metrics=None, *, extractor=None, seed: int = 0,
                     weights: str | None = None, refresh: bool = False, **metric_options) -> dict:
    """Metrics of generated ``samples`` (model range, or 2-D points) against the run's data.

    2-D data: modes covered, high-quality fraction (within 3 std of a mode) and the exact W1 to the
    true mixture (1000 points). Images: :func:`robustgan.metrics.evaluate.compute_metrics` (fd / fid,
    kid, pr, is) in the feature space ``extractor`` (default ``log.extractor``; "auto" = the
    Fashion-MNIST classifier for gray images, Inception otherwise) against the cached reference
    statistics of the training split. ``weights`` is a path to the Inception weights file;
    ``refresh`` recomputes the reference statistics; ``metric_options`` go to ``compute_metrics``
    (e.g. ``kid_subsets``, ``pr_k``).
    """
    from .loop import TOY_NAMES

    metrics = list(metrics or cfg["log"]["metrics"])
    name = cfg["data"]["name"]
    if name in TOY_NAMES:
        from ..data.toy import get_toy
        from ..metrics.toy import mode_stats, wasserstein1
        toy = get_toy(name)
        out: dict = {}
        if toy.centers is not None:
            stats = mode_stats(samples, toy.centers, toy.std)
            out.update({k: v for k, v in stats.items() if k in ("modes_covered", "high_quality_fraction", "num_modes")})
        real = toy.sample(len(samples), generator=torch.Generator().manual_seed(99 + seed))
        out["w1"] = wasserstein1(samples[:1000], real[:1000])
        return out
    from ..metrics.evaluate import compute_metrics
    from ..metrics.features import get_extractor
    from ..metrics.reference import reference_stats

    images = range_to_uint8(samples, cfg["model"]["out_range"])
    extractor = extractor or cfg["log"]["extractor"]
    if extractor == "auto":
        extractor = "classifier" if images.shape[1] == 1 else "inception"
    image_metrics = [m for m in metrics if m in ("fd", "fid", "kid", "pr", "is")]
    if not image_metrics:
        raise ValueError(f"no image metric among {metrics}; choose from fd (fid), kid, pr, is")
    ext = get_extractor(extractor, weights=weights) if (weights and extractor == "inception") else get_extractor(extractor)
    ref = reference_stats(name, split=cfg["data"]["split"], extractor=ext, root=cfg["data"]["root"],
                          img_size=cfg["data"]["img_size"], download=cfg["data"]["download"], refresh=refresh)
    return compute_metrics(images, ref, metrics=image_metrics, extractor=ext, seed=seed, **metric_options)


def evaluate_generator(trainer, n: int) -> dict:
    G = trainer.G_ema if trainer.G_ema is not None else trainer.G
    samples = _generate(G, n, trainer.device)
    return evaluate_samples(samples, trainer.cfg)
