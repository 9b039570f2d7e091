"""Simulators of the Dirac-GAN dynamics (Figure 5), kept apart from the vector fields.

A simulator takes any field with ``vector(theta, psi)`` and ``project(psi)`` (a
:class:`~.fields.DiracGAN`) and returns the trajectory of fixed-step gradient descent for G and
ascent for D.
"""
from __future__ import annotations

import math

import numpy as np

from .fields import DiracGAN

__all__ = ["SIMULATORS", "simulate"]

#: Update schemes of :func:`simulate`.
SIMULATORS = ("alternating", "simultaneous")


def simulate(field: DiracGAN, theta0: float = 1.0, psi0: float = 1.0, *, lr: float = 0.1,
             steps: int = 500, mode: str = "alternating") -> np.ndarray:
    """Gradient descent for G / ascent for D with a fixed step size ``lr``.

    ``alternating``: a G step, then a D step at the updated theta (then psi is projected onto
    the feasible set). ``simultaneous``: both steps from the same point, then the projection.
    Returns the trajectory, a (steps + 1, 2) float64 array of (theta, psi), row 0 the start.
    """
    if mode not in SIMULATORS:
        raise ValueError(f"unknown simulator {mode!r}; choose 'alternating' or 'simultaneous'")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    traj = np.empty((int(steps) + 1, 2))
    theta, psi = float(theta0), float(psi0)
    traj[0] = theta, psi
    for k in range(1, int(steps) + 1):
        if mode == "alternating":
            dtheta, _ = field.vector(theta, psi)
            theta = theta + lr * float(dtheta)
            _, dpsi = field.vector(theta, psi)
            psi = psi + lr * float(dpsi)
        else:
            dtheta, dpsi = field.vector(theta, psi)
            theta, psi = theta + lr * float(dtheta), psi + lr * float(dpsi)
        psi = float(field.project(psi))
        traj[k] = theta, psi
    return traj
