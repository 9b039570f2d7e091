"""A DCGAN pair (Radford et al. 2016) with the same settings as the ResNet.

The channel count doubles at every halving of the resolution, with ``width`` channels at the
highest resolution (64 by default). For a 32x32 image and width w::

    G: z -> ConvT 4x4 (valid) -> 4x4x4w -> ConvT 4x4 s2 -> 8x8x2w -> ConvT 4x4 s2 -> 16x16xw
         -> ConvT 4x4 s2 -> 32x32xC -> Sigmoid          (norm + act after every hidden layer)
    D: x -> Conv 4x4 s2 -> 16x16xw -> act -> Conv 4x4 s2 -> 8x8x2w -> norm, act
         -> Conv 4x4 s2 -> 4x4x4w -> norm, act -> head -> phi -> Linear 1 (w)

64x64 adds one stage on each side (8w at 4x4); 28x28 starts from 7x7 with two stages (2w at 7x7).
As in Radford et al., D's first layer has no normalisation, and a layer followed by a
normalisation has no bias.

D's head (the ``d_features`` setting) reads phi off the last map, C = width * 2**(n-1) channels:

* ``"pooled"`` (default): Conv 1x1 (C -> C, bias, no norm) -> act -> global average pool, F = C
  (256 for 32x32 at width 64), the kind of phi the paper's ResNet has. The 1x1 convolution keeps
  phi an unnormalised activation as in the ResNet: an instance-normalised map averages to its norm's
  shift plus a statistic of its own spread, whatever the input's content.
* ``"flat"``: the flattened last map, F = base**2 * C (4096 for 32x32 at width 64, 8192 for 64x64,
  6272 for 28x28): a 4x4 "valid" convolution to one logit -- DCGAN's last layer -- is exactly a
  linear layer on it, so this is Radford et al.'s network.

``block="residual"`` adds a shortcut around every resolution stage but D's first layer and G's
output layer: ``act(norm(conv(x)) + skip(x))``, with ``skip`` a 1x1 convolution (no bias) after a
2x2 average pool (D) or a nearest 2x upsampling (G). It costs a 1x1 convolution per stage, so the
residual DCGAN costs about as much as the plain one (the Table 3 ResNet on 28x28 costs 3-7x more
per iteration on a CPU: docs/benchmarks/pool.md); with the shortcut weights at zero it is the plain network.
``block="plain"`` (default) is Radford et al.'s network, with the same parameter names as before.
Weights: N(0, 0.02), norm scales N(1, 0.02), zero biases (Radford et al.).
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
    make_norm2d,
    make_output_activation,
)

__all__ = ["DCGANGenerator", "DCGANDiscriminator"]


_BLOCKS = ("plain", "residual")
_BLOCK_HINT = ""


class _Stage(nn.Module):
    """One resolution stage with a shortcut: ``act(norm(conv(x)) + skip(x))`` (block="residual")."""

    def __init__(self, conv: nn.Module, norm: nn.Module, act: nn.Module, cin: int, cout: int, resample: nn.Module):
        super().__init__()
        self.conv, self.norm, self.act = conv, norm, act
        self.skip = nn.Sequential(resample, nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)) + self.skip(x))


def _stage(residual: bool, conv, norm, act, cin: int, cout: int, down: bool) -> list[nn.Module]:
    if not residual:
        return [conv, norm, act]
    resample = nn.AvgPool2d(2) if down else nn.Upsample(scale_factor=2, mode="nearest")
    return [_Stage(conv, norm, act, cin, cout, resample)]


class DCGANGenerator(Generator):
    """DCGAN generator: ``z (B, z_dim)`` -> images ``(B, channels, img_size, img_size)`` in ``out_range``.

    Args: z_dim (128), img_size (32; 28, 64 or any base * 2**n with base 4..7), channels (3),
    width (64: channels at the output resolution, doubled at every lower one), block ("plain" or "residual"),
    nonlinearity ("relu"), normalisation ("batch"), out_range ("sigmoid" = [0, 1] or "tanh" = [-1, 1]).
    """

    out_ranges = OUT_RANGES
    block_choices, block_hint = _BLOCKS, _BLOCK_HINT

    def __init__(
        self,
        z_dim: int = 128,
        img_size: int = 32,
        channels: int = 3,
        width: int = 64,
        block: str = "plain",
        nonlinearity: str = "relu",
        normalisation: str = "batch",
        out_range: str = "sigmoid",
    ):
        super().__init__(z_dim, out_range)
        n_stages = self.configure(width=width, block=block, nonlinearity=nonlinearity, normalisation=normalisation,
                                  channels=channels, img_size=img_size)
        bias = normalisation == "none"

        ch = width * 2 ** (n_stages - 1)
        layers = [
            nn.ConvTranspose2d(z_dim, ch, self.base, 1, 0, bias=bias),
            make_norm2d(normalisation, ch),
            make_activation(nonlinearity),
        ]
        for _ in range(n_stages - 1):
            layers += _stage(block == "residual", nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=bias),
                             make_norm2d(normalisation, ch // 2), make_activation(nonlinearity), ch, ch // 2,
                             down=False)
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), make_output_activation(out_range)]
        self.net = nn.Sequential(*layers)
        init_weights(self, "dcgan")

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(Discriminator):
    """DCGAN discriminator: images ``(B, channels, img_size, img_size)`` -> logits ``(B,)``.

    ``features(x)`` is ``(B, F)`` with C = width * 2**(n-1) channels in the last map: F = C for
    ``d_features="pooled"`` (256 for 32x32 at width 64), F = base**2 * C for ``"flat"`` (4096);
    ``last_linear``: ``nn.Linear(F, 1)``. See the module docstring for the two heads.

    Args: img_size (32), channels (3), width (64: channels after the first conv, doubled at every
    halving), block ("plain" or "residual"), nonlinearity ("leaky_relu", slope 0.2), normalisation ("instance"),
    d_features ("pooled" or "flat"), spectral_norm (False: True normalises every conv / linear weight).
    """

    block_choices, block_hint = _BLOCKS, _BLOCK_HINT

    def __init__(
        self,
        img_size: int = 32,
        channels: int = 3,
        width: int = 64,
        block: str = "plain",
        nonlinearity: str = "leaky_relu",
        normalisation: str = "instance",
        d_features: str = "pooled",
        spectral_norm: bool = False,
    ):
        super().__init__()
        n_stages = self.configure(width=width, block=block, nonlinearity=nonlinearity, normalisation=normalisation,
                                  channels=channels, img_size=img_size, d_features=d_features,
                                  spectral_norm=spectral_norm)
        bias = normalisation == "none"

        ch = width
        layers = [nn.Conv2d(channels, ch, 4, 2, 1), make_activation(nonlinearity)]
        for _ in range(n_stages - 1):
            layers += _stage(block == "residual", nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=bias),
                             make_norm2d(normalisation, ch * 2), make_activation(nonlinearity), ch, ch * 2,
                             down=True)
            ch *= 2
        self.net = nn.Sequential(*layers)
        if d_features == "pooled":
            self.head = nn.Sequential(nn.Conv2d(ch, ch, 1), make_activation(nonlinearity))
            self.last_linear = nn.Linear(ch, 1)
        else:
            self.last_linear = nn.Linear(ch * self.base * self.base, 1)
        self.finish("dcgan")

    def compute_features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net(x)
        if self.d_features == "pooled":
            return self.head(h).mean(dim=(2, 3))
        return h.flatten(1)
