"""Pixel ranges and the attack radius that goes with them.

The paper's generator ends in a sigmoid, so images live in [0, 1] and the attack radius is
delta = 0.05. With a tanh output the images live in [-1, 1], twice as wide, and the same ball
is delta = 0.1. Everywhere in robustgan a radius given by the user is in [0, 1] pixel units
and is scaled with :func:`delta_for_range`.
"""
from __future__ import annotations

import torch

#: output range name -> (low, high)
PIXEL_RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}

#: the paper's attack radius for images in [0, 1]
DEFAULT_DELTA = 0.05


def check_range(out_range: str) -> tuple[float, float]:
    try:
        return PIXEL_RANGES[out_range]
    except KeyError:
        raise ValueError(f"unknown output range {out_range!r}; choose 'sigmoid' ([0, 1]) or 'tanh' ([-1, 1])") from None


def delta_for_range(delta01: float, out_range: str) -> float:
    """Convert a radius in [0, 1] pixel units to the model's pixel range."""
    lo, hi = check_range(out_range)
    return float(delta01) * (hi - lo)


def uint8_to_range(x: torch.Tensor, out_range: str) -> torch.Tensor:
    """uint8 images (any shape) -> float32 in the model's range."""
    lo, hi = check_range(out_range)
    return x.float().div_(255.0).mul_(hi - lo).add_(lo)


def range_to_uint8(x: torch.Tensor, out_range: str) -> torch.Tensor:
    """Float images in the model's range -> uint8 (rounded, clamped)."""
    lo, hi = check_range(out_range)
    y = (x.detach().float() - lo) / (hi - lo)
    return (y.clamp(0, 1) * 255.0).round().to(torch.uint8)
