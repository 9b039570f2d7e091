"""Adversarial attacks on a differentiable scalar function of the input.

Every attack takes ``h``, a callable mapping a batch ``x`` of shape ``(B, ...)`` to one value per
sample (shape ``(B,)``; usually a discriminator ``D`` or ``f o D``), the batch ``x`` and a radius
``delta``, and returns a perturbation ``v`` with the shape of ``x`` and ``||v_i||_p <= delta`` for
every sample ``i``. The attacks *increase* ``h``: for ``h = D`` they push generated samples
towards "more real", the direction of the paper's fast normalised gradient attack
``v = delta * grad_x D / ||grad_x D||_2``. To first order the same ``v`` also maximises the
squared change ``(h(x) - h(x + v))^2`` that the regularisers penalise.

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
from typing import Callable

import torch

__all__ = ["fgm", "fgsm", "pgd", "cw", "ATTACKS", "get_attack", "project", "per_sample_norm"]

Scalarfn = Callable[[torch.Tensor], torch.Tensor]
_TINY = 1e-12


def per_sample_norm(v: torch.Tensor, p: float | str = 2) -> torch.Tensor:
    """Per-sample norm of ``v`` (shape ``(B, ...)``) in float32, shape ``(B,)``. ``p`` is 2 or 'inf'."""
    flat = _wide(v.detach()).flatten(1)
    if p in ("inf", math.inf):
        return flat.abs().amax(dim=1)
    if p == 2:
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
    if p == 2:
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


def pgd(h: Scalarfn, x: torch.Tensor, delta: float = 0.05, *, p: float | str = 2, steps: int = 5,
        step_size: float | None = None, random_start: bool = True,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient ascent on ``h`` inside the ``p``-ball (Madry et al.), L2 or L-infinity.

    Each of ``steps`` steps moves by ``step_size`` along the normalised gradient (L2) or the
    gradient's sign (L-inf) and projects back onto the ball. Defaults: 5 steps,
    ``step_size = 2.5 * delta / steps``, random start uniform in the ball.

    Returns:
        ``v`` with ``||v_i||_p <= delta``, detached, shape of ``x``.
    """
    if steps < 1:
        raise ValueError("pgd needs steps >= 1")
    step_size = 2.5 * delta / steps if step_size is None else float(step_size)
    x0 = x.detach()
    v = _random_in_ball(x0, delta, p, generator) if random_start else torch.zeros_like(x0, dtype=torch.float32)
    for _ in range(steps):
        g = _input_grad(h, x0 + v.to(x0.dtype))
        if p in ("inf", math.inf):
            v = v + step_size * torch.sign(g)
        else:
            v = v + _normalise_l2(g, step_size)
        v = project(v, delta, p)
    return v.to(_out_dtype(x)).detach()


def cw(h: Scalarfn, x: torch.Tensor, delta: float = 0.05, *, steps: int = 5, lr: float | None = None,
       c: float = 0.1, generator: torch.Generator | None = None) -> torch.Tensor:
    """Carlini-Wagner-style attack, L2 ball.

    Optimises ``v`` with Adam for ``steps`` steps to maximise, per sample,
    ``h(x + v) - h(x) - c * s * ||v||_2^2 / delta^2``: the output change minus a norm cost, where
    ``s = delta * ||grad_x h(x)||`` is the first-order change reachable in the ball (so ``c`` does
    not depend on the scale of ``h``). Starts from a small random ``v`` and clips each ``v_i`` to
    ``||v_i||_2 <= delta`` at the end. Defaults: 5 steps, ``c = 0.1``,
    ``lr = 2 * delta / (steps * sqrt(numel per sample))`` (Adam moves every coordinate by about
    ``lr`` per step, so the ball's boundary is reachable).
    """
    if steps < 1:
        raise ValueError("cw needs steps >= 1")
    x0 = x.detach()
    d = x0[0].numel()
    lr = 2.0 * delta / (steps * math.sqrt(d)) if lr is None else float(lr)
    scale = delta * _input_grad(h, x0).flatten(1).norm(dim=1)
    v = (0.01 * _random_in_ball(x0, delta, 2, generator)).requires_grad_(True)
    opt = torch.optim.Adam([v], lr=lr)
    with torch.enable_grad():
        with torch.no_grad():
            base = h(x0).float()
        for _ in range(steps):
            out = h(x0 + v.to(x0.dtype)).float()
            gain = (out - base) - c * scale * v.flatten(1).pow(2).sum(1) / delta ** 2
            (g,) = torch.autograd.grad(-gain.sum(), v)
            v.grad = g
            opt.step()
    return project(v.detach(), delta, 2).to(_out_dtype(x))


ATTACKS = {"fgm": fgm, "fgsm": fgsm, "pgd": pgd, "cw": cw}
#: the norm of the ball each attack works in (pgd's default; pass p='inf' for L-inf PGD)
ATTACK_NORMS = {"fgm": 2, "fgsm": "inf", "pgd": 2, "cw": 2}


def get_attack(name: str, **kwargs) -> Callable[..., torch.Tensor]:
    """Return attack ``name`` (fgm, fgsm, pgd, cw) with ``kwargs`` bound (e.g. ``steps``, ``p``)."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}")
    fn = ATTACKS[name]
    if name in ("fgm", "fgsm") and kwargs:
        raise ValueError(f"attack {name!r} takes no options (got {', '.join(kwargs)})")
    if not kwargs:
        return fn

    def bound(h, x, delta=0.05, **kw):
        return fn(h, x, delta, **{**kwargs, **kw})

    bound.__name__ = name
    bound.__doc__ = fn.__doc__
    return bound
