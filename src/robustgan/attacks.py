"""Adversarial attacks on a differentiable scalar function of the input.

Every attack takes ``h``, a callable mapping a batch ``x`` of shape ``(B, ...)`` to one value per
sample (shape ``(B,)``; usually a discriminator ``D`` or ``f o D``), the batch ``x`` and a radius
``delta``, and returns a perturbation ``v`` with the shape of ``x`` and ``||v_i||_p <= delta`` for
every sample ``i``. The single-step attacks (fgm, fgsm) follow ``grad_x h``: for ``h = D`` they push
generated samples towards "more real", the paper's fast normalised gradient attack
``v = delta * grad_x D / ||grad_x D||_2``; to first order that ``v`` maximises the squared change
``(h(x) - h(x + v))^2`` the regularisers penalise. The multi-step attacks (pgd, cw) maximise that
squared change itself (Eq. 4 and 5 take its max over the ball), up or down.

Each attack is registered with an :class:`AttackSpec` (its norm, whether it is single-step, its
options); adding an attack is one function and one :func:`register_attack` call in this file.

Properties every attack keeps (and the tests check):

* ``v`` is detached: no graph is kept and the penalty treats it as a constant;
* gradients are taken with :func:`torch.autograd.grad` with respect to the input only, so no
  ``.grad`` is written to the parameters of ``h``;
* ``x`` may come from a generator run under ``torch.no_grad()``;
* inside a bf16 autocast region the gradient is computed in bf16 (fast) but the normalisation is
  done in float32, so ``||v||`` is exact and the direction stays accurate.

Radii are in the units of ``x``: the paper uses ``delta = 0.05`` for images in [0, 1], which is
``0.1`` for images in [-1, 1] (see :mod:`robustgan.ranges`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .options import Option

__all__ = ["fgm", "fgsm", "pgd", "cw", "AttackSpec", "ATTACK_REGISTRY", "ATTACK_SETTINGS", "ATTACKS",
           "ATTACK_NORMS", "register_attack", "attack_spec", "get_attack", "project", "per_sample_norm"]

Scalarfn = Callable[[torch.Tensor], torch.Tensor]
_TINY = 1e-12


def per_sample_norm(v: torch.Tensor, p: float | str = 2) -> torch.Tensor:
    """Per-sample norm of ``v`` (shape ``(B, ...)``) in float32, shape ``(B,)``. ``p`` is 2 or 'inf'."""
    flat = _wide(v.detach()).flatten(1)
    if p in ("inf", math.inf):
        return flat.abs().amax(dim=1)
    if p in (2, "2"):
        return flat.norm(dim=1)
    raise ValueError(f"unsupported norm p={p!r}; use 2 or 'inf'")


def _wide(t: torch.Tensor) -> torch.Tensor:
    """float32 for half/bf16/float32 tensors, float64 kept."""
    return t if t.dtype == torch.float64 else t.float()


def _expand(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return s.view(-1, *([1] * (like.dim() - 1)))


def _input_grad(h: Scalarfn, x: torch.Tensor, h_x: torch.Tensor | None = None) -> torch.Tensor:
    """Gradient of sum_i h(x)_i with respect to x, as float32, without touching parameter .grad."""
    if h_x is not None:
        # The caller already ran h on a leaf x that requires grad (the trainer shares the
        # discriminator's forward pass on the fake batch with the attack); keep that graph alive.
        if not x.requires_grad:
            raise ValueError("h_x was given but x does not require grad")
        (g,) = torch.autograd.grad(h_x.sum(), x, retain_graph=True)
        return _wide(g)
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        out = h(xg)
        if out.dim() != 1 or out.shape[0] != x.shape[0]:
            out = out.reshape(x.shape[0], -1).sum(1)
        (g,) = torch.autograd.grad(out.sum(), xg)
    return _wide(g)


def _normalise_l2(g: torch.Tensor, delta: float) -> torch.Tensor:
    n = g.flatten(1).norm(dim=1)
    # A zero gradient (e.g. a constant h) gives v = 0, which lies in the ball.
    scale = torch.where(n > _TINY, delta / n.clamp_min(_TINY), torch.zeros_like(n))
    return g * _expand(scale, g)


def project(v: torch.Tensor, delta: float, p: float | str = 2) -> torch.Tensor:
    """Project each sample of ``v`` onto the ``p``-norm ball of radius ``delta`` (p = 2 or 'inf')."""
    if p in ("inf", math.inf):
        return v.clamp(-delta, delta)
    if p in (2, "2"):
        n = _wide(v).flatten(1).norm(dim=1)
        factor = torch.where(n > delta, delta / n.clamp_min(_TINY), torch.ones_like(n))
        return v * _expand(factor, v).to(v.dtype)
    raise ValueError(f"unsupported norm p={p!r}; use 2 or 'inf'")


def fgm(h: Scalarfn, x: torch.Tensor, delta: float = 0.05, *, h_x: torch.Tensor | None = None) -> torch.Tensor:
    """Fast normalised gradient attack (the paper's main attack), L2 ball.

    ``v_i = delta * g_i / ||g_i||_2`` with ``g = grad_x h(x)``. ``||v_i||_2 = delta`` exactly
    (0 where the gradient vanishes).

    Args:
        h: callable ``(B, ...) -> (B,)``.
        x: input batch, any float dtype; not modified.
        delta: L2 radius, in the units of ``x`` (0.05 for [0, 1] images).
        h_x: optional ``h(x)`` already computed on ``x`` with ``x.requires_grad``; its graph is
            reused (and retained) instead of running ``h`` again.

    Returns:
        ``v``, detached, float32 (or ``x.dtype`` if wider), shape of ``x``.
    """
    g = _input_grad(h, x, h_x)
    return _normalise_l2(g, delta).to(_out_dtype(x)).detach()


def fgsm(h: Scalarfn, x: torch.Tensor, delta: float = 0.05, *, h_x: torch.Tensor | None = None) -> torch.Tensor:
    """Fast gradient sign method, L-infinity ball: ``v = delta * sign(grad_x h(x))``."""
    g = _input_grad(h, x, h_x)
    return (delta * torch.sign(g)).to(_out_dtype(x)).detach()


def _out_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.dtype == torch.float64 else torch.float32


def _random_in_ball(x: torch.Tensor, delta: float, p, generator: torch.Generator | None) -> torch.Tensor:
    if p in ("inf", math.inf):
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)
        return (2 * u - 1) * delta
    # uniform in the L2 ball: direction uniform on the sphere, radius ~ delta * U^(1/d)
    d = x[0].numel()
    g = torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    g = _normalise_l2(g, 1.0)
    r = torch.rand(x.shape[0], generator=generator, device=x.device) ** (1.0 / d)
    return g * _expand(r * delta, g)


def _flat_change(out: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """Per-sample squared change ``||out_i - base_i||^2`` in float32, for (B,) or (B, F) outputs."""
    return (_wide(out) - base).reshape(base.shape[0], -1).pow(2).sum(1)


def _change_and_grad(measure: Scalarfn, x0: torch.Tensor, v: torch.Tensor, base: torch.Tensor):
    """The squared change at ``v`` and its gradient with respect to ``v`` (both float32)."""
    with torch.enable_grad():
        vg = v.detach().requires_grad_(True)
        gain = _flat_change(measure(x0 + vg.to(x0.dtype)), base)
        (g,) = torch.autograd.grad(gain.sum(), vg)
    return gain.detach(), _wide(g)


def _better_side(m: Scalarfn, x0: torch.Tensor, base: torch.Tensor, v1: torch.Tensor):
    """Per sample, whichever of ``+v1`` and ``-v1`` changes ``m`` more, and that squared change."""
    with torch.no_grad():
        up = _flat_change(m(x0 + v1.to(x0.dtype)), base)
        down = _flat_change(m(x0 - v1.to(x0.dtype)), base)
    return _keep_best(v1, up, -v1, down)


def _keep_best(best_v, best_gain, v, gain):
    better = gain > best_gain
    return torch.where(_expand(better, v), v, best_v), torch.where(better, gain, best_gain)


def pgd(h: Scalarfn, x: torch.Tensor, delta: float = 0.05, *, p: float | str = 2, steps: int = 5,
        step_size: float | None = None, random_start: bool = True,
        generator: torch.Generator | None = None, measure: Scalarfn | None = None) -> torch.Tensor:
    """Projected gradient ascent on the squared change inside the ``p``-ball (Madry et al.).

    Maximises, per sample, ``||m(x + v) - m(x)||^2`` with ``m = measure`` (default ``h``; ``m`` may
    return ``(B,)`` or ``(B, F)``, e.g. the discriminator's features for robust feature matching):
    the quantity the penalties of Eq. 4 and 5 take the max of, so the attack may push ``h`` up or
    down, whichever changes it more. Each of ``steps`` steps moves by ``step_size`` along the
    normalised gradient (L2) or its sign (L-inf) and projects back onto the ball. Each sample gets
    the best of its iterates and of the single-step point on either side (``+-delta * grad h /
    ||grad h||`` for L2, ``+-delta * sign(grad h)`` for L-inf), so PGD never finds less than FGM /
    FGSM; that costs one gradient and two forward passes more than the steps. Without a random start the first step
    follows ``grad h`` (the squared change has zero gradient at ``v = 0``; to first order both
    ascend it). Defaults: 5 steps, ``step_size = 2.5 * delta / steps``, random start uniform in
    the ball.

    Returns:
        ``v`` with ``||v_i||_p <= delta``, detached, shape of ``x``.
    """
    if steps < 1:
        raise ValueError("pgd needs steps >= 1")
    p = _norm_name(p)
    m = measure or h
    step_size = 2.5 * delta / steps if step_size is None else float(step_size)
    x0 = x.detach()
    with torch.no_grad():
        base = _wide(m(x0))
    g0 = _input_grad(h, x0)
    # The single-step point (FGM / FGSM at the full radius) is a candidate: from a random start a
    # few fixed-size steps may not reach it, and the attack should never find less than it does. Both
    # signs: the squared change has a local maximum on each side and either may be the larger.
    best_v, best_gain = _better_side(m, x0, base, delta * torch.sign(g0) if p == "inf" else _normalise_l2(g0, delta))
    v = _random_in_ball(x0, delta, p, generator) if random_start else torch.zeros_like(x0, dtype=torch.float32)
    for k in range(steps):
        if k == 0 and not random_start:
            g = g0
        else:
            gain, g = _change_and_grad(m, x0, v, base)
            best_v, best_gain = _keep_best(best_v, best_gain, v, gain)
        v = v + (step_size * torch.sign(g) if p == "inf" else _normalise_l2(g, step_size))
        v = project(v, delta, p)
    with torch.no_grad():
        best_v, _ = _keep_best(best_v, best_gain, v, _flat_change(m(x0 + v.to(x0.dtype)), base))
    return best_v.to(_out_dtype(x)).detach()


def cw(h: Scalarfn, x: torch.Tensor, delta: float = 0.05, *, steps: int = 5, lr: float | None = None,
       c: float = 0.1, generator: torch.Generator | None = None, measure: Scalarfn | None = None) -> torch.Tensor:
    """Carlini-Wagner-style attack on the squared change, L2 ball.

    Optimises ``v`` with Adam for ``steps`` steps to maximise, per sample,
    ``||m(x + v) - m(x)||^2 - c * s * ||v||_2^2 / delta^2`` (``m = measure``, default ``h``): the
    squared change minus a norm cost, where ``s`` is the squared change at the fast gradient point
    ``v_fgm = +-delta * grad h / ||grad h||`` (the sign that changes ``m`` more; so ``c`` does not
    depend on the scale of ``m``). Starts from ``v_fgm / 2`` and clips each ``v_i`` to
    ``||v_i||_2 <= delta``; the best of the clipped iterates and ``v_fgm`` is returned, so CW never
    finds less than FGM. Defaults: 5 steps,
    ``c = 0.1``, ``lr = 2 * delta / (steps * sqrt(numel per sample))`` (Adam moves every coordinate
    by about ``lr`` per step, so the ball's boundary is reachable). ``generator`` is accepted for
    a uniform attack signature; the attack is deterministic.
    """
    if steps < 1:
        raise ValueError("cw needs steps >= 1")
    m = measure or h
    x0 = x.detach()
    d = x0[0].numel()
    lr = 2.0 * delta / (steps * math.sqrt(d)) if lr is None else float(lr)
    with torch.no_grad():
        base = _wide(m(x0))
    best_v, best_gain = _better_side(m, x0, base, _normalise_l2(_input_grad(h, x0), delta))
    scale = best_gain
    v = (0.5 * best_v).clone().requires_grad_(True)
    opt = torch.optim.Adam([v], lr=lr)
    for _ in range(steps):
        with torch.enable_grad():
            change = _flat_change(m(x0 + v.to(x0.dtype)), base)
            objective = change - c * scale * v.flatten(1).pow(2).sum(1) / delta ** 2
            (g,) = torch.autograd.grad(-objective.sum(), v)
        clipped = project(v.detach(), delta, 2)
        if torch.equal(clipped, v.detach()):
            best_v, best_gain = _keep_best(best_v, best_gain, clipped, change.detach())
        v.grad = g
        opt.step()
    with torch.no_grad():
        clipped = project(v.detach(), delta, 2)
        best_v, _ = _keep_best(best_v, best_gain, clipped, _flat_change(m(x0 + clipped.to(x0.dtype)), base))
    return best_v.to(_out_dtype(x)).detach()


def _norm_name(p) -> str:
    if p in ("inf", math.inf):
        return "inf"
    if p in (2, "2"):
        return "2"
    raise ValueError(f"unsupported norm p={p!r}; use 2 or 'inf'")


# ------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class AttackSpec:
    """What the rest of the code needs to know about an attack.

    Attributes:
        name: the config name (``reg.attack``).
        fn: ``fn(h, x, delta, **options) -> v``.
        norms: the balls it works in, "2" or "inf"; the first is its default.
        single_step: one gradient of ``h`` at ``x`` and nothing else, so it can reuse the caller's
            forward pass (``fn(..., h_x=h(x))``, with ``x.requires_grad``).
        options: the generic attack settings it accepts (keys of :data:`ATTACK_SETTINGS`).
        measure: True where it maximises a ``measure`` (the squared change of ``h`` or of D's
            features) by several steps; single-step attacks follow ``grad h``.
        description: one line.
    """

    name: str
    fn: Callable[..., torch.Tensor]
    norms: tuple[str, ...]
    single_step: bool
    options: tuple[str, ...] = ()
    measure: bool = False
    description: str = ""

    @property
    def norm(self) -> str:
        """The ball of the attack with its default options ("2" or "inf")."""
        return self.norms[0]

    def norm_with(self, options: dict) -> str:
        """The ball with ``options`` (the ``reg.attack_norm`` setting for attacks that take it)."""
        return _norm_name(options["p"]) if "p" in options else self.norm


#: Generic attack settings: config key under ``reg.`` -> (keyword of the attack function, Option).
ATTACK_SETTINGS: dict[str, tuple[str, Option]] = {
    "attack_steps": ("steps", Option("int", 5, "steps of a multi-step attack (pgd, cw)", low=1)),
    "attack_norm": ("p", Option("choice", 2, "ball of pgd: 2 or inf (L-inf uses reg.delta_inf)", choices=(2, "inf"))),
}

ATTACK_REGISTRY: dict[str, AttackSpec] = {}


def register_attack(spec: AttackSpec) -> AttackSpec:
    """Add ``spec`` to the registry (config choices, validation and the trainer read it)."""
    unknown = [o for o in spec.options if o not in ATTACK_SETTINGS]
    if unknown:
        raise ValueError(f"attack {spec.name!r} declares unknown options {unknown}; known: {', '.join(ATTACK_SETTINGS)}")
    ATTACK_REGISTRY[spec.name] = spec
    return spec


register_attack(AttackSpec("fgm", fgm, ("2",), single_step=True,
                           description="fast normalised gradient, L2 (the paper's main attack)"))
register_attack(AttackSpec("fgsm", fgsm, ("inf",), single_step=True,
                           description="fast gradient sign, L-inf (Appendix F)"))
register_attack(AttackSpec("pgd", pgd, ("2", "inf"), single_step=False, options=("attack_steps", "attack_norm"),
                           measure=True, description="projected gradient ascent on the squared change, L2 or L-inf"))
register_attack(AttackSpec("cw", cw, ("2",), single_step=False, options=("attack_steps",), measure=True,
                           description="Carlini-Wagner-style Adam ascent on the squared change, L2"))

#: name -> attack function (a view of the registry)
ATTACKS = {name: spec.fn for name, spec in ATTACK_REGISTRY.items()}
#: name -> the norm of its ball with default options (a view of the registry)
ATTACK_NORMS = {name: spec.norm for name, spec in ATTACK_REGISTRY.items()}


def attack_spec(name: str) -> AttackSpec:
    try:
        return ATTACK_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; choose one of {', '.join(ATTACK_REGISTRY)}") from None


def get_attack(name: str, **kwargs) -> Callable[..., torch.Tensor]:
    """Return attack ``name`` with keyword ``kwargs`` bound (e.g. ``steps``, ``p``, ``measure``)."""
    spec = attack_spec(name)
    allowed = {ATTACK_SETTINGS[o][0] for o in spec.options} | ({"measure", "generator"} if spec.measure else set())
    bad = [k for k in kwargs if k not in allowed]
    if bad:
        if not allowed:
            raise ValueError(f"attack {name!r} takes no options (got {', '.join(bad)})")
        raise ValueError(f"attack {name!r} takes {', '.join(sorted(allowed))}, not {', '.join(bad)}")
    if not kwargs:
        return spec.fn

    def bound(h, x, delta=0.05, **kw):
        return spec.fn(h, x, delta, **{**kwargs, **kw})

    bound.__name__ = name
    bound.__doc__ = spec.fn.__doc__
    return bound
