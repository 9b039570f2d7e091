"""Settings of the Dirac-GAN study, shared by the fields, the study and the command line."""
from __future__ import annotations

__all__ = ["DEFAULTS", "CONVERGED_TOL"]

#: Defaults of :func:`~robustgan.experiments.dirac.study.run_study`, mirrored one-to-one by the
#: command-line flags. delta is in the units of x (the generator's theta); the paper's Figure 2/5
#: settings are not given in the text, so these are chosen to make the curves readable on theta in
#: [-2, 2]: eps/delta = 0.25 keeps the lsgan robust-discriminator curve strictly monotone on [-2, 2]
#: (its maximiser psi*theta = -1 is only reached at |theta| = 4), and lam * delta^2 = 0.5
#: critically damps the linearised AR dynamics of gan (f'(0) = -1/2).
DEFAULTS = {
    "losses": ("gan", "lsgan", "wgan"),
    "methods": ("none", "robust_loss", "robust_discriminator", "ar"),
    "delta": 1.0,
    "eps": 0.25,
    "lam": 0.5,
    "lr": 0.1,
    "steps": 500,
    "theta0": 1.0,
    "psi0": 1.0,
    "simulator": "alternating",
    "theta_max": 2.0,
    "n_theta": 401,
}

#: A run "converges" when it ends this close to the optimum (0, 0).
CONVERGED_TOL = 0.05
