"""The Dirac-GAN study: every loss x method, its objective curve and its trajectory, in one folder.

:func:`run_study` writes ``objective.png`` (Figure 2), ``vector_fields.png`` (Figure 5) and
``dirac.json``; ``robustgan dirac --out DIR`` (:func:`add_arguments`, :func:`run`) runs it from
the command line.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path

import numpy as np

from .defaults import CONVERGED_TOL, DEFAULTS
from .fields import METHODS, make_field
from .simulation import SIMULATORS, simulate

__all__ = ["run_study", "distance_table", "add_arguments", "run"]


def _finite_or_none(a) -> list:
    return [float(x) + 0.0 if np.isfinite(x) else None for x in np.asarray(a, dtype=np.float64)]


def _signed_inf(a) -> list:
    out = []
    for x in np.asarray(a, dtype=np.float64):
        out.append(float(x) + 0.0 if np.isfinite(x) else (None if np.isnan(x) else ("+inf" if x > 0 else "-inf")))
    return out


def run_study(out_dir: str | Path = "dirac_out", *, losses=DEFAULTS["losses"], methods=DEFAULTS["methods"],
              delta: float = DEFAULTS["delta"], eps: float = DEFAULTS["eps"], lam: float = DEFAULTS["lam"],
              lr: float = DEFAULTS["lr"], steps: int = DEFAULTS["steps"], theta0: float = DEFAULTS["theta0"],
              psi0: float = DEFAULTS["psi0"], simulator: str = DEFAULTS["simulator"],
              theta_max: float = DEFAULTS["theta_max"], n_theta: int = DEFAULTS["n_theta"],
              plots: bool = True) -> dict:
    """Run the Dirac-GAN study and write ``objective.png``, ``vector_fields.png``, ``dirac.json``.

    For every loss x method: l(theta) on ``n_theta`` points of [-theta_max, theta_max] (Figure 2)
    and a ``steps``-step run of ``simulator`` gradient descent/ascent with step ``lr`` from
    (``theta0``, ``psi0``) (Figure 5). Defaults: :data:`DEFAULTS`; an even ``n_theta`` is made
    odd so that theta = 0 is on the grid. Returns the dict written to ``dirac.json``;
    ``plots=False`` skips the PNGs.
    """
    for key, val in (("delta", delta), ("eps", eps), ("lam", lam), ("lr", lr), ("theta_max", theta_max)):
        if not (isinstance(val, (int, float)) and math.isfinite(val) and val > 0):
            raise ValueError(f"{key} must be a positive number, got {val!r}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if int(n_theta) != n_theta or n_theta < 3:
        raise ValueError(f"n_theta must be an integer >= 3, got {n_theta!r}")
    losses, methods = tuple(losses), tuple(methods)
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown Dirac-GAN method {m!r}; choose from {', '.join(METHODS)}")
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_theta = int(n_theta) | 1  # odd, so that theta = 0 is on the grid
    theta = np.linspace(-theta_max, theta_max, n_theta)
    theta[n_theta // 2] = 0.0

    settings = {
        "losses": list(losses), "methods": list(methods), "delta": delta, "eps": eps, "lam": lam,
        "lr": lr, "steps": int(steps), "theta0": theta0, "psi0": psi0, "simulator": simulator,
        "theta_max": theta_max, "n_theta": n_theta, "converged_tol": CONVERGED_TOL,
        "generator_loss": "minimax: G minimises L(theta, psi) = f(psi theta) + f(0)",
        "robust_loss_region": f"|f(psi x) - f(psi (x+v))| <= eps for all x in [-{theta_max}, {theta_max}], |v| <= delta",
        "hard_constraints": "psi projected onto |psi| <= psi_max after every D step",
    }
    fields, trajs, curves, l0 = {}, {}, {}, {}
    results: dict = {}
    for loss in losses:
        fields[loss], trajs[loss], curves[loss], results[loss] = {}, {}, {}, {}
        for method in methods:
            field = make_field(method, loss, delta=delta, eps=eps, lam=lam, domain=theta_max)
            curve = field.generator_objective(theta)
            traj = simulate(field, theta0, psi0, lr=lr, steps=steps, mode=simulator)
            dist = np.hypot(traj[:, 0], traj[:, 1])
            tail = dist[-max(1, len(dist) // 5):]
            fields[loss][method], trajs[loss][method], curves[loss][method] = field, traj, curve.l
            results[loss][method] = {
                "psi_max": field.psi_max,
                "final_distance": float(dist[-1]),
                "tail_max_distance": float(tail.max()),
                "converged": bool(dist[-1] < CONVERGED_TOL),
                "end_point": [float(traj[-1, 0]), float(traj[-1, 1])],
                "l": _finite_or_none(curve.l),
                "l_unbounded": curve.unbounded,
                "psi_star": _signed_inf(curve.psi_star),
            }
        l0[loss] = 2.0 * fields[loss][methods[0]].loss.f0 + 0.0
    files = {"json": "dirac.json"}
    if plots:
        from .plots import plot_objectives, plot_vector_fields  # matplotlib only when drawing

        plot_objectives(theta, curves, out / "objective.png", l0=l0)
        plot_vector_fields(fields, trajs, out / "vector_fields.png", extent=max(2.0, abs(theta0), abs(psi0)))
        files.update(objective="objective.png", vector_fields="vector_fields.png")
    report = {
        "settings": settings,
        "notes": {
            "l": "l(theta) = max_psi [f(psi theta) + f(0) - penalty(psi)] over the feasible psi; "
                 "null means +inf (unbounded in psi: wgan without constraint)",
            "psi_star": "maximiser; '+inf'/'-inf' where the sup is only approached as |psi| -> inf, "
                        "null where l is +inf",
            "l_at_theta_0": "2 f(0) for every method; objective.png plots l(theta) - l(0)",
            "final_distance": "sqrt(theta^2 + psi^2) after `steps` steps; optimum (0, 0) for every method",
            "tail_max_distance": "max distance over the last 20% of the steps (the orbit's radius)",
        },
        "l_at_theta_0": l0,
        "theta": [float(t) for t in theta],
        "results": results,
        "files": files,
        "seconds": None,
    }
    report["seconds"] = round(time.perf_counter() - start, 3)
    text = json.dumps(report, indent=1, allow_nan=False)
    # one line per list of numbers, so that the file stays readable
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    (out / "dirac.json").write_text(text + "\n")
    return report


def distance_table(report: dict) -> str:
    """A Markdown table of final distances (rows losses, columns methods) from a study report."""
    res = report["results"]
    methods = report["settings"]["methods"]
    lines = ["| loss | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for loss, row in res.items():
        lines.append(f"| {loss} | " + " | ".join(f"{row[m]['final_distance']:.3g}" for m in methods) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# command line: `robustgan dirac`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``robustgan dirac`` (defaults: :data:`DEFAULTS`)."""
    d = DEFAULTS
    parser.add_argument("--out", default="dirac_out", help="output folder (default: dirac_out)")
    parser.add_argument("--losses", nargs="+", default=list(d["losses"]), metavar="LOSS",
                        help="losses (default: gan lsgan wgan)")
    parser.add_argument("--methods", nargs="+", default=list(d["methods"]), metavar="METHOD",
                        help=f"methods (default: {' '.join(d['methods'])})")
    parser.add_argument("--delta", type=float, default=d["delta"], help=f"attack radius (default {d['delta']})")
    parser.add_argument("--eps", type=float, default=d["eps"], help=f"robustness level of the hard constraints (default {d['eps']})")
    parser.add_argument("--lam", type=float, default=d["lam"], help=f"AR weight lambda (default {d['lam']})")
    parser.add_argument("--lr", type=float, default=d["lr"], help=f"step size of both players (default {d['lr']})")
    parser.add_argument("--steps", type=int, default=d["steps"], help=f"number of G/D step pairs (default {d['steps']})")
    parser.add_argument("--simulator", choices=SIMULATORS, default=d["simulator"],
                        help="update scheme (default alternating)")
    parser.add_argument("--theta-max", type=float, default=d["theta_max"], help="plot l(theta) on [-theta_max, theta_max] (default 2)")
    parser.add_argument("--n-theta", type=int, default=d["n_theta"], help=f"points of the theta grid (default {d['n_theta']})")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``robustgan dirac``: run the study and print the final-distance table."""
    report = run_study(args.out, losses=args.losses, methods=args.methods, delta=args.delta, eps=args.eps,
                       lam=args.lam, lr=args.lr, steps=args.steps, simulator=args.simulator,
                       theta_max=args.theta_max, n_theta=args.n_theta)
    print(f"final distance to the optimum (0, 0) after {args.steps} {args.simulator} steps (lr {args.lr}):")
    print(distance_table(report))
    print(f"wrote {Path(args.out) / 'dirac.json'}, objective.png, vector_fields.png ({report['seconds']:.1f} s)")
    return 0
