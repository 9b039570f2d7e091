"""The Dirac-GAN's vector fields: one small class per method.

Data is a Dirac at 0, the generator a Dirac at ``theta`` and the discriminator the line
``D(x) = psi * x``. Eq. 1 reduces to

    L(theta, psi) = f(psi * theta) + f(0)

(the real sample gives f(-D(0)) = f(0)). D maximises, G minimises. Each method is one class (a
"vector field", after the Dirac-GAN notebook of Mescheder et al.) that knows

* the discriminator's objective ``d_objective(theta, psi)`` (L minus a penalty) and its feasible
  set ``|psi| <= psi_max`` (``None``: unconstrained);
* ``vector(theta, psi) -> (dtheta, dpsi)``: gradient *descent* direction of L for G and *ascent*
  direction of the discriminator's objective for D;
* ``generator_objective(thetas)``: l(theta) = max_psi of the discriminator's objective (Figure 2),
  by the robust 1-D maximisation of :mod:`.solver`.

A new method is a new subclass of :class:`DiracGAN` (override ``penalty``/``penalty_grad`` or
``psi_max``) decorated with :func:`register_method`.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from robustgan.objectives import Objective, get_objective

from .defaults import DEFAULTS
from .solver import ObjectiveCurve, maximize_concave

__all__ = [
    "ScalarLoss",
    "robust_loss_bound",
    "DiracGAN",
    "RobustLoss",
    "RobustDiscriminator",
    "AdversarialRegularization",
    "METHODS",
    "register_method",
    "make_field",
]


class ScalarLoss:
    """numpy view of an :class:`~robustgan.objectives.Objective`: ``f(t)``, ``df(t)`` in float64."""

    def __init__(self, loss: str | Objective):
        self.objective = get_objective(loss)
        self.name = self.objective.name
        self.f0 = float(self.objective.f0)

    def f(self, t) -> np.ndarray:
        with torch.no_grad():
            return self.objective.f(torch.as_tensor(np.asarray(t, dtype=np.float64))).numpy()

    def df(self, t) -> np.ndarray:
        tt = torch.as_tensor(np.asarray(t, dtype=np.float64)).clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.objective.f(tt).sum(), tt)
        return grad.numpy()


def robust_loss_bound(loss: str | Objective, delta: float, eps: float, domain: float = 2.0,
                      *, n_x: int = 401, n_v: int = 41, bound_max: float = 1e6) -> float:
    """The largest p such that |psi| <= p makes the loss robust on the whole domain (Thm 4.1).

    Robust loss: |f(psi x) - f(psi (x + v))| <= eps for every x in [-domain, domain] (which holds
    the real sample 0 and every generator position theta we plot) and every |v| <= delta. The
    worst case over (x, v) is a non-decreasing function of |psi|, so p is found by bisection;
    the worst case is taken over a grid of ``n_x`` x-values and ``n_v`` v-values that includes
    the corners x = +-domain, v = +-delta (where it sits for gan, lsgan and wgan).

    Returns p (>= 0; ``inf`` if no |psi| <= ``bound_max`` violates the constraint).
    """
    sl = ScalarLoss(loss)
    x = np.linspace(-domain, domain, n_x)[:, None]
    v = np.linspace(-delta, delta, n_v)[None, :]

    def worst(p: float) -> float:
        return float(np.max(np.abs(sl.f(p * x) - sl.f(p * (x + v)))))

    lo, hi = 0.0, 1.0
    while worst(hi) <= eps:
        lo, hi = hi, 2.0 * hi
        if hi > bound_max:
            return math.inf
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if worst(mid) <= eps:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-14 * hi:
            break
    return lo


#: Method name -> vector-field class; filled by :func:`register_method`.
METHODS: dict[str, type["DiracGAN"]] = {}


def register_method(cls):
    """Class decorator: make a :class:`DiracGAN` subclass available as ``make_field(cls.name, ...)``."""
    if cls.name in METHODS:
        raise ValueError(f"Dirac-GAN method {cls.name!r} is already registered ({METHODS[cls.name].__name__})")
    METHODS[cls.name] = cls
    return cls


@register_method
class DiracGAN:
    """The unregularised Dirac-GAN (method ``none``) and the base class of every method.

    ``loss``: a loss name of :mod:`robustgan.objectives` (``gan``, ``lsgan``, ``wgan``, ``hinge``)
    or an Objective. ``delta``, ``eps``, ``lam``: the attack radius, robustness level and
    regularisation weight (unused by this class; subclasses read them). ``domain``: half-width of
    the region of x on which :class:`RobustLoss` asks for robustness.

    The generator minimises L(theta, psi) itself (the minimax game of Eq. 1, as in Mescheder's
    Dirac-GAN), so the field is

        dtheta = -dL/dtheta = -psi f'(psi theta)
        dpsi   = +d(L - penalty)/dpsi = theta f'(psi theta) - penalty'(psi)
    """

    name = "none"
    label = "unconstrained"

    def __init__(self, loss: str | Objective = "gan", *, delta: float = DEFAULTS["delta"],
                 eps: float = DEFAULTS["eps"], lam: float = DEFAULTS["lam"],
                 domain: float = DEFAULTS["theta_max"]):
        for key, val in (("delta", delta), ("eps", eps), ("lam", lam), ("domain", domain)):
            if not (isinstance(val, (int, float)) and math.isfinite(val) and val > 0):
                raise ValueError(f"{key} must be a positive number, got {val!r}")
        self.loss = ScalarLoss(loss)
        self.delta, self.eps, self.lam, self.domain = float(delta), float(eps), float(lam), float(domain)

    # -- the game
    def value(self, theta, psi) -> np.ndarray:
        """L(theta, psi) = f(psi theta) + f(0) (broadcast arrays)."""
        return self.loss.f(np.asarray(psi) * np.asarray(theta)) + self.loss.f0

    def penalty(self, psi) -> np.ndarray:
        """What the discriminator's objective subtracts from L (0 here)."""
        return np.zeros_like(np.asarray(psi, dtype=np.float64))

    def penalty_grad(self, psi) -> np.ndarray:
        """d penalty / d psi."""
        return np.zeros_like(np.asarray(psi, dtype=np.float64))

    def d_objective(self, theta, psi) -> np.ndarray:
        """What D maximises: L(theta, psi) - penalty(psi)."""
        return self.value(theta, psi) - self.penalty(psi)

    @property
    def psi_max(self) -> float | None:
        """Feasible set |psi| <= psi_max of the hard constraint, ``None`` when unconstrained."""
        return None

    def project(self, psi):
        """Project psi onto the feasible set (identity when unconstrained)."""
        m = self.psi_max
        return psi if m is None else np.clip(psi, -m, m)

    def vector(self, theta, psi):
        """The update directions ``(dtheta, dpsi)`` at (theta, psi) (floats or arrays)."""
        theta = np.asarray(theta, dtype=np.float64)
        psi = np.asarray(psi, dtype=np.float64)
        g = self.loss.df(psi * theta)
        return -psi * g, theta * g - self.penalty_grad(psi)

    # -- Figure 2
    def generator_objective(self, thetas) -> ObjectiveCurve:
        """l(theta) = max over feasible psi of ``d_objective(theta, psi)``, on ``thetas`` (N,).

        For the regularised method this is the value of the regularised game,
        max_psi L - lam (psi delta)^2, as in Figure 2(d).
        """
        thetas = np.asarray(thetas, dtype=np.float64)
        psi_star, value = maximize_concave(self.d_objective, thetas, self.psi_max)
        return ObjectiveCurve(thetas, value, psi_star)

    def __repr__(self):
        return (f"{type(self).__name__}(loss={self.loss.name!r}, delta={self.delta}, "
                f"eps={self.eps}, lam={self.lam})")


@register_method
class RobustLoss(DiracGAN):
    """Hard robust-loss constraint (Thm 4.1) on every x in [-domain, domain].

    The constraint is asked on a fixed region (not only at the current generator position) so
    that the feasible set does not move with theta, which is what the proof of Thm 4.1 uses
    (the optimal D for theta + u must be feasible at theta). It is a box |psi| <= p, p from
    :func:`robust_loss_bound`. For wgan it equals the robust discriminator (p = eps/delta).
    """

    name = "robust_loss"
    label = "robust loss |f(D(x)) - f(D(x+v))| <= eps"

    @property
    def psi_max(self) -> float | None:
        if not hasattr(self, "_psi_max"):
            p = robust_loss_bound(self.loss.objective, self.delta, self.eps, self.domain)
            self._psi_max = p if math.isfinite(p) else None  # eps so large that nothing is excluded
        return self._psi_max


@register_method
class RobustDiscriminator(DiracGAN):
    """Hard robust-discriminator constraint (Thm 4.2): |D(x) - D(x+v)| = |psi||v| <= eps, |v| <= delta."""

    name = "robust_discriminator"
    label = "robust discriminator |psi| delta <= eps"

    @property
    def psi_max(self) -> float:
        return self.eps / self.delta


@register_method
class AdversarialRegularization(DiracGAN):
    """Adversarial regularisation (Eq. 4, Thm 4.3): D maximises L - lam * (psi * delta)^2.

    In the Dirac-GAN the attack is exact: max_{|v| <= delta} (D(theta) - D(theta + v))^2 = (psi delta)^2.
    """

    name = "ar"
    label = "adv. regularisation L - lam (psi delta)^2"

    def penalty(self, psi):
        return self.lam * (np.asarray(psi, dtype=np.float64) * self.delta) ** 2

    def penalty_grad(self, psi):
        return 2.0 * self.lam * self.delta ** 2 * np.asarray(psi, dtype=np.float64)


def make_field(method: str, loss: str | Objective = "gan", **settings) -> DiracGAN:
    """The vector field of ``method`` (one of :data:`METHODS`) for ``loss``; settings as DiracGAN."""
    try:
        cls = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown Dirac-GAN method {method!r}; choose one of {', '.join(METHODS)}") from None
    return cls(loss, **settings)
