"""Tests of robustgan.experiments.stats against closed forms worked out in the comments."""
from __future__ import annotations

import math

import pytest

from robustgan.experiments.stats import bootstrap_mean, combined_verdict, paired, summarize, t_quantile


def test_t_quantile_matches_tables():
    # two-sided 95%: t_{0.975, 2} = 4.3027, t_{0.975, 9} = 2.2622; large df -> 1.95996 (normal)
    assert t_quantile(0.95, 2) == pytest.approx(4.302653, abs=1e-5)
    assert t_quantile(0.95, 9) == pytest.approx(2.262157, abs=1e-5)
    assert t_quantile(0.95, 10**6) == pytest.approx(1.959966, abs=1e-4)
    with pytest.raises(ValueError, match="confidence"):
        t_quantile(1.5, 3)


def test_summarize_is_the_t_interval():
    s = summarize([1.0, 2.0, 3.0, float("nan"), None])  # NaN and None are left out
    # mean 2, sd 1, half width 4.302653 / sqrt(3) = 2.484138
    assert s["n"] == 3 and s["mean"] == 2.0 and s["sd"] == pytest.approx(1.0)
    assert s["lo"] == pytest.approx(2 - 2.484138, abs=1e-5) and s["hi"] == pytest.approx(2 + 2.484138, abs=1e-5)
    one = summarize([5.0])
    assert one["mean"] == 5.0 and one["sd"] is None and one["lo"] is None
    assert summarize([])["mean"] is None


def test_paired_verdicts_follow_the_interval_and_direction():
    a = {0: 1.0, 1: 2.0, 2: 3.0}
    b = {0: 2.0, 1: 3.1, 2: 4.05}  # differences -1, -1.1, -1.05: mean -1.05, sd 0.05
    d = paired(a, b, "min")
    assert d["mean"] == pytest.approx(-1.05) and d["sd"] == pytest.approx(0.05)
    half = 4.302653 * 0.05 / math.sqrt(3)
    assert d["hi"] == pytest.approx(-1.05 + half, abs=1e-6) and d["verdict"] == "better"
    assert paired(a, b, "max")["verdict"] == "worse"  # higher is better: A is lower, so worse
    assert paired(b, a, "min")["verdict"] == "worse"
    # a difference whose interval holds zero: -1, +1, -0.5
    assert paired(a, {0: 2.0, 1: 1.0, 2: 3.5}, "min")["verdict"] == "not distinguishable"
    # seeds are matched, not positions; a seed missing (or diverged) on one side is left out
    d = paired({0: 1.0, 1: None, 2: 3.0, 5: 9.0}, {0: 2.0, 1: 3.0, 2: 4.5}, "min")
    assert d["seeds"] == [0, 2] and d["mean"] == pytest.approx(-1.25)
    assert paired({0: 1.0}, {0: 2.0})["verdict"] == "not distinguishable"  # one pair: no interval


def test_combined_verdict_needs_agreement():
    assert combined_verdict(["better", "better"]) == "better"
    assert combined_verdict(["better", "not distinguishable"]) == "not distinguishable"
    assert combined_verdict(["better", "worse"]) == "not distinguishable"
    assert combined_verdict([]) == "not distinguishable"
    with pytest.raises(ValueError, match="unknown verdict"):
        combined_verdict(["great"])


def test_bootstrap_interval_of_two_points():
    # resampling [0, 1] twice gives means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4, so the
    # central 95% interval is [0, 1]; a constant sample has a zero-width interval
    b = bootstrap_mean([0.0, 1.0], resamples=4000, seed=1)
    assert b["mean"] == 0.5 and b["lo"] == 0.0 and b["hi"] == 1.0
    c = bootstrap_mean([2.0, 2.0, 2.0])
    assert c["lo"] == c["hi"] == 2.0
    assert bootstrap_mean([1.0, 5.0, 2.0], seed=3) == bootstrap_mean([1.0, 5.0, 2.0], seed=3)  # reproducible
    # the central 40% lies inside the middle block (0.5 has probability 1/2, from 25% to 75%)
    narrow = bootstrap_mean([0.0, 1.0], conf=0.4, resamples=4000, seed=1)
    assert narrow["lo"] == 0.5 and narrow["hi"] == 0.5
