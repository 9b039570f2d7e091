"""Discriminator regularisers: the paper's robustness terms and the baselines.

Each regulariser contributes one scalar to the discriminator's loss, ``-L(G, D) + lam * rho``;
none takes an optimiser step of its own, and the generator's loss is unchanged.

Functional forms (return the *unweighted* penalty rho):

* :func:`adversarial_regularization` -- Eq. 4, ``E (h(G(z)) - h(G(z) + v))^2``;
* :func:`robust_feature_matching` -- Eq. 5, ``E ||phi(G(z)) - phi(G(z) + v)||^2 + alpha ||w||^2``;
* :func:`gradient_penalty` -- WGAN-GP, ``E (||grad D(x_hat)||_2 - 1)^2``.

``h`` is ``D`` (``target="discriminator"``, the default) or ``f o D`` (``target="loss"``, the
robust loss of Appendix D). ``v`` is found by an attack from :mod:`robustgan.attacks` on the
generated batch only and is treated as a constant.

Module forms (:class:`Regularizer` subclasses, built by :func:`make_regularizer`) carry ``lam``
and the other settings, and are what the trainer uses: ``reg.penalty(...)`` returns ``lam * rho``
and ``reg.perturb(real, fake, step)`` lets instance noise alter the discriminator's inputs.

Defaults: ``delta = 0.05`` for images in [0, 1] (0.1 for [-1, 1]), ``alpha = 1e-4``,
gradient-penalty ``lam = 10``.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from .attacks import _wide, get_attack
from .objectives import Objective, get_objective
from .ranges import DEFAULT_DELTA

__all__ = [
    "adversarial_regularization", "robust_feature_matching", "gradient_penalty", "last_linear",
    "Regularizer", "NoRegularizer", "InstanceNoise", "GradientPenalty", "AdversarialRegularizer",
    "RobustFeatureMatching", "REGULARIZERS", "make_regularizer", "discriminator_robustness",
]

TARGETS = ("discriminator", "loss")


def last_linear(D: nn.Module) -> nn.Linear:
    """The discriminator's last linear layer ``w`` (``D.last_linear``), checked."""
    layer = getattr(D, "last_linear", None)
    if not isinstance(layer, nn.Linear) or layer.out_features != 1 or not callable(getattr(D, "features", None)):
        raise TypeError(
            f"{type(D).__name__} does not follow the discriminator protocol: robust feature matching "
            "needs D.features(x) -> (B, F) and D.last_linear = nn.Linear(F, 1) with "
            "D(x) == D.last_linear(D.features(x)).squeeze(-1); wrap it with "
            "robustgan.adapters.robust_discriminator(D) (see docs/own-models.md)")
    return layer


def _loss_f(target: str, objective) -> Callable | None:
    """None for the discriminator target, f for the robust-loss target."""
    if target == "discriminator":
        return None
    if target == "loss":
        if objective is None:
            raise ValueError("target='loss' needs the objective (its f is applied to D)")
        return get_objective(objective).f
    raise ValueError(f"unknown target {target!r}; choose 'discriminator' or 'loss'")


def _target_fn(D: Callable, target: str, objective: Objective | str | None) -> Callable:
    f = _loss_f(target, objective)
    return (lambda x: D(x)) if f is None else (lambda x: f(D(x)))


def _apply_target(d: torch.Tensor, target: str, objective) -> torch.Tensor:
    f = _loss_f(target, objective)
    return d if f is None else f(d)


def _attack_vector(D, fake, delta, attack, target, objective, h_fake=None, attack_kwargs=None):
    atk = get_attack(attack, **(attack_kwargs or {})) if isinstance(attack, str) else attack
    h = _target_fn(D, target, objective)
    if h_fake is not None and attack in ("fgm", "fgsm"):
        return atk(h, fake, delta, h_x=h_fake)
    return atk(h, fake.detach(), delta)


def adversarial_regularization(
    D: Callable[[torch.Tensor], torch.Tensor], fake: torch.Tensor, *, delta: float = DEFAULT_DELTA,
    attack: str | Callable = "fgm", attack_kwargs: dict | None = None, target: str = "discriminator",
    objective: Objective | str | None = None, d_fake: torch.Tensor | None = None,
) -> torch.Tensor:
    """Adversarial regularisation rho(D, G) of Eq. 4 on a generated batch.

    ``rho = mean_i (h(x_i) - h(x_i + v_i))^2`` with ``x = fake``, ``h = D`` (or ``f o D`` for
    ``target='loss'``) and ``v`` from ``attack`` inside the ball of radius ``delta``.

    Args:
        D: discriminator, ``(B, C, H, W) -> (B,)`` logits.
        fake: generated images ``(B, C, H, W)`` (detached or not; gradients never reach G).
        delta: attack radius in the units of ``fake`` (0.05 for [0, 1] images, 0.1 for [-1, 1]).
        attack: "fgm" (default, L2), "fgsm", "pgd", "cw", or a callable ``(h, x, delta) -> v``.
        attack_kwargs: options of the attack (e.g. ``{"steps": 10, "p": "inf"}`` for pgd).
        target: "discriminator" (default) or "loss" (robust loss, Appendix D; needs ``objective``).
        objective: the GAN objective (name or object), used for ``target='loss'``.
        d_fake: optional ``D(fake)`` already computed with ``fake.requires_grad``; it is reused for
            the clean term and the attack gradient, saving one forward pass.

    Returns:
        A scalar tensor with gradients to D's parameters (v is constant).
    """
    if d_fake is None:
        x = fake.detach()
        h_x = _apply_target(D(x), target, objective)
        v = _attack_vector(D, x, delta, attack, target, objective, None, attack_kwargs)
    else:
        x = fake
        h_x = _apply_target(d_fake, target, objective)
        v = _attack_vector(D, x, delta, attack, target, objective, h_x, attack_kwargs)
    h_adv = _apply_target(D(x.detach() + v.to(x.dtype)), target, objective)
    return (_wide(h_x) - _wide(h_adv)).pow(2).mean()


def robust_feature_matching(
    D: nn.Module, fake: torch.Tensor, *, delta: float = DEFAULT_DELTA, alpha: float = 1e-4,
    attack: str | Callable = "fgm", attack_kwargs: dict | None = None, target: str = "discriminator",
    objective: Objective | str | None = None, features_fake: torch.Tensor | None = None,
) -> torch.Tensor:
    """Robust feature matching rho_r(D, G) of Eq. 5 on a generated batch.

    ``rho_r = mean_i ||phi(x_i) - phi(x_i + v_i)||_2^2 + alpha * ||w||_2^2`` where ``phi`` is
    ``D.features`` (penultimate features, ``(B, F)``), ``w`` the weight of ``D.last_linear``, and
    ``v`` the attack on ``h = D`` (or ``f o D`` for ``target='loss'``; the features compared are the
    same either way). ``D`` must follow the discriminator protocol (docs/models.md).

    Args:
        D: discriminator with ``features`` and ``last_linear``.
        fake: generated images ``(B, C, H, W)``.
        delta: attack radius in the units of ``fake`` (0.05 for [0, 1] images).
        alpha: weight of ``||w||^2`` (paper: 1e-4).
        attack, attack_kwargs, target, objective: as in :func:`adversarial_regularization`.
        features_fake: optional ``D.features(fake)`` already computed with ``fake.requires_grad``;
            reused for the clean features and (with fgm/fgsm) the attack gradient.

    Returns:
        A scalar tensor with gradients to D's parameters.
    """
    w = last_linear(D)
    if features_fake is None:
        x = fake.detach()
        phi = D.features(x)
        v = _attack_vector(D, x, delta, attack, target, objective, None, attack_kwargs)
    else:
        x = fake
        phi = features_fake
        h_x = _apply_target(w(phi).squeeze(-1), target, objective)
        v = _attack_vector(D, x, delta, attack, target, objective, h_x, attack_kwargs)
    phi_adv = D.features(x.detach() + v.to(x.dtype))
    match = (_wide(phi) - _wide(phi_adv)).pow(2).sum(dim=1).mean()
    return match + alpha * _wide(w.weight).pow(2).sum()


def gradient_penalty(D: Callable, real: torch.Tensor, fake: torch.Tensor, *, center: float = 1.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP gradient penalty ``E (||grad_x D(x_hat)||_2 - center)^2`` (unweighted; paper lam = 10).

    ``x_hat = e * real + (1 - e) * fake`` with ``e ~ U[0, 1]`` per sample. The gradient is taken
    with ``create_graph=True`` so the penalty back-propagates to D's parameters; the norm is
    computed in float32 even under bf16 autocast.

    Args:
        real, fake: ``(B, C, H, W)`` batches of equal shape.
    """
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty needs real and fake of equal shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    e = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), generator=generator, device=real.device)
    x_hat = (e * real.detach() + (1 - e) * fake.detach()).requires_grad_(True)
    with torch.enable_grad():
        out = D(x_hat)
        (g,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    norm = _wide(g).flatten(1).norm(dim=1)
    return (norm - center).pow(2).mean()


@torch.no_grad()
def discriminator_robustness(D: Callable, fake: torch.Tensor, delta: float = DEFAULT_DELTA,
                             attack: str = "fgm") -> float:
    """Measured robustness ``E_i |D(x_i) - D(x_i + v_i)|`` of D on a generated batch (a float).

    This is the quantity bounded by Theorem 4.3; the trainer logs it.
    """
    x = fake.detach()
    v = get_attack(attack)(lambda t: D(t), x, delta)
    return float((_wide(D(x)) - _wide(D(x + v.to(x.dtype)))).abs().mean())


class Regularizer:
    """Base class: a regulariser of the discriminator, with its weight ``lam``.

    Subclasses override :meth:`rho` (the unweighted penalty) and may override :meth:`perturb`.
    The trainer calls ``perturb`` on the discriminator's inputs, then adds ``penalty(...)``
    (``lam * rho``) to the discriminator loss.
    """

    name = "none"
    #: True where the penalty can reuse D's forward pass on the fake batch (the trainer then runs
    #: D.features on a fake batch that requires grad and passes it in).
    uses_fake_forward = False

    def __init__(self, lam: float = 0.0):
        self.lam = float(lam)

    def perturb(self, real: torch.Tensor, fake: torch.Tensor, step: int = 0):
        """The discriminator's inputs for this step (identity except for instance noise)."""
        return real, fake

    def rho(self, D, real, fake, *, objective=None, features_fake=None) -> torch.Tensor:
        return real.new_zeros(())

    def penalty(self, D, real, fake, *, objective=None, features_fake=None) -> torch.Tensor:
        """``lam * rho`` as a scalar tensor."""
        if self.lam == 0.0:
            return real.new_zeros(())
        return self.lam * self.rho(D, real, fake, objective=objective, features_fake=features_fake)

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class NoRegularizer(Regularizer):
    """No regularisation (``none``)."""

    name = "none"


class InstanceNoise(Regularizer):
    """Instance noise (Sonderby et al. 2016): Gaussian noise of std sigma on real and fake inputs.

    ``sigma_t = sigma * max(0, 1 - step / anneal_steps)`` (linear annealing to 0; no annealing
    when ``anneal_steps`` is 0). ``sigma`` is in the units of the images. Adds no penalty term.
    """

    name = "noise"

    def __init__(self, sigma: float = 0.1, anneal_steps: int = 0, lam: float = 0.0):
        super().__init__(lam)
        if sigma < 0:
            raise ValueError("instance noise sigma must be >= 0")
        self.sigma = float(sigma)
        self.anneal_steps = int(anneal_steps)

    def sigma_at(self, step: int) -> float:
        if self.anneal_steps <= 0:
            return self.sigma
        return self.sigma * max(0.0, 1.0 - step / self.anneal_steps)

    def perturb(self, real, fake, step=0):
        s = self.sigma_at(step)
        if s == 0.0:
            return real, fake
        return real + s * torch.randn_like(real), fake + s * torch.randn_like(fake)


class GradientPenalty(Regularizer):
    """WGAN-GP gradient penalty, ``lam * E (||grad D(x_hat)|| - 1)^2`` (``gp``; default lam = 10)."""

    name = "gp"

    def __init__(self, lam: float = 10.0, center: float = 1.0):
        super().__init__(lam)
        self.center = float(center)

    def rho(self, D, real, fake, *, objective=None, features_fake=None):
        return gradient_penalty(D, real, fake, center=self.center)


class _RobustRegularizer(Regularizer):
    uses_fake_forward = True

    def __init__(self, lam: float = 1.0, delta: float = DEFAULT_DELTA, attack: str = "fgm",
                 attack_kwargs: dict | None = None, target: str = "discriminator"):
        super().__init__(lam)
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; choose 'discriminator' or 'loss'")
        get_attack(attack, **(attack_kwargs or {}))  # validates the name and options now
        self.delta = float(delta)
        self.attack = attack
        self.attack_kwargs = dict(attack_kwargs or {})
        self.target = target


class AdversarialRegularizer(_RobustRegularizer):
    """Adversarial regularisation (``ar``, Eq. 4): ``lam * E (h(G(z)) - h(G(z) + v))^2``."""

    name = "ar"

    def rho(self, D, real, fake, *, objective=None, features_fake=None):
        d_fake = None
        if features_fake is not None:
            d_fake = last_linear(D)(features_fake).squeeze(-1)
        return adversarial_regularization(D, fake, delta=self.delta, attack=self.attack,
                                          attack_kwargs=self.attack_kwargs, target=self.target,
                                          objective=objective, d_fake=d_fake)


class RobustFeatureMatching(_RobustRegularizer):
    """Robust feature matching (``rfm``, Eq. 5): ``lam * (E ||phi(G(z)) - phi(G(z)+v)||^2 + alpha ||w||^2)``."""

    name = "rfm"

    def __init__(self, lam: float = 1.0, delta: float = DEFAULT_DELTA, alpha: float = 1e-4, **kw):
        super().__init__(lam, delta, **kw)
        self.alpha = float(alpha)

    def rho(self, D, real, fake, *, objective=None, features_fake=None):
        return robust_feature_matching(D, fake, delta=self.delta, alpha=self.alpha, attack=self.attack,
                                       attack_kwargs=self.attack_kwargs, target=self.target,
                                       objective=objective, features_fake=features_fake)


REGULARIZERS = {
    "none": NoRegularizer,
    "noise": InstanceNoise,
    "gp": GradientPenalty,
    "ar": AdversarialRegularizer,
    "rfm": RobustFeatureMatching,
}


def make_regularizer(name: str, **settings) -> Regularizer:
    """Build regulariser ``name`` (none, noise, gp, ar, rfm) from keyword settings.

    Unknown settings raise ``ValueError`` naming the valid ones.
    """
    if name not in REGULARIZERS:
        raise ValueError(f"unknown regulariser {name!r}; choose one of {', '.join(REGULARIZERS)}")
    cls = REGULARIZERS[name]
    try:
        return cls(**settings)
    except TypeError as exc:
        import inspect
        valid = [p for c in cls.__mro__ if "__init__" in vars(c)
                 for p in inspect.signature(c.__init__).parameters if p not in ("self", "kw")]
        raise ValueError(f"bad setting for regulariser {name!r} ({exc}); valid settings: {', '.join(dict.fromkeys(valid))}") from None
