"""GAN objectives in the form of Eq. 1 of the paper.

    L(G, D) = E_x[f(-D(x))] + E_z[f(D(G(z)))]

D maximises L and G minimises it. ``D(x)`` is a logit: a larger value means "more real".
Every objective here exposes

* ``f(t)``: the concave function of Eq. 1 (elementwise, any shape);
* ``d_loss(d_real, d_fake)``: the scalar the discriminator *minimises*, i.e. ``-L``;
* ``g_loss(d_fake, d_real=None)``: the scalar the generator minimises (the usual practical form:
  the non-saturating loss for ``gan``, the target-+1 loss for ``lsgan``, ``-E D(G(z))`` for
  ``wgan`` and ``hinge``). Objectives with ``g_needs_real`` (the relativistic ``rpgan``) need
  ``D(x)`` on a real batch as well; the trainer passes it only to those.

Inputs ``d_real`` and ``d_fake`` are discriminator outputs of shape ``(B,)`` (any shape is
accepted; the mean is taken over all elements; ``rpgan`` pairs them element by element).

The relativistic pairing loss ``rpgan`` (R3GAN, Huang et al. 2024) is not of the form of Eq. 1:
its terms couple a real and a fake sample, so there is no per-sample ``f`` and the robust-loss
target (``reg.target=loss``, penalties on ``f o D``) is refused for it (``has_f`` is False).

Every class here is registered in :data:`OBJECTIVES` by its ``name``; adding a loss is one class
in this file. ``weights_like`` names the loss whose default regularisation weights it takes
(:mod:`robustgan.regularizers` lists weights for gan, lsgan and wgan).
"""
from __future__ import annotations


import torch
import torch.nn.functional as F

__all__ = ["Objective", "GAN", "LSGAN", "WGAN", "Hinge", "RelativisticPairing", "OBJECTIVES", "register_objective",
           "get_objective"]


class Objective:
    """Base class. Subclasses define :meth:`f` and :meth:`g_loss`."""

    name: str = ""
    #: one line for the docs and --list-keys
    description: str = ""
    #: True where f(t) <= 0 for all t (the paper's robustness bounds need it).
    non_positive: bool = True
    #: False where the loss has no per-sample f, so penalties on f o D are undefined.
    has_f: bool = True
    #: True where the generator's loss needs D on a real batch (``g_loss(d_fake, d_real)``).
    g_needs_real: bool = False
    #: the loss whose default regularisation weights this one takes (None: its own row)
    weights_like: str | None = None

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

    def g_loss(self, d_fake: torch.Tensor, d_real: torch.Tensor | None = None) -> torch.Tensor:
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
    description = "Jensen-Shannon GAN, non-saturating generator loss"

    def __init__(self, saturating: bool = False):
        self.saturating = saturating

    def f(self, t):
        return -F.softplus(t)

    def d_loss(self, d_real, d_fake):
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()

    def g_loss(self, d_fake, d_real=None):
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
    description = "least squares, targets +1 / -1"

    def f(self, t):
        return -0.5 * (1.0 + t) ** 2

    def g_loss(self, d_fake, d_real=None):
        return 0.5 * ((1.0 - d_fake) ** 2).mean()


class WGAN(Objective):
    """Wasserstein GAN: f(t) = -t, so L = E D(x) - E D(G(z)).

    f is not non-positive, so the bounds of Theorem 4.3 do not apply. The generator minimises
    -E D(G(z)). Pair it with a Lipschitz constraint (``gp``) or a robustness regulariser.
    """

    name = "wgan"
    description = "Wasserstein, f(t) = -t"
    non_positive = False

    def f(self, t):
        return -t

    def g_loss(self, d_fake, d_real=None):
        return -d_fake.mean()


class Hinge(Objective):
    """Hinge loss (not in the paper): f(t) = -max(0, 1 + t); the generator minimises -E D(G(z))."""

    name = "hinge"
    description = "hinge (not in the paper), f(t) = -max(0, 1 + t)"
    weights_like = "gan"

    def f(self, t):
        return -F.relu(1.0 + t)

    def g_loss(self, d_fake, d_real=None):
        return -d_fake.mean()


class RelativisticPairing(Objective):
    """Relativistic pairing loss (R3GAN, Huang et al. 2024; not in the paper).

    ``L_D = E softplus(-(D(x_i) - D(G(z_i))))`` and ``L_G = E softplus(-(D(G(z_i)) - D(x_i)))``,
    real and fake paired by batch index (equal batch sizes). The generator's loss needs ``D(x)``
    on a real batch (``g_needs_real``); D's output there is a constant for G. No per-sample f:
    the robust-loss target is undefined (``has_f`` False). R3GAN pairs it with R1 + R2 (``r1r2``).
    """

    name = "rpgan"
    description = "relativistic pairing (R3GAN): softplus(-(D(x) - D(G(z))))"
    non_positive = False
    has_f = False
    g_needs_real = True
    weights_like = "gan"

    def f(self, t):
        raise ValueError("rpgan has no per-sample f (its terms pair a real and a fake sample); "
                         "penalties on f o D (reg.target=loss) are undefined for it: use reg.target=discriminator")

    @property
    def f0(self) -> float:
        raise ValueError("rpgan has no f, so the bound of Theorem 4.3 (which uses f(0)) does not apply")

    @staticmethod
    def _paired(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape:
            raise ValueError(f"rpgan pairs real and fake outputs one to one; got shapes {tuple(a.shape)} and "
                             f"{tuple(b.shape)} (use equal real and fake batch sizes)")
        return F.softplus(-(a - b)).mean()

    def value(self, d_real, d_fake):
        return -self._paired(d_real, d_fake)

    def d_loss(self, d_real, d_fake):
        return self._paired(d_real, d_fake)

    def g_loss(self, d_fake, d_real=None):
        if d_real is None:
            raise ValueError("rpgan's generator loss needs D on a real batch: g_loss(d_fake, d_real)")
        return self._paired(d_fake, d_real.detach())


#: name -> objective class: the registry of losses (config choices of ``loss`` are its keys)
OBJECTIVES: dict[str, type[Objective]] = {}


def register_objective(cls: type[Objective]) -> type[Objective]:
    """Add an objective class to :data:`OBJECTIVES` under ``cls.name`` (usable as a decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    OBJECTIVES[cls.name] = cls
    return cls


for _cls in (GAN, LSGAN, WGAN, Hinge, RelativisticPairing):
    register_objective(_cls)


def get_objective(name: str | Objective, **kwargs) -> Objective:
    """Return the objective called ``name`` (a key of :data:`OBJECTIVES`)."""
    if isinstance(name, Objective):
        return name
    try:
        return OBJECTIVES[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(OBJECTIVES)}") from None
