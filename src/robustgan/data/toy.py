"""Two-dimensional toy distributions from the WGAN-GP paper (Gulrajani et al. 2017, Section 5.1).

Scales follow the WGAN-GP toy code, so numbers (and plots) are comparable with that paper and
the many works that reuse its sets:

==============  ===============================================  =================  ====================
name            construction (before scaling)                    divided by         per-mode std (final)
==============  ===============================================  =================  ====================
``8gaussians``  8 modes on a circle of radius 2 (angles k*pi/4),  1.414              0.02 / 1.414
                isotropic noise of std 0.02
``25gaussians`` 25 modes on the grid {-4, -2, 0, 2, 4}^2,         2.828              0.05 / 2.828
                isotropic noise of std 0.05
``swissroll``   (t cos t, t sin t), t = 1.5 pi (1 + 2u),          7.5                0.25 / 7.5
                u ~ U[0, 1], plus isotropic noise of std 0.25
==============  ===============================================  =================  ====================

So the 8 modes sit at radius 2 / 1.414 ~ 1.414, the 25 modes 2 / 2.828 ~ 0.707 apart, and the
swiss roll spans roughly [-1.9, 1.9]. The divisors are the WGAN-GP code's literal constants
(1.414 and 2.828, not sqrt 2 and 2 sqrt 2). Mixture components are drawn uniformly at random
(the WGAN-GP code draws 8gaussians the same way, and 25gaussians from a shuffled, balanced
fixed set of 100,000 points; for batches the two agree in distribution).

Every distribution has ``sample(n, generator=None) -> FloatTensor (n, 2)``, ``centers``
(FloatTensor (K, 2), or None for the swiss roll) and ``std`` (the per-mode noise std, final scale).
"""
from __future__ import annotations

import math

import torch


class ToyDistribution:
    """Base class: a 2-D distribution that can be sampled.

    Attributes: ``name`` (registry name), ``centers`` (FloatTensor (K, 2) or None), ``std``
    (float, per-mode isotropic std in the final scale).
    """

    name: str = ""
    centers: torch.Tensor | None = None
    std: float = 0.0

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` points: float32 tensor (n, 2) on the CPU. ``generator`` None uses torch's global RNG."""
        raise NotImplementedError

    def __repr__(self) -> str:
        k = None if self.centers is None else len(self.centers)
        return f"{type(self).__name__}(name={self.name!r}, modes={k}, std={self.std:.4g})"


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"number of samples must be a non-negative integer, got {n!r}")
    return n


class GaussianMixture2D(ToyDistribution):
    """Equal-weight mixture of isotropic 2-D Gaussians with the given ``centers`` (K, 2) and ``std``."""

    def __init__(self, centers: torch.Tensor, std: float, name: str = "mixture"):
        centers = torch.as_tensor(centers, dtype=torch.float32)
        if centers.ndim != 2 or centers.shape[1] != 2 or len(centers) == 0:
            raise ValueError(f"centers must have shape (K, 2) with K >= 1, got {tuple(centers.shape)}")
        if not std > 0:
            raise ValueError(f"std must be positive, got {std}")
        self.centers = centers
        self.std = float(std)
        self.name = name

    def sample_with_modes(self, n: int, generator: torch.Generator | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` points and the index of the mode each came from.

        Returns (points float32 (n, 2), modes int64 (n,) in [0, K)). Modes are uniform over K.
        """
        _check_n(n)
        modes = torch.randint(len(self.centers), (n,), generator=generator)
        noise = torch.randn(n, 2, generator=generator)
        return self.centers[modes] + self.std * noise, modes

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` points: float32 tensor (n, 2). ``generator`` None uses torch's global RNG."""
        return self.sample_with_modes(n, generator)[0]

    def nearest_mode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For points ``x`` (n, 2): (index of the nearest center (n,) int64, distance to it in units of std (n,)).

        A point within 3 std of its nearest center is the usual "high-quality sample" criterion.
        """
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.ndim != 2 or x.shape[1] != 2:
            raise ValueError(f"points must have shape (n, 2), got {tuple(x.shape)}")
        d = torch.cdist(x, self.centers)
        dist, idx = d.min(dim=1)
        return idx, dist / self.std


class EightGaussians(GaussianMixture2D):
    """8 Gaussians on a ring (WGAN-GP scale): radius 2/1.414, std 0.02/1.414."""

    RADIUS, NOISE, DIVISOR = 2.0, 0.02, 1.414

    def __init__(self):
        angles = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
        centers = self.RADIUS * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1) / self.DIVISOR
        super().__init__(centers.float(), self.NOISE / self.DIVISOR, name="8gaussians")


class TwentyFiveGaussians(GaussianMixture2D):
    """25 Gaussians on a 5x5 grid (WGAN-GP scale): spacing 2/2.828, std 0.05/2.828."""

    SPACING, NOISE, DIVISOR = 2.0, 0.05, 2.828

    def __init__(self):
        ticks = torch.arange(-2, 3, dtype=torch.float64) * self.SPACING
        gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
        centers = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1) / self.DIVISOR
        super().__init__(centers.float(), self.NOISE / self.DIVISOR, name="25gaussians")


class SwissRoll(ToyDistribution):
    """2-D swiss roll (WGAN-GP scale): (t cos t, t sin t) with t ~ 1.5 pi (1 + 2 U[0,1]), noise std 0.25, /7.5.

    ``centers`` is None (no discrete modes); ``std`` is the noise std in the final scale, 0.25/7.5.
    """

    T_MIN, T_MAX, NOISE, DIVISOR = 1.5 * math.pi, 4.5 * math.pi, 0.25, 7.5

    def __init__(self):
        self.name = "swissroll"
        self.centers = None
        self.std = self.NOISE / self.DIVISOR

    def sample_with_t(self, n: int, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` points and their curve parameter t in [1.5 pi, 4.5 pi]: ((n, 2) float32, (n,) float32)."""
        _check_n(n)
        t = self.T_MIN + (self.T_MAX - self.T_MIN) * torch.rand(n, generator=generator)
        noise = torch.randn(n, 2, generator=generator)
        curve = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1)
        return (curve + self.NOISE * noise) / self.DIVISOR, t

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` points: float32 tensor (n, 2). ``generator`` None uses torch's global RNG."""
        return self.sample_with_t(n, generator)[0]


#: name -> class; ``get_toy(name)`` returns an instance
TOY_DATASETS: dict[str, type[ToyDistribution]] = {
    "8gaussians": EightGaussians,
    "25gaussians": TwentyFiveGaussians,
    "swissroll": SwissRoll,
}


def get_toy(name: str) -> ToyDistribution:
    """Return the toy distribution called ``name`` ("8gaussians", "25gaussians" or "swissroll")."""
    key = str(name).lower().replace("_", "").replace("-", "")
    aliases = {"8gaussians": "8gaussians", "25gaussians": "25gaussians", "swissroll": "swissroll"}
    if key not in aliases:
        raise ValueError(f"unknown toy data set {name!r}; choose one of {', '.join(TOY_DATASETS)}")
    return TOY_DATASETS[aliases[key]]()
