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


def evaluate_samples(samples: torch.Tensor, cfg: dict, data=None, metrics=None, n: int | None = None) -> dict:
    """Metrics of generated ``samples`` (model range, or 2-D points) against the run's data.

    2-D data: modes covered, high-quality fraction, and W1 to the true mixture. Images: the
    metrics of :func:`robustgan.metrics.evaluate.compute_metrics` in the feature space chosen by
    ``log.extractor`` ("auto": the Fashion-MNIST classifier for 28x28-like gray data, else
    Inception) against the reference statistics of the training split.
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
            out.update(mode_stats(samples, toy.centers, toy.std))
        real = toy.sample(len(samples), generator=torch.Generator().manual_seed(99))
        out["w1"] = wasserstein1(samples[:2000], real[:2000])
        return out
    from ..metrics.evaluate import compute_metrics
    from ..metrics.reference import reference_statistics

    images = range_to_uint8(samples, cfg["model"]["out_range"])
    extractor = cfg["log"]["extractor"]
    if extractor == "auto":
        extractor = "classifier" if images.shape[1] == 1 else "inception"
    ref = reference_statistics(name, split=cfg["data"]["split"], extractor=extractor, root=cfg["data"]["root"],
                               img_size=cfg["data"]["img_size"])
    return compute_metrics(images, ref, metrics=[m for m in metrics if m in ("fd", "kid", "pr", "is")],
                           extractor=extractor)


def evaluate_generator(trainer, n: int) -> dict:
    G = trainer.G_ema if trainer.G_ema is not None else trainer.G
    samples = _generate(G, n, trainer.device)
    return evaluate_samples(samples, trainer.cfg, trainer.data, n=n)
