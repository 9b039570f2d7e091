"""GAN objectives in the form of Eq. 1 of the paper.

    L(G, D) = E_x[f(-D(x))] + E_z[f(D(G(z)))]

D maximises L and G minimises it. ``D(x)`` is a logit: a larger value means "more real".
Every objective here exposes

* ``f(t)``: the concave function of Eq. 1 (elementwise, any shape);
* ``d_loss(d_real, d_fake)``: the scalar the discriminator *minimises*, i.e. ``-L``;
* ``g_loss(d_fake)``: the scalar the generator minimises (the usual practical form: the
  non-saturating loss for ``gan``, the target-+1 loss for ``lsgan``, ``-E D(G(z))`` for
  ``wgan`` and ``hinge``).

Inputs ``d_real`` and ``d_fake`` are discriminator outputs of shape ``(B,)`` (any shape is
accepted; the mean is taken over all elements).
"""
from __future__ import annotations


import torch
import torch.nn.functional as F

__all__ = ["Objective", "GAN", "LSGAN", "WGAN", "Hinge", "OBJECTIVES", "get_objective"]


class Objective:
    """Base class. Subclasses define :meth:`f` and :meth:`g_loss`."""

    name: str = ""
    #: True where f(t) <= 0 for all t (the paper's robustness bounds need it).
    non_positive: bool = True

    def f(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def f0(self) -> float:
        """f(0), which appears in the robustness bound of Theorem 4.3."""
        return float(self.f(torch.zeros((), dtype=torch.float64)))

    def value(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        """The game value L(G, D) of Eq. 1 estimated on a batch (a scalar)."""
        return self.f(-d_real).mean() + self.f(d_fake).mean()

    def d_loss(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        """Discriminator loss ``-L(G, D)`` (a scalar to minimise)."""
        return -self.value(d_real, d_fake)

    def g_loss(self, d_fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GAN(Objective):
    """Jensen-Shannon GAN: f(t) = -log(1 + e^t) = -softplus(t).

    D maximises log sigmoid(D(x)) + log(1 - sigmoid(D(G(z)))). The generator uses the
    non-saturating loss softplus(-D(G(z))) unless ``saturating=True``, in which case it
    minimises f(D(G(z))) as in the minimax game.
    """

    name = "gan"

    def __init__(self, saturating: bool = False):
        self.saturating = saturating

    def f(self, t):
        return -F.softplus(t)

    def d_loss(self, d_real, d_fake):
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()

    def g_loss(self, d_fake):
        if self.saturating:
            return self.f(d_fake).mean()
        return F.softplus(-d_fake).mean()

    def __repr__(self):
        return f"GAN(saturating={self.saturating})"


class LSGAN(Objective):
    """Least-squares GAN: f(t) = -(1 + t)^2 / 2 (real target +1, fake target -1).

    The generator minimises (1 - D(G(z)))^2 / 2.
    """

    name = "lsgan"

    def f(self, t):
        return -0.5 * (1.0 + t) ** 2

    def g_loss(self, d_fake):
        return 0.5 * ((1.0 - d_fake) ** 2).mean()


class WGAN(Objective):
    """Wasserstein GAN: f(t) = -t, so L = E D(x) - E D(G(z)).

    f is not non-positive, so the bounds of Theorem 4.3 do not apply. The generator minimises
    -E D(G(z)). Pair it with a Lipschitz constraint (``gp``) or a robustness regulariser.
    """

    name = "wgan"
    non_positive = False

    def f(self, t):
        return -t

    def g_loss(self, d_fake):
        return -d_fake.mean()


class Hinge(Objective):
    """Hinge loss (not in the paper): f(t) = -max(0, 1 + t); the generator minimises -E D(G(z))."""

    name = "hinge"

    def f(self, t):
        return -F.relu(1.0 + t)

    def g_loss(self, d_fake):
        return -d_fake.mean()


OBJECTIVES = {"gan": GAN, "lsgan": LSGAN, "wgan": WGAN, "hinge": Hinge}


def get_objective(name: str | Objective, **kwargs) -> Objective:
    """Return the objective called ``name`` (one of ``gan``, ``lsgan``, ``wgan``, ``hinge``)."""
    if isinstance(name, Objective):
        return name
    try:
        return OBJECTIVES[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(OBJECTIVES)}") from None


