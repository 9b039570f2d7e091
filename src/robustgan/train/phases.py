"""The losses of the two training phases; they own the discriminator's forward passes.

:class:`DiscriminatorLoss` runs D on the real and the fake batch, lets the regulariser see the
inputs it needs (instance noise on both; inputs that require grad where the penalty
differentiates D at the very forward pass D already ran: a single-step attack, R1, R2), adds the
penalty every ``every``-th D step scaled by ``every`` (lazy regularisation), and returns the loss
and its statistics. :class:`GeneratorLoss` does the same for G's phase: the same instance noise,
and D on a real batch for losses whose generator term needs it (``rpgan``).

The shared fake forward pass is ``fake_features = D.features(fake)``, from which
``d_fake = D.last_linear(fake_features)``; regularisers receive it under that name. Neither class
knows a regulariser or an attack by name: they ask the regulariser (``sigma_at``,
``input_grads``, ``penalty``) and the objective (``d_loss``, ``g_loss``, ``g_needs_real``).
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import torch
import torch.nn as nn

from ..objectives import Objective
from ..regularizers import Regularizer

__all__ = ["DiscriminatorLoss", "GeneratorLoss", "add_instance_noise"]


def add_instance_noise(x: torch.Tensor | None, sigma: float) -> torch.Tensor | None:
    """``x + sigma * N(0, I)`` (``x`` unchanged when sigma is 0 or x is None)."""
    if x is None or sigma == 0.0:
        return x
    return x + sigma * torch.randn_like(x)


class DiscriminatorLoss:
    """D's loss ``-L(G, D) + every * lam * rho`` for one D step.

    Args:
        D: the discriminator (protocol: ``features`` and ``last_linear``).
        objective: the GAN objective.
        reg: the regulariser (its ``lam`` 0 means no penalty).
        every: lazy regularisation interval k (the penalty is applied when ``step % k == 0``,
            multiplied by k).
        autocast: a callable returning the context the forward passes run in (bf16 or none).
    """

    def __init__(self, D: nn.Module, objective: Objective, reg: Regularizer, every: int = 1,
                 autocast: Callable[[], ContextManager] = contextlib.nullcontext):
        self.D, self.objective, self.reg, self.every, self.autocast = D, objective, reg, int(every), autocast

    def applies(self, step: int) -> bool:
        """Whether the penalty is added at D step ``step``."""
        return self.reg.lam > 0 and step % self.every == 0

    def __call__(self, real: torch.Tensor, fake: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        """The loss to back-propagate and its statistics.

        Args:
            real, fake: batches ``(B, ...)`` in the model's range; ``fake`` detached from G.
            step: the D step (instance-noise schedule, lazy regularisation).

        Returns:
            ``(loss, stats)``: ``loss`` a scalar with gradients to D; ``stats`` detached 0-dim
            tensors ``loss_d`` (without the penalty), ``penalty`` (``lam * rho`` before the lazy
            factor; None when not applied this step), ``d_real``, ``d_fake`` (means).
        """
        real, fake = self.reg.perturb(real, fake, step)
        apply = self.applies(step)
        grads = self.reg.input_grads() if apply else frozenset()
        if "real" in grads:
            real = real.detach().requires_grad_(True)
        if "fake" in grads:
            fake = fake.detach().requires_grad_(True)
        with self.autocast():
            fake_features = None
            if "fake" in grads:  # the penalty differentiates this very pass: keep the features
                fake_features = self.D.features(fake)
                d_fake = self.D.last_linear(fake_features).squeeze(-1)
            else:
                d_fake = self.D(fake)
            d_real = self.D(real)
            loss = self.objective.d_loss(d_real.float(), d_fake.float())
            penalty = None
            if apply:
                penalty = self.reg.penalty(self.D, real, fake, objective=self.objective,
                                           fake_features=fake_features,
                                           d_real=d_real if "real" in grads else None)
        total = loss if penalty is None else loss + self.every * penalty
        stats = {"loss_d": loss.detach(), "penalty": None if penalty is None else penalty.detach(),
                 "d_real": d_real.detach().float().mean(), "d_fake": d_fake.detach().float().mean()}
        return total, stats


class GeneratorLoss:
    """G's loss through ``D(G(z) + eps)``, with the instance noise of the D phase.

    Args:
        D: the discriminator (frozen by the caller for this phase).
        objective: the GAN objective; where ``objective.g_needs_real`` a real batch is needed.
        reg: the regulariser, asked for the noise std ``sigma_at(step)``.
        autocast: as for :class:`DiscriminatorLoss`.
    """

    def __init__(self, D: nn.Module, objective: Objective, reg: Regularizer,
                 autocast: Callable[[], ContextManager] = contextlib.nullcontext):
        self.D, self.objective, self.reg, self.autocast = D, objective, reg, autocast

    @property
    def needs_real(self) -> bool:
        return self.objective.g_needs_real

    def __call__(self, fake: torch.Tensor, real: torch.Tensor | None, step: int) -> torch.Tensor:
        """The generator's loss (a scalar with gradients to G through ``fake``).

        Args:
            fake: ``G(z)`` with its graph.
            real: a real batch when :attr:`needs_real`, else ignored (may be None).
            step: the D step whose noise std applies.
        """
        sigma = self.reg.sigma_at(step)
        fake = add_instance_noise(fake, sigma)
        d_real = None
        if self.needs_real:
            if real is None:
                raise ValueError(f"loss {self.objective.name!r} needs a real batch in the generator phase")
            with torch.no_grad(), self.autocast():
                d_real = self.D(add_instance_noise(real, sigma)).float()
        with self.autocast():
            d_fake = self.D(fake).float()
        return self.objective.g_loss(d_fake, d_real) if self.needs_real else self.objective.g_loss(d_fake)
