"""Statistics for the studies: intervals over seeds, paired differences, verdicts, bootstrap ranks.

* :func:`summarize`: mean, sample standard deviation (ddof 1) and the two-sided Student-t
  confidence interval of the mean over seeds (``mean ± t_{n-1} sd / sqrt(n)``). With 3 seeds the
  95% interval is ``mean ± 2.48 sd``: wide, and meant to be.
* :func:`paired`: method A against method B on the seeds both finished: the mean of the per-seed
  differences ``A_s - B_s`` with its t interval, and a *verdict* for A: ``better`` when the whole
  interval lies on the good side of zero (below zero for a lower-is-better metric), ``worse``
  when it lies on the bad side, else ``not distinguishable``. Pairing by seed removes what both
  runs of a seed share (the data order, the noise of the evaluation batch when it is seeded).
* :func:`combined_verdict`: a verdict that holds in every metric checked (FD and KID, say), else
  ``not distinguishable``: close methods can swap places between feature spaces.
* :func:`bootstrap_mean`: a percentile bootstrap interval of a mean (average rank over setups).

The t quantile comes from scipy (``scipy.stats.t.ppf``).
"""
from __future__ import annotations

import math
import random

from .results import numeric

__all__ = ["VERDICTS", "t_quantile", "summarize", "paired", "combined_verdict", "bootstrap_mean"]

VERDICTS = ("better", "worse", "not distinguishable")


def t_quantile(conf: float, df: int) -> float:
    """The two-sided Student-t quantile: ``P(|T_df| <= q) = conf``."""
    if not 0 < conf < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {conf}")
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    from scipy.stats import t

    return float(t.ppf(0.5 + conf / 2, df))


def _finite(values) -> list[float]:
    return [v for v in (numeric(v) for v in values) if v is not None]


def summarize(values, conf: float = 0.95) -> dict:
    """``{"n", "mean", "sd", "lo", "hi"}`` of the finite ``values`` (NaN/None are left out).

    ``sd``, ``lo`` and ``hi`` are ``None`` for fewer than two values; everything but ``n`` is
    ``None`` for none.
    """
    xs = _finite(values)
    n = len(xs)
    out = {"n": n, "mean": None, "sd": None, "lo": None, "hi": None}
    if n == 0:
        return out
    mean = sum(xs) / n
    out["mean"] = mean
    if n >= 2:
        sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
        half = t_quantile(conf, n - 1) * sd / math.sqrt(n)
        out.update(sd=sd, lo=mean - half, hi=mean + half)
    return out


def paired(a: dict, b: dict, direction: str = "min", conf: float = 0.95) -> dict:
    """Method A against method B, paired by seed: ``a`` and ``b`` map seed -> value.

    Returns :func:`summarize` of the differences ``a[s] - b[s]`` over the seeds where both are
    finite, plus ``"seeds"`` (those seeds) and ``"verdict"`` for A (see the module docstring). With
    fewer than two pairs the verdict is ``not distinguishable``.
    """
    if direction not in ("min", "max"):
        raise ValueError(f"direction must be 'min' or 'max', got {direction!r}")
    seeds = sorted(s for s in set(a) & set(b) if numeric(a[s]) is not None and numeric(b[s]) is not None)
    out = summarize([numeric(a[s]) - numeric(b[s]) for s in seeds], conf)
    out["seeds"] = seeds
    verdict = "not distinguishable"
    if out["lo"] is not None:
        if out["hi"] < 0:
            verdict = "better" if direction == "min" else "worse"
        elif out["lo"] > 0:
            verdict = "worse" if direction == "min" else "better"
    out["verdict"] = verdict
    return out


def combined_verdict(verdicts) -> str:
    """The verdict every metric agrees on, else ``not distinguishable`` (also for no verdicts)."""
    verdicts = list(verdicts)
    bad = [v for v in verdicts if v not in VERDICTS]
    if bad:
        raise ValueError(f"unknown verdict {bad[0]!r}; expected one of {VERDICTS}")
    if verdicts and all(v == verdicts[0] for v in verdicts):
        return verdicts[0]
    return "not distinguishable"


def bootstrap_mean(values, conf: float = 0.95, resamples: int = 10000, seed: int = 0) -> dict:
    """``{"n", "mean", "lo", "hi"}``: the mean of ``values`` and its percentile bootstrap interval
    (``resamples`` resamples with replacement, drawn with ``random.Random(seed)``, so reproducible)."""
    xs = _finite(values)
    n = len(xs)
    if n == 0:
        return {"n": 0, "mean": None, "lo": None, "hi": None}
    rng = random.Random(seed)
    means = sorted(sum(rng.choice(xs) for _ in range(n)) / n for _ in range(resamples))
    k_lo = int(math.floor((1 - conf) / 2 * resamples))
    k_hi = min(resamples - 1, int(math.ceil((1 + conf) / 2 * resamples)) - 1)
    return {"n": n, "mean": sum(xs) / n, "lo": means[k_lo], "hi": means[k_hi]}
