"""Samples of a generator for evaluation: seeded, in batches, without gradients."""
from __future__ import annotations

import torch

__all__ = ["generate_samples"]


def generate_samples(G, n: int, device="cpu", seed: int = 2024, batch: int = 500) -> torch.Tensor:
    """``n`` samples of ``G`` as a float32 CPU tensor in the model's output range ((n, C, H, W) images
    or (n, 2) points).

    ``G`` needs ``z_dim`` and maps z ~ N(0, I) of shape (B, z_dim) to samples. All n noise vectors
    are drawn at once on the CPU from ``torch.Generator().manual_seed(seed)`` (torch's normal
    sampler gives other numbers for other tensor sizes, so drawing per batch would tie the samples
    to ``batch``); the samples depend on neither ``device`` nor ``batch`` beyond float round-off. ``G`` runs in eval mode on ``device`` (it must already be
    there) and is put back in its previous mode.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    z_all = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    outs = []
    was = G.training
    G.eval()
    try:
        with torch.no_grad():
            for i in range(0, n, batch):
                z = z_all[i:i + batch].to(device)
                outs.append(G(z).float().cpu())
    finally:
        G.train(was)
    return torch.cat(outs)
