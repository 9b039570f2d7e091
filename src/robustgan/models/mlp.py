"""An MLP pair for low-dimensional (2-D toy) data, after the WGAN-GP toy networks.

Defaults follow the WGAN-GP toy experiments (Gulrajani et al. 2017): 3 hidden layers of 512 units,
a 2-D latent, no normalisation. Layout (``depth`` hidden layers, ``h`` = width)::

    G: z -> Linear(z_dim, h) -> (depth - 1) x Block -> norm, act -> Linear(h, dim)     (no output activation)
    D: x -> Linear(dim, h)   -> (depth - 1) x Block -> act -> phi (h) -> Linear(h, 1) (w)
    Block(u) = u + Linear(act(norm(u)))   ("residual")   or   Linear(act(norm(u)))   ("plain")

With ``normalisation="none"`` and plain blocks this is exactly Linear-act-Linear-act-Linear-act-Linear.
``normalisation="instance"`` means LayerNorm here (per-sample normalisation over the features).
Weights: Glorot-uniform, zero biases.
"""
from __future__ import annotations

import torch
from torch import nn

from .common import (
    OUT_RANGES,
    Discriminator,
    Generator,
    init_weights,
    make_activation,
    make_norm1d,
    make_output_activation,
)

__all__ = ["MLPBlock", "MLPGenerator", "MLPDiscriminator"]

#: output ranges the MLP generator accepts ("none" = unbounded, the default for 2-D data)
MLP_OUT_RANGES = ("none",) + OUT_RANGES


class MLPBlock(nn.Module):
    """Pre-activation fully connected block at constant width: ``(B, width)`` -> ``(B, width)``."""

    def __init__(self, width: int, nonlinearity: str, normalisation: str, residual: bool = False):
        super().__init__()
        self.residual = residual
        self.norm = make_norm1d(normalisation, width)
        self.act = make_activation(nonlinearity)
        self.linear = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(self.act(self.norm(x)))
        return x + h if self.residual else h

    def extra_repr(self) -> str:
        return f"residual={self.residual}"


def _hidden(width, depth, block, nonlinearity, normalisation) -> nn.Sequential:
    return nn.Sequential(
        *[MLPBlock(width, nonlinearity, normalisation, block == "residual") for _ in range(depth - 1)]
    )


class MLPGenerator(Generator):
    """MLP generator: ``z (B, z_dim)`` -> points ``(B, dim)``.

    Args: z_dim (2), dim (2: data dimension), width (512), depth (3 hidden layers), block ("plain" or
    "residual"), nonlinearity ("relu"), normalisation ("none"; "batch" = BatchNorm1d, "instance" =
    LayerNorm), out_range ("none" = no output activation; "sigmoid" / "tanh" bound the points).
    """

    out_ranges = MLP_OUT_RANGES

    def __init__(
        self,
        z_dim: int = 2,
        dim: int = 2,
        width: int = 512,
        depth: int = 3,
        block: str = "plain",
        nonlinearity: str = "relu",
        normalisation: str = "none",
        out_range: str = "none",
    ):
        super().__init__(z_dim, out_range)
        self.configure(dim=dim, width=width, depth=depth, block=block, nonlinearity=nonlinearity,
                       normalisation=normalisation)
        self.input = nn.Linear(z_dim, width)
        self.blocks = _hidden(width, depth, block, nonlinearity, normalisation)
        self.output = nn.Sequential(
            make_norm1d(normalisation, width),
            make_activation(nonlinearity),
            nn.Linear(width, dim),
            make_output_activation(out_range),
        )
        init_weights(self, "xavier")

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.output(self.blocks(self.input(z)))


class MLPDiscriminator(Discriminator):
    """MLP discriminator: points ``(B, dim)`` -> logits ``(B,)``; ``features(x)`` is ``(B, width)``.

    Args: dim (2), width (512), depth (3 hidden layers), block ("plain"), nonlinearity ("leaky_relu",
    slope 0.2), normalisation ("none"; "batch" = BatchNorm1d, "instance" = LayerNorm), spectral_norm
    (False: True normalises every linear weight).
    """

    def __init__(
        self,
        dim: int = 2,
        width: int = 512,
        depth: int = 3,
        block: str = "plain",
        nonlinearity: str = "leaky_relu",
        normalisation: str = "none",
        spectral_norm: bool = False,
    ):
        super().__init__()
        self.configure(dim=dim, width=width, depth=depth, block=block, nonlinearity=nonlinearity,
                       normalisation=normalisation, spectral_norm=spectral_norm)
        self.input = nn.Linear(dim, width)
        self.blocks = _hidden(width, depth, block, nonlinearity, normalisation)
        self.act = make_activation(nonlinearity)
        self.last_linear = nn.Linear(width, 1)
        self.finish("xavier")

    def compute_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.blocks(self.input(x)))
