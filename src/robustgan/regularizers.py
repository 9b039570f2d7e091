"""Discriminator regularisers: the paper's robustness terms, the baselines and the modern rivals.

Each regulariser contributes one scalar to the discriminator's loss, ``-L(G, D) + lam * rho``;
none takes an optimiser step of its own, and the generator's loss is unchanged (instance noise
blurs D's inputs in both phases instead of adding a term).

Functional forms (return the *unweighted* penalty rho):

* :func:`adversarial_regularization` -- Eq. 4, ``E (h(G(z)) - h(G(z) + v))^2``;
* :func:`robust_feature_matching` -- Eq. 5, ``E ||phi(G(z)) - phi(G(z) + v)||^2 + alpha ||w||^2``;
* :func:`gradient_penalty` -- WGAN-GP, ``E (||grad h(x_hat)||_2 - 1)^2``;
* :func:`zero_centred_penalty` -- R1 / R2 (Mescheder et al. 2018), ``1/2 E ||grad_x D(x)||^2``.

``h`` is ``D`` (``target="discriminator"``, the default) or ``f o D`` (``target="loss"``, the
robust loss of Appendix D; for gp the gradient of ``f(D(x_hat))``). ``v`` is found by an attack
from :mod:`robustgan.attacks` on the generated batch only and is treated as a constant.

Module forms (:class:`Regularizer` subclasses) carry ``lam`` and the other settings, and are
what the trainer uses. Each class declares, for the rest of the code:

* ``settings``: the ``reg.*`` config keys it uses (declared once in :data:`SETTINGS` with type,
  default, range and a one-line description);
* ``default_weights``: its default ``lam`` per loss (None for regularisers without a weight); a
  loss without a row takes the row of its ``weights_like`` loss, and a missing weight is an
  error, never a silent 0;
* ``from_settings(...)``: how the config's values become constructor arguments.

They are registered in :data:`REGULARIZERS`; adding a regulariser is one class in this file
(plus its test). The shared forward pass: when the penalty differentiates D at the inputs D
already saw (:meth:`Regularizer.input_grads`), the trainer runs D on inputs that require grad
and passes ``fake_features = D.features(fake)`` (and ``d_real``) in.

Defaults: ``delta = 0.05`` for images in [0, 1] (0.1 for [-1, 1]), ``alpha = 1e-4``,
gradient-penalty ``lam = 10``; see docs/regularizers.md for every default weight and its source.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn

from .attacks import ATTACK_REGISTRY, ATTACK_SETTINGS, _wide, attack_spec, get_attack
from .objectives import OBJECTIVES, Objective, get_objective
from .options import ConfigError, Option
from .ranges import DEFAULT_DELTA

__all__ = [
    "adversarial_regularization", "robust_feature_matching", "gradient_penalty", "zero_centred_penalty",
    "last_linear", "SETTINGS", "Regularizer", "NoRegularizer", "InstanceNoise", "GradientPenalty", "R1", "R2",
    "R1R2", "AdversarialRegularizer", "RobustFeatureMatching", "REGULARIZERS", "register_regularizer",
    "make_regularizer", "default_weight", "check_settings", "discriminator_robustness", "linf_radius",
]

TARGETS = ("discriminator", "loss")
MEASURES = ("output", "features")


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
        obj = get_objective(objective)
        if not obj.has_f:
            raise ValueError(f"loss {obj.name!r} has no per-sample f, so target='loss' (penalties on f o D) is "
                             "undefined for it; use target='discriminator'")
        return obj.f
    raise ValueError(f"unknown target {target!r}; choose 'discriminator' or 'loss'")


def _target_fn(D: Callable, target: str, objective: Objective | str | None) -> Callable:
    f = _loss_f(target, objective)
    return (lambda x: D(x)) if f is None else (lambda x: f(D(x)))


def _apply_target(d: torch.Tensor, target: str, objective) -> torch.Tensor:
    f = _loss_f(target, objective)
    return d if f is None else f(d)


def linf_radius(delta: float, delta_inf: float | None, x: torch.Tensor) -> float:
    """The L-inf radius: ``delta_inf``, or ``delta / sqrt(numel per sample)`` when it is None.

    The derived radius is the L-inf ball whose corners lie on the L2 sphere of radius ``delta``:
    FGSM's ``v`` (a corner) then has the same L2 length as FGM's. Read literally, the paper's
    one delta of 0.05 as an L-inf radius on 3x32x32 is an L2 ball sqrt(3072) = 55 times FGM's.
    """
    return float(delta_inf) if delta_inf is not None else float(delta) / math.sqrt(x[0].numel())


def _attack_vector(D, fake, delta, attack, target, objective, h_fake=None, attack_kwargs=None, measure=None):
    """``v`` for the fake batch. A single-step attack reuses ``h_fake`` (the caller's forward pass
    on ``fake``, which requires grad); a multi-step one runs its own passes on a detached copy."""
    kwargs = dict(attack_kwargs or {})
    if isinstance(attack, str):
        spec = attack_spec(attack)
        if measure is not None and spec.measure:
            kwargs["measure"] = measure
        atk = get_attack(attack, **kwargs)
        single = spec.single_step
    else:
        atk, single = attack, False
    h = _target_fn(D, target, objective)
    if h_fake is not None and single:
        return atk(h, fake, delta, h_x=h_fake)
    return atk(h, fake.detach(), delta)


def adversarial_regularization(
    D: Callable[[torch.Tensor], torch.Tensor], fake: torch.Tensor, *, delta: float = DEFAULT_DELTA,
    attack: str | Callable = "fgm", attack_kwargs: dict | None = None, target: str = "discriminator",
    objective: Objective | str | None = None, fake_features: torch.Tensor | None = None,
) -> torch.Tensor:
    """Adversarial regularisation rho(D, G) of Eq. 4 on a generated batch.

    ``rho = mean_i (h(x_i) - h(x_i + v_i))^2`` with ``x = fake``, ``h = D`` (or ``f o D`` for
    ``target='loss'``) and ``v`` from ``attack`` inside the ball of radius ``delta``.

    Args:
        D: discriminator, ``(B, C, H, W) -> (B,)`` logits.
        fake: generated images ``(B, C, H, W)`` (detached or not; gradients never reach G).
        delta: attack radius in the units of ``fake`` and the norm of the attack's ball (0.05 for
            [0, 1] images, 0.1 for [-1, 1]).
        attack: a name of :data:`robustgan.attacks.ATTACK_REGISTRY` (default "fgm", L2) or a
            callable ``(h, x, delta) -> v``.
        attack_kwargs: options of the attack (e.g. ``{"steps": 10, "p": "inf"}`` for pgd).
        target: "discriminator" (default) or "loss" (robust loss, Appendix D; needs ``objective``).
        objective: the GAN objective (name or object), used for ``target='loss'``.
        fake_features: optional ``D.features(fake)`` already computed with ``fake.requires_grad``
            (D must follow the protocol); reused for the clean term and, with a single-step
            attack, for the attack's gradient, saving one forward pass.

    Returns:
        A scalar tensor with gradients to D's parameters (v is constant).
    """
    if fake_features is None:
        x = fake.detach()
        h_x = _apply_target(D(x), target, objective)
        v = _attack_vector(D, x, delta, attack, target, objective, None, attack_kwargs)
    else:
        x = fake
        h_x = _apply_target(last_linear(D)(fake_features).squeeze(-1), target, objective)
        v = _attack_vector(D, x, delta, attack, target, objective, h_x, attack_kwargs)
    h_adv = _apply_target(D(x.detach() + v.to(x.dtype)), target, objective)
    return (_wide(h_x) - _wide(h_adv)).pow(2).mean()


def robust_feature_matching(
    D: nn.Module, fake: torch.Tensor, *, delta: float = DEFAULT_DELTA, alpha: float = 1e-4,
    attack: str | Callable = "fgm", attack_kwargs: dict | None = None, target: str = "discriminator",
    objective: Objective | str | None = None, fake_features: torch.Tensor | None = None,
    attack_measure: str = "output",
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
        fake_features: optional ``D.features(fake)`` already computed with ``fake.requires_grad``;
            reused for the clean features and (with a single-step attack) the attack gradient.
        attack_measure: what a multi-step attack (pgd, cw) maximises: "output", the squared change
            of ``h`` (default), or "features", the feature distance this penalty measures.

    Returns:
        A scalar tensor with gradients to D's parameters.
    """
    w = last_linear(D)
    if attack_measure not in MEASURES:
        raise ValueError(f"unknown attack_measure {attack_measure!r}; choose 'output' or 'features'")
    measure = D.features if attack_measure == "features" else None
    if fake_features is None:
        x = fake.detach()
        phi = D.features(x)
        v = _attack_vector(D, x, delta, attack, target, objective, None, attack_kwargs, measure)
    else:
        x = fake
        phi = fake_features
        h_x = _apply_target(w(phi).squeeze(-1), target, objective)
        v = _attack_vector(D, x, delta, attack, target, objective, h_x, attack_kwargs, measure)
    phi_adv = D.features(x.detach() + v.to(x.dtype))
    match = (_wide(phi) - _wide(phi_adv)).pow(2).sum(dim=1).mean()
    return match + alpha * _wide(w.weight).pow(2).sum()


def gradient_penalty(D: Callable, real: torch.Tensor, fake: torch.Tensor, *, center: float = 1.0,
                     generator: torch.Generator | None = None, target: str = "discriminator",
                     objective: Objective | str | None = None) -> torch.Tensor:
    """WGAN-GP gradient penalty ``E (||grad_x h(x_hat)||_2 - center)^2`` (unweighted; paper lam = 10).

    ``x_hat = e * real + (1 - e) * fake`` with ``e ~ U[0, 1]`` per sample; ``h = D``, or
    ``f o D`` for ``target='loss'`` (Appendix D penalises "the gradient ... of the loss
    directly"). The gradient is taken with ``create_graph=True`` so the penalty back-propagates to
    D's parameters; the norm is computed in float32 even under bf16 autocast.

    Args:
        real, fake: ``(B, C, H, W)`` batches of equal shape.
    """
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty needs real and fake of equal shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    h = _target_fn(D, target, objective)
    e = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), generator=generator, device=real.device)
    x_hat = (e * real.detach() + (1 - e) * fake.detach()).requires_grad_(True)
    with torch.enable_grad():
        out = h(x_hat)
        (g,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    norm = _wide(g).flatten(1).norm(dim=1)
    return (norm - center).pow(2).mean()


def zero_centred_penalty(D: Callable, x: torch.Tensor, d_x: torch.Tensor | None = None) -> torch.Tensor:
    """``1/2 E ||grad_x D(x)||_2^2`` (R1 on real data, R2 on generated data; Mescheder et al. 2018).

    With weight ``gamma`` this is the paper's ``gamma/2 * E ||grad_x D(x)||^2``.

    Args:
        D: discriminator ``(B, ...) -> (B,)``.
        x: the batch ``(B, ...)``.
        d_x: optional ``D(x)`` already computed with ``x.requires_grad`` (the shared forward pass);
            otherwise D is run on a detached copy of ``x``.

    Returns:
        A scalar (float32 or wider) with gradients to D's parameters (``create_graph=True``).
    """
    if d_x is None:
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            d_x = D(x)
    elif not x.requires_grad:
        raise ValueError("d_x was given but x does not require grad")
    with torch.enable_grad():
        (g,) = torch.autograd.grad(d_x.sum(), x, create_graph=True)
    return 0.5 * _wide(g).flatten(1).pow(2).sum(1).mean()


@torch.no_grad()
def discriminator_robustness(D: Callable, fake: torch.Tensor, delta: float = DEFAULT_DELTA,
                             attack: str = "fgm") -> float:
    """Measured robustness ``E_i |D(x_i) - D(x_i + v_i)|`` of D on a generated batch (a float).

    This is the quantity bounded by Theorem 4.3; the trainer logs it.
    """
    x = fake.detach()
    v = get_attack(attack)(lambda t: D(t), x, delta)
    return float((_wide(D(x)) - _wide(D(x + v.to(x.dtype)))).abs().mean())


# ------------------------------------------------------------------------------------------ settings
#: Every ``reg.*`` setting (besides ``reg.name``) with its type, default, range and description.
#: Each regulariser lists the ones it uses in ``settings``; lengths are in [0, 1] pixel units.
SETTINGS: dict[str, Option] = {
    "lam": Option("float", None, "weight of the penalty (gamma for r1/r2/r1r2); null = the default for the "
                  "loss and regulariser (docs/regularizers.md)", low=0, nullable=True),
    "every": Option("int", 1, "lazy regularisation: apply the penalty every k-th D step, scaled by k", low=1),
    "delta": Option("float", DEFAULT_DELTA, "L2 attack radius in [0, 1] pixel units (the paper's 0.05; "
                    "scaled for tanh outputs)", low=0, low_open=True),
    "delta_inf": Option("float", None, "L-inf attack radius (fgsm, pgd with attack_norm=inf) in [0, 1] pixel "
                        "units; null = delta / sqrt(numel per sample), the same L2 length as fgm's",
                        low=0, low_open=True, nullable=True),
    "attack": Option("str", "fgm", "attack that finds v: " + ", ".join(ATTACK_REGISTRY)),
    **{key: opt for key, (_, opt) in ATTACK_SETTINGS.items()},
    "attack_measure": Option("choice", "output", "rfm with pgd/cw: maximise the squared change of the output "
                             "(output) or the feature distance the penalty measures (features)", choices=MEASURES),
    "target": Option("choice", "discriminator", "penalise D (discriminator) or f o D (loss: the robust loss, "
                     "Appendix D)", choices=TARGETS),
    "alpha": Option("float", 1.0e-4, "rfm: weight of ||w||^2 (the paper's 1e-4)", low=0),
    "sigma": Option("float", 0.1, "noise: instance-noise std in [0, 1] pixel units", low=0),
    "anneal": Option("float", 1.0, "noise: fraction of training over which sigma decays linearly to 0 "
                     "(0 = constant)", low=0),
}
#: the settings of every attack-based regulariser
_ATTACK_KEYS = ("delta", "delta_inf", "attack", *ATTACK_SETTINGS, "target")


class Regularizer:
    """Base class: a regulariser of the discriminator, with its weight ``lam``.

    Subclasses override :meth:`rho` (the unweighted penalty) and declare ``settings``,
    ``default_weights``, ``description`` and ``source``. The trainer asks :meth:`sigma_at` for
    instance noise, :meth:`input_grads` for the inputs to differentiate at, and adds
    ``penalty(...)`` (``lam * rho``) to the discriminator loss.
    """

    name = "none"
    description = ""
    source = ""
    #: the ``reg.*`` keys this regulariser uses (see :data:`SETTINGS`)
    settings: tuple[str, ...] = ()
    #: default ``lam`` per loss (None: the regulariser has no weight)
    default_weights: dict[str, float] | None = None
    #: whether the settings include an attack (and a target); the grid multiplies these by attacks
    uses_attack = False

    def __init__(self, lam: float = 0.0):
        self.lam = float(lam)

    @classmethod
    def from_settings(cls, settings: dict, *, lam: float, length: Callable[[float], float], total_steps: int):
        """Build from the config's ``reg`` section (already validated). ``length`` converts a length
        in [0, 1] pixel units to the model's units; ``total_steps`` is the number of D steps."""
        return cls(lam=lam) if cls.default_weights is not None else cls()

    def sigma_at(self, step: int) -> float:
        """Std of the instance noise on D's inputs at D step ``step`` (0: none)."""
        return 0.0

    def perturb(self, real: torch.Tensor, fake: torch.Tensor, step: int = 0):
        """The discriminator's inputs for this step: Gaussian noise of std :meth:`sigma_at` added."""
        s = self.sigma_at(step)
        if s == 0.0:
            return real, fake
        return real + s * torch.randn_like(real), fake + s * torch.randn_like(fake)

    def input_grads(self) -> frozenset[str]:
        """Which of D's inputs ("real", "fake") the penalty differentiates at D's own forward pass;
        the trainer makes those require grad and passes ``d_real`` / ``fake_features`` in."""
        return frozenset()

    def rho(self, D, real, fake, *, objective=None, fake_features=None, d_real=None) -> torch.Tensor:
        return real.new_zeros(())

    def penalty(self, D, real, fake, *, objective=None, fake_features=None, d_real=None) -> torch.Tensor:
        """``lam * rho`` as a scalar tensor."""
        if self.lam == 0.0:
            return real.new_zeros(())
        return self.lam * self.rho(D, real, fake, objective=objective, fake_features=fake_features, d_real=d_real)

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


REGULARIZERS: dict[str, type[Regularizer]] = {}


def register_regularizer(cls: type[Regularizer]) -> type[Regularizer]:
    """Add a regulariser class to :data:`REGULARIZERS` under ``cls.name`` (usable as a decorator)."""
    unknown = [k for k in cls.settings if k not in SETTINGS]
    if unknown:
        raise ValueError(f"regulariser {cls.name!r} uses undeclared settings {unknown}; declare them in SETTINGS")
    if cls.default_weights is not None and "lam" not in cls.settings:
        raise ValueError(f"regulariser {cls.name!r} has default weights but no 'lam' setting")
    REGULARIZERS[cls.name] = cls
    return cls


@register_regularizer
class NoRegularizer(Regularizer):
    """No regularisation (``none``)."""

    name = "none"
    description = "no regularisation"


@register_regularizer
class InstanceNoise(Regularizer):
    """Instance noise (Sonderby et al. 2016): Gaussian noise of std sigma on D's inputs.

    D sees ``x + eps`` and ``G(z) + eps`` in its step, and the generator's loss is taken through
    ``D(G(z) + eps)`` with the same schedule (both distributions are blurred).
    ``sigma_t = sigma * max(0, 1 - step / anneal_steps)`` (linear annealing to 0; no annealing
    when ``anneal_steps`` is 0); ``step`` counts D steps. ``sigma`` is in the units of the images.
    Adds no penalty term.
    """

    name = "noise"
    description = "instance noise on real and fake inputs, annealed to 0"
    source = "Sonderby et al. 2016, Amortised MAP inference for image super-resolution"
    settings = ("sigma", "anneal")

    def __init__(self, sigma: float = 0.1, anneal_steps: int = 0, lam: float = 0.0):
        super().__init__(lam)
        if sigma < 0:
            raise ValueError("instance noise sigma must be >= 0")
        self.sigma = float(sigma)
        self.anneal_steps = int(anneal_steps)

    @classmethod
    def from_settings(cls, settings, *, lam, length, total_steps):
        return cls(sigma=length(settings["sigma"]), anneal_steps=int(round(settings["anneal"] * total_steps)))

    def sigma_at(self, step: int) -> float:
        if self.anneal_steps <= 0:
            return self.sigma
        return self.sigma * max(0.0, 1.0 - step / self.anneal_steps)


def _same_for_all(value: float, **own) -> dict[str, float]:
    """One weight for gan, lsgan and wgan (other losses follow their ``weights_like``)."""
    return {"gan": value, "lsgan": value, "wgan": value, **own}


@register_regularizer
class GradientPenalty(Regularizer):
    """WGAN-GP gradient penalty, ``lam * E (||grad h(x_hat)|| - 1)^2`` (``gp``; default lam = 10).

    ``h = D``, or ``f o D`` with ``target='loss'`` (Table 4's gp column).
    """

    name = "gp"
    description = "WGAN-GP: (||grad h(x_hat)|| - 1)^2 on real-fake interpolates"
    source = "Gulrajani et al. 2017, Improved training of Wasserstein GANs"
    settings = ("lam", "every", "target")
    default_weights = _same_for_all(10.0)

    def __init__(self, lam: float = 10.0, center: float = 1.0, target: str = "discriminator"):
        super().__init__(lam)
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; choose 'discriminator' or 'loss'")
        self.center = float(center)
        self.target = target

    @classmethod
    def from_settings(cls, settings, *, lam, length, total_steps):
        return cls(lam=lam, target=settings["target"])

    def rho(self, D, real, fake, *, objective=None, fake_features=None, d_real=None):
        return gradient_penalty(D, real, fake, center=self.center, target=self.target, objective=objective)


class _ZeroCentred(Regularizer):
    """Shared by R1, R2 and R1R2: ``lam/2 * E ||grad_x D(x)||^2`` on real and/or fake inputs.

    ``lam`` is the paper's gamma. Default gamma 0.5 for images in [0, 1]: the first-order
    equivalent of AR's default (gamma = 2 * lam_ar * delta^2 = 2 * 100 * 0.05^2), so r2 and ar
    are compared at equal strength; not tuned (docs/regularizers.md). For tanh outputs the
    trainer multiplies gamma by 4, which keeps the penalty of the same images the same.
    """

    settings = ("lam", "every")
    default_weights = _same_for_all(0.5)
    on: tuple[str, ...] = ()

    def __init__(self, lam: float = 0.5):
        super().__init__(lam)

    @classmethod
    def from_settings(cls, settings, *, lam, length, total_steps):
        # ||grad_x D||^2 scales as 1 / (pixel range)^2; gamma is given for [0, 1] images
        return cls(lam=lam * length(1.0) ** 2)

    def input_grads(self):
        return frozenset(self.on)

    def rho(self, D, real, fake, *, objective=None, fake_features=None, d_real=None):
        total = real.new_zeros((), dtype=torch.float32)
        if "real" in self.on:
            total = total + zero_centred_penalty(D, real, d_real if real.requires_grad else None)
        if "fake" in self.on:
            d_fake = None
            if fake_features is not None and fake.requires_grad:
                d_fake = last_linear(D)(fake_features).squeeze(-1)
            total = total + zero_centred_penalty(D, fake, d_fake)
        return total


@register_regularizer
class R1(_ZeroCentred):
    """R1 (``r1``): ``gamma/2 * E ||grad_x D(x)||^2`` on real data (Mescheder et al. 2018)."""

    name = "r1"
    description = "zero-centred gradient penalty on real data"
    source = "Mescheder et al. 2018, Which training methods for GANs do actually converge?"
    on = ("real",)


@register_regularizer
class R2(_ZeroCentred):
    """R2 (``r2``): ``gamma/2 * E ||grad_x D(G(z))||^2`` on generated data (Mescheder et al. 2018)."""

    name = "r2"
    description = "zero-centred gradient penalty on generated data"
    source = "Mescheder et al. 2018, Which training methods for GANs do actually converge?"
    on = ("fake",)


@register_regularizer
class R1R2(_ZeroCentred):
    """R1 + R2 (``r1r2``), each with weight gamma/2, as in R3GAN (Huang et al. 2024)."""

    name = "r1r2"
    description = "R1 + R2, as in R3GAN"
    source = "Huang et al. 2024, The GAN is dead; long live the GAN! A modern baseline GAN"
    on = ("real", "fake")


class _RobustRegularizer(Regularizer):
    uses_attack = True

    def __init__(self, lam: float = 1.0, delta: float = DEFAULT_DELTA, attack: str = "fgm",
                 attack_kwargs: dict | None = None, target: str = "discriminator", delta_inf: float | None = None):
        super().__init__(lam)
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; choose 'discriminator' or 'loss'")
        get_attack(attack, **(attack_kwargs or {}))  # validates the name and options now
        self.delta = float(delta)
        self.delta_inf = None if delta_inf is None else float(delta_inf)
        self.attack = attack
        self.attack_kwargs = dict(attack_kwargs or {})
        self.target = target

    @classmethod
    def _attack_args(cls, settings, length) -> dict:
        spec = attack_spec(settings["attack"])
        kwargs = {ATTACK_SETTINGS[o][0]: settings[o] for o in spec.options}
        if "p" in kwargs:
            kwargs["p"] = spec.norm_with(kwargs)
        delta_inf = settings["delta_inf"]
        return dict(delta=length(settings["delta"]), delta_inf=None if delta_inf is None else length(delta_inf),
                    attack=settings["attack"], attack_kwargs=kwargs, target=settings["target"])

    @classmethod
    def from_settings(cls, settings, *, lam, length, total_steps):
        return cls(lam=lam, **cls._attack_args(settings, length))

    @property
    def single_step(self) -> bool:
        return attack_spec(self.attack).single_step

    def radius(self, x: torch.Tensor) -> float:
        """The radius of the attack's ball for batch ``x`` (``delta``, or the L-inf radius)."""
        if attack_spec(self.attack).norm_with(self.attack_kwargs) == "inf":
            return linf_radius(self.delta, self.delta_inf, x)
        return self.delta

    def input_grads(self):
        # a single-step attack's gradient reuses D's forward pass on the fake batch
        return frozenset({"fake"}) if self.single_step else frozenset()


@register_regularizer
class AdversarialRegularizer(_RobustRegularizer):
    """Adversarial regularisation (``ar``, Eq. 4): ``lam * E (h(G(z)) - h(G(z) + v))^2``."""

    name = "ar"
    description = "adversarial regularisation, Eq. 4: (h(G(z)) - h(G(z) + v))^2"
    source = "Zhou & Kraehenbuehl 2019, Don't let your discriminator be fooled (Eq. 4)"
    settings = ("lam", "every", *_ATTACK_KEYS)
    default_weights = _same_for_all(100.0)

    def rho(self, D, real, fake, *, objective=None, fake_features=None, d_real=None):
        return adversarial_regularization(D, fake, delta=self.radius(fake), attack=self.attack,
                                          attack_kwargs=self.attack_kwargs, target=self.target,
                                          objective=objective, fake_features=fake_features)


@register_regularizer
class RobustFeatureMatching(_RobustRegularizer):
    """Robust feature matching (``rfm``, Eq. 5): ``lam * (E ||phi(G(z)) - phi(G(z)+v)||^2 + alpha ||w||^2)``."""

    name = "rfm"
    description = "robust feature matching, Eq. 5: ||phi(G(z)) - phi(G(z) + v)||^2 + alpha ||w||^2"
    source = "Zhou & Kraehenbuehl 2019, Don't let your discriminator be fooled (Eq. 5)"
    settings = ("lam", "every", *_ATTACK_KEYS, "alpha", "attack_measure")
    default_weights = _same_for_all(1.0, wgan=100.0)

    def __init__(self, lam: float = 1.0, delta: float = DEFAULT_DELTA, alpha: float = 1e-4,
                 attack_measure: str = "output", **kw):
        super().__init__(lam, delta, **kw)
        if attack_measure not in MEASURES:
            raise ValueError(f"unknown attack_measure {attack_measure!r}; choose 'output' or 'features'")
        self.alpha = float(alpha)
        self.attack_measure = attack_measure

    @classmethod
    def from_settings(cls, settings, *, lam, length, total_steps):
        return cls(lam=lam, alpha=settings["alpha"], attack_measure=settings["attack_measure"],
                   **cls._attack_args(settings, length))

    def rho(self, D, real, fake, *, objective=None, fake_features=None, d_real=None):
        return robust_feature_matching(D, fake, delta=self.radius(fake), alpha=self.alpha, attack=self.attack,
                                       attack_kwargs=self.attack_kwargs, target=self.target, objective=objective,
                                       fake_features=fake_features, attack_measure=self.attack_measure)


# ------------------------------------------------------------------------------------------ lookups
def _reg_class(name: str) -> type[Regularizer]:
    try:
        return REGULARIZERS[name]
    except KeyError:
        raise ValueError(f"unknown regulariser {name!r}; choose one of {', '.join(REGULARIZERS)}") from None


def default_weight(name: str, loss: str) -> float:
    """The default ``lam`` of regulariser ``name`` with ``loss``; 0.0 for regularisers without a
    weight (none, noise). A missing entry raises :class:`ConfigError` (never a silent 0)."""
    cls = _reg_class(name)
    if cls.default_weights is None:
        return 0.0
    row = loss
    if row not in cls.default_weights:
        obj = OBJECTIVES.get(loss)
        row = getattr(obj, "weights_like", None) or loss
    if row not in cls.default_weights:
        raise ConfigError(f"no default weight for reg={name} with loss={loss}; set reg.lam, or add a row for "
                          f"{loss} to {cls.__name__}.default_weights (or a weights_like to the loss)")
    return float(cls.default_weights[row])


def make_regularizer(name: str, **settings) -> Regularizer:
    """Build regulariser ``name`` (a key of :data:`REGULARIZERS`) from constructor keyword settings.

    Unknown settings raise ``ValueError`` naming the valid ones.
    """
    cls = _reg_class(name)
    try:
        return cls(**settings)
    except TypeError as exc:
        import inspect
        valid = [p for c in cls.__mro__ if "__init__" in vars(c)
                 for p in inspect.signature(c.__init__).parameters if p not in ("self", "kw")]
        raise ValueError(f"bad setting for regulariser {name!r} ({exc}); valid settings: {', '.join(dict.fromkeys(valid))}") from None


def check_settings(reg: dict, loss: str) -> None:
    """Check the ``reg`` section of a config against the registries (types are checked elsewhere).

    The rule for settings a regulariser does not use: a value that differs from its default is an
    error (it would silently mean nothing); the default value is allowed, so a preset may set the
    shared keys. The same holds for attack options the chosen attack does not take, and for the
    robust-loss target with a loss that has no per-sample f.
    """
    name = reg["name"]
    cls = _reg_class(name) if isinstance(name, str) else None
    if cls is None:
        raise ConfigError(f"reg.name={name!r} is not valid; choose one of {', '.join(REGULARIZERS)}")

    def differs(key):
        return reg[key] != SETTINGS[key].default

    unused = [k for k in SETTINGS if k not in cls.settings and differs(k)]
    if unused:
        k = unused[0]
        uses = ", ".join(f"reg.{s}" for s in cls.settings) or "no settings"
        raise ConfigError(f"reg.{k}={reg[k]!r} means nothing for reg={name} (it uses {uses}); remove it or choose "
                          f"a regulariser that uses it")
    if cls.uses_attack:
        attack = reg["attack"]
        if attack not in ATTACK_REGISTRY:
            raise ConfigError(f"reg.attack={attack!r} is not valid; choose one of {', '.join(ATTACK_REGISTRY)}")
        spec = ATTACK_REGISTRY[attack]
        for key in ATTACK_SETTINGS:
            if key not in spec.options and differs(key):
                raise ConfigError(f"reg.{key}={reg[key]!r} means nothing for reg.attack={attack} (it takes "
                                  f"{', '.join('reg.' + o for o in spec.options) or 'no options'})")
        options = {ATTACK_SETTINGS[o][0]: reg[o] for o in spec.options}
        norm = spec.norm_with(options)
        if norm != "inf" and differs("delta_inf"):
            raise ConfigError(f"reg.delta_inf={reg['delta_inf']!r} means nothing for the L2 attack {attack}; "
                              f"set reg.delta, or use an L-inf attack (fgsm, pgd with reg.attack_norm=inf)")
        if "attack_measure" in cls.settings and differs("attack_measure") and not spec.measure:
            raise ConfigError(f"reg.attack_measure={reg['attack_measure']!r} means nothing for reg.attack={attack} "
                              f"(a single-step attack follows grad h); use pgd or cw")
    if "target" in cls.settings and reg["target"] == "loss":
        obj = OBJECTIVES.get(loss)
        if obj is not None and not obj.has_f:
            raise ConfigError(f"reg.target=loss is undefined for loss={loss} (it has no per-sample f to apply to D); "
                              f"use reg.target=discriminator")
    if cls.default_weights is not None and reg["lam"] is None:
        default_weight(name, loss)  # raises when the table has no row
