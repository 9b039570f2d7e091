"""Tests of the Dirac-GAN study (robustgan.experiments.dirac.study), its figures and ``robustgan dirac``."""
from __future__ import annotations

import json
import math

import pytest

from robustgan.experiments import dirac


def test_bad_study_settings_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="steps"):
        dirac.run_study(tmp_path, steps=0, plots=False)
    with pytest.raises(ValueError, match="unknown Dirac-GAN method"):
        dirac.run_study(tmp_path, methods=["none", "spectral"], plots=False)


# ---------------------------------------------------------------------------------------------
# the study and the command line


def _strict(s):
    def bad(c):
        raise ValueError(f"non-standard JSON constant {c}")

    return json.loads(s, parse_constant=bad)


def test_cli_writes_figures_and_json(tmp_path, capsys):
    from robustgan.cli import main

    out = tmp_path / "dirac"
    losses, methods = ["gan", "wgan"], ["none", "robust_discriminator", "ar"]
    rc = main(["dirac", "--out", str(out), "--steps", "300", "--n-theta", "101",
               "--losses", *losses, "--methods", *methods])
    assert rc == 0
    for name in ("objective.png", "vector_fields.png", "dirac.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 1000
    rep = _strict((out / "dirac.json").read_text())
    s = rep["settings"]
    assert s["steps"] == 300 and s["n_theta"] == 101 and s["lr"] == 0.1
    assert {"delta", "eps", "lam", "theta0", "psi0", "simulator"} <= set(s)
    assert len(rep["theta"]) == 101 and rep["theta"][50] == 0.0
    assert list(rep["results"]) == losses
    for loss in losses:
        assert list(rep["results"][loss]) == methods
        for method, r in rep["results"][loss].items():
            assert len(r["l"]) == 101 and len(r["end_point"]) == 2
            assert r["final_distance"] == pytest.approx(math.hypot(*r["end_point"]), rel=1e-12)
        assert rep["results"][loss]["ar"]["converged"] is True
        assert rep["results"][loss]["ar"]["final_distance"] < 0.05
        assert rep["results"][loss]["none"]["final_distance"] > 0.5
        assert rep["results"][loss]["robust_discriminator"]["psi_max"] == pytest.approx(s["eps"] / s["delta"])
    wgan_none = rep["results"]["wgan"]["none"]
    assert wgan_none["l_unbounded"] is True and wgan_none["l"][50] == 0.0
    assert wgan_none["l"][0] is None  # +inf is written as null
    assert "robust_discriminator" in capsys.readouterr().out


def test_cli_bad_option_is_one_line_error(tmp_path, capsys):
    from robustgan.cli import main

    rc = main(["dirac", "--out", str(tmp_path / "x"), "--delta", "-1"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "delta must be a positive number" in err
