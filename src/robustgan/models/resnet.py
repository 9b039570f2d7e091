"""The paper's ResNet generator and discriminator (Table 3, Appendix C; WGAN-GP style).

Constant width (128 channels by default) at every resolution, 3x3 convolutions, pre-activation
residual blocks ``x + conv(act(norm(conv(act(norm(x))))))``. Resampling happens between blocks:
nearest-neighbour 2x upsampling in G, 2x2 average pooling in D.

Generator (32x32, width 128)::

    z (128) -> Linear 2048 -> reshape 4x4x128 -> ResBlock, ResBlock (4x4)
      -> [Upsample, ResBlock] x 3 -> 32x32x128 -> norm, act -> Conv 1x1 -> 3 -> Sigmoid

Discriminator (32x32, width 128)::

    image -> Conv 3x3 -> 128 -> ResBlock (32) -> Down -> ResBlock (16) -> Down -> ResBlock (8)
      -> Down -> 4 x ResBlock (4x4) -> act -> global average pool (phi, 128) -> Linear 1 (w)

(``d_features="flat"`` flattens the 4x4x128 map instead of pooling it: phi of 2048.)

Other sizes change only the number of up/down stages: 64 = 4 * 2**4 (one more stage each side,
the paper's CelebA variant), 28 = 7 * 2**2 (MNIST-like). ``block="plain"`` removes the skip
connections and keeps everything else.
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

__all__ = ["ResidualBlock", "ResNetGenerator", "ResNetDiscriminator"]


class ResidualBlock(nn.Module):
    """Pre-activation block at constant width; spatial size unchanged.

    ``residual=True``: ``x + conv2(act(norm2(conv1(act(norm1(x))))))``; ``residual=False`` (the
    "plain" block): the same without ``x +``. Input and output: ``(B, width, H, W)``.
    """

    def __init__(self, width: int, nonlinearity: str, normalisation: str, residual: bool = True):
        super().__init__()
        self.residual = residual
        self.norm1 = make_norm2d(normalisation, width)
        self.act1 = make_activation(nonlinearity)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.norm2 = make_norm2d(normalisation, width)
        self.act2 = make_activation(nonlinearity)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act1(self.norm1(x)))
        h = self.conv2(self.act2(self.norm2(h)))
        return x + h if self.residual else h

    def extra_repr(self) -> str:
        return f"residual={self.residual}"


class ResNetGenerator(Generator):
    """Table 3 generator: ``z (B, z_dim)`` -> images ``(B, channels, img_size, img_size)`` in ``out_range``.

    Args (defaults are the paper's):
        z_dim: latent size (128).
        img_size: output side: 32 (base 4x4, 3 upsamplings), 64 (4x4, 4), 28 (7x7, 2); in general
            base * 2**n with base in 4..7.
        channels: output channels (3; 1 for grey-scale).
        width: channels of every hidden layer (128).
        block: "residual" (default) or "plain" (no skip connections).
        nonlinearity: "relu" (default), "leaky_relu" (slope 0.2) or "tanh".
        normalisation: "batch" (default), "instance" or "none"; applied pre-activation.
        out_range: "sigmoid" (default, [0, 1]) or "tanh" ([-1, 1]).

    The last layer is a 1x1 convolution, as in Table 3, preceded by a final norm + activation (the
    pre-activation blocks end on a convolution). Weights: Glorot-uniform, zero biases.
    """

    out_ranges = OUT_RANGES

    def __init__(
        self,
        z_dim: int = 128,
        img_size: int = 32,
        channels: int = 3,
        width: int = 128,
        block: str = "residual",
        nonlinearity: str = "relu",
        normalisation: str = "batch",
        out_range: str = "sigmoid",
    ):
        super().__init__(z_dim, out_range)
        n_stages = self.configure(width=width, block=block, nonlinearity=nonlinearity, normalisation=normalisation,
                                  channels=channels, img_size=img_size)
        residual = block == "residual"

        def res_block():
            return ResidualBlock(width, nonlinearity, normalisation, residual)

        self.input = nn.Linear(z_dim, self.base * self.base * width)
        layers = [res_block(), res_block()]
        for _ in range(n_stages):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), res_block()]
        self.blocks = nn.Sequential(*layers)
        self.output = nn.Sequential(
            make_norm2d(normalisation, width),
            make_activation(nonlinearity),
            nn.Conv2d(width, channels, 1),
            make_output_activation(out_range),
        )
        init_weights(self, "xavier")

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        h = self.input(z).view(z.shape[0], self.width, self.base, self.base)
        return self.output(self.blocks(h))


class ResNetDiscriminator(Discriminator):
    """Table 3 discriminator: images ``(B, channels, img_size, img_size)`` -> logits ``(B,)``.

    ``features(x)`` is the globally average-pooled output of the last block after the nonlinearity,
    shape ``(B, width)`` (``d_features="pooled"``, the paper's phi), or that map flattened,
    ``(B, width * base**2)`` (``"flat"``: 2048 for 32x32 at width 128); ``last_linear`` is
    ``nn.Linear(F, 1)``.

    Args (defaults are the paper's): img_size (32), channels (3), width (128), block ("residual"),
    nonlinearity ("leaky_relu", slope 0.2), normalisation ("instance", affine), d_features
    ("pooled"), spectral_norm (False: True normalises every conv / linear weight); see
    :class:`ResNetGenerator` for the choices. There is deliberately no normalisation right before the
    pooling: instance-normalised maps average to the norm's shift, whatever the input.
    Weights: Glorot-uniform, zero biases.
    """

    def __init__(
        self,
        img_size: int = 32,
        channels: int = 3,
        width: int = 128,
        block: str = "residual",
        nonlinearity: str = "leaky_relu",
        normalisation: str = "instance",
        d_features: str = "pooled",
        spectral_norm: bool = False,
    ):
        super().__init__()
        n_stages = self.configure(width=width, block=block, nonlinearity=nonlinearity, normalisation=normalisation,
                                  channels=channels, img_size=img_size, d_features=d_features,
                                  spectral_norm=spectral_norm)
        residual = block == "residual"

        def res_block():
            return ResidualBlock(width, nonlinearity, normalisation, residual)

        self.input = nn.Conv2d(channels, width, 3, padding=1)
        layers = []
        for _ in range(n_stages):
            layers += [res_block(), nn.AvgPool2d(2)]
        layers += [res_block() for _ in range(4)]
        self.blocks = nn.Sequential(*layers)
        self.act = make_activation(nonlinearity)
        self.last_linear = nn.Linear(width if d_features == "pooled" else width * self.base**2, 1)
        self.finish("xavier")

    def compute_features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.blocks(self.input(x)))
        return h.mean(dim=(2, 3)) if self.d_features == "pooled" else h.flatten(1)
