"""The Dirac-GAN study of Section 4.2 / Appendix E (Figures 2 and 5 of the paper).

Data is a Dirac at 0, the generator a Dirac at ``theta`` and the discriminator the line
``D(x) = psi * x``, so Eq. 1 reduces to ``L(theta, psi) = f(psi * theta) + f(0)``. The package
is laid out as the Dirac-GAN notebook of Mescheder et al. keeps it:

=================  ==========================================================================
:mod:`.fields`     one small vector-field class per method (``vector(theta, psi)``, the feasible
                   set, the generator's objective); :func:`make_field`, :data:`METHODS`
:mod:`.solver`     :func:`maximize_concave`: l(theta) = max over psi, robust to unbounded and
                   sup-at-infinity objectives
:mod:`.simulation` :func:`simulate`: alternating or simultaneous gradient descent/ascent
:mod:`.plots`      Figure 2 (:func:`plot_objectives`) and Figure 5 (:func:`plot_vector_fields`)
:mod:`.study`      :func:`run_study` (every loss x method, ``dirac.json``) and the command line
:mod:`.defaults`   :data:`DEFAULTS` of the study and its flags
=================  ==========================================================================

Methods (constructor settings ``delta``, ``eps``, ``lam``):

============================  =============================================================
``none``                      plain game; l is flat (or +inf for wgan) away from theta = 0
``robust_loss``               Thm 4.1: |f(D(x)) - f(D(x + v))| <= eps for |v| <= delta and
                              every x in [-theta_max, theta_max] (see :func:`robust_loss_bound`)
``robust_discriminator``      Thm 4.2: |D(x) - D(x + v)| = |psi| |v| <= eps, i.e. |psi| <= eps/delta
``ar``                        Thm 4.3: maximise L - lam * (psi * delta)^2 (Eq. 4 with the
                              exact attack v = +-delta)
============================  =============================================================

In the dynamics the hard constraints are enforced by projecting psi back onto the feasible
interval after every D step. A new method is a new subclass of :class:`DiracGAN` registered with
:func:`register_method`. ``robustgan dirac --out DIR`` runs the study (:func:`add_arguments`,
:func:`run`).
"""
from __future__ import annotations

from .defaults import CONVERGED_TOL, DEFAULTS
from .fields import (
    METHODS,
    AdversarialRegularization,
    DiracGAN,
    RobustDiscriminator,
    RobustLoss,
    ScalarLoss,
    make_field,
    register_method,
    robust_loss_bound,
)
from .simulation import SIMULATORS, simulate
from .solver import ObjectiveCurve, maximize_concave
from .study import add_arguments, distance_table, run, run_study

__all__ = [
    "DEFAULTS",
    "CONVERGED_TOL",
    "DiracGAN",
    "RobustLoss",
    "RobustDiscriminator",
    "AdversarialRegularization",
    "METHODS",
    "register_method",
    "make_field",
    "ScalarLoss",
    "ObjectiveCurve",
    "maximize_concave",
    "robust_loss_bound",
    "SIMULATORS",
    "simulate",
    "plot_objectives",
    "plot_vector_fields",
    "run_study",
    "distance_table",
    "add_arguments",
    "run",
]

_PLOTS = ("plot_objectives", "plot_vector_fields", "objective_figure", "vector_field_figure")


def __getattr__(name):
    # the figures need matplotlib, which `robustgan dirac --help` and the fields do not
    if name in _PLOTS:
        from . import plots

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
