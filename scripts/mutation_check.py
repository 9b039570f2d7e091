#!/usr/bin/env python
"""Mutation check: do the fast tests catch the bugs that matter?

Each mutant below is one plausible bug, written as an exact one-line edit of a source file: the
text to find (its anchor, which must occur exactly once) and its replacement, with the tests
expected to catch it. For each mutant the script copies ``src/`` to a temporary folder, applies the
edit there, and runs pytest from the repository root with ``PYTHONPATH`` pointing at the copy, so
the real files are never edited (a crash or Ctrl-C cannot leave the tree mutated). It prints one
line per mutant and a score line::

    caught    penalty-on-real-batch       train/phases.py
    ...
    mutants: 15 caught, 0 survived

``caught``: the tests failed on the mutant. ``SURVIVED``: they passed, so that bug would go
unnoticed; add a test. ``anchor not found``: the source changed and the anchor no longer occurs
exactly once; update the mutant. The exit status is 1 if any mutant survived, lost its anchor or
could not be run, else 0.

Before the mutants, the same tests run once on an unmodified copy (they must pass there, or
"caught" would mean nothing; ``--no-baseline`` skips this).

Usage (from the repository root)::

    python scripts/mutation_check.py               # each mutant against its named tests (about a minute)
    python scripts/mutation_check.py --all-tests   # each mutant against the whole fast suite (slow)
    python scripts/mutation_check.py --tests tests/test_phases.py tests/test_train.py  # other tests
    python scripts/mutation_check.py --only gp-fakes-only --only pgd-ignores-random-start
    python scripts/mutation_check.py --all-tests --deselect tests/test_x.py::test_known_broken
    python scripts/mutation_check.py --list

Tests run with ``-x -q`` and ``OMP_NUM_THREADS=1``. Tests that start a subprocess with a path
computed from the tests folder (``tests/../src``) run the real tree there, not the mutant.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
T = "tests/test_bugs_that_matter.py::"
S = "tests/test_studies.py::"


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str        # relative to src/robustgan
    anchor: str      # exact text, must occur exactly once in the file
    replacement: str
    tests: tuple[str, ...]  # pytest node ids expected to catch it


MUTANTS = [
    Mutant("penalty-on-real-batch", "train/phases.py",
           "penalty = self.reg.penalty(self.D, real, fake, objective=self.objective,",
           "penalty = self.reg.penalty(self.D, real, real, objective=self.objective,",
           (T + "test_phase_loss_puts_the_penalty_on_the_fakes",)),
    Mutant("fake-term-detached-in-shared-pass", "train/phases.py",
           "d_fake = self.D.last_linear(fake_features).squeeze(-1)",
           "d_fake = self.D.last_linear(fake_features).squeeze(-1).detach()",
           (T + "test_phase_loss_gradient_reaches_d_through_both_terms",)),
    Mutant("lazy-penalty-not-scaled-by-k", "train/phases.py",
           "total = loss if penalty is None else loss + self.every * penalty",
           "total = loss if penalty is None else loss + penalty",
           (T + "test_lazy_penalty_is_scaled_by_its_interval",)),
    Mutant("sample-ignores-ema", "train/loop.py",
           "G = self.G_ema if (ema and self.G_ema is not None) else self.G",
           "G = self.G",
           (T + "test_sampling_and_evaluation_use_the_ema_generator",)),
    Mutant("evaluate-ignores-ema", "train/evaluation.py",
           "G = trainer.G_ema if trainer.G_ema is not None else trainer.G",
           "G = trainer.G",
           (T + "test_sampling_and_evaluation_use_the_ema_generator",)),
    Mutant("ema-skips-batch-norm-buffers", "train/loop.py",
           "be.copy_(b)",
           "pass",
           (T + "test_ema_follows_batch_norm_statistics",)),
    Mutant("gp-interpolates-per-pixel", "regularizers.py",
           "e = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), generator=generator, device=real.device)",
           "e = torch.rand(real.shape, generator=generator, device=real.device)",
           (T + "test_gradient_penalty_interpolates_per_sample_between_real_and_fake",)),
    Mutant("gp-fakes-only", "regularizers.py",
           "x_hat = (e * real.detach() + (1 - e) * fake.detach()).requires_grad_(True)",
           "x_hat = fake.detach().clone().requires_grad_(True)",
           (T + "test_gradient_penalty_interpolates_per_sample_between_real_and_fake",)),
    Mutant("gp-lambda-twice", "regularizers.py",
           "return gradient_penalty(D, real, fake, center=self.center, target=self.target, objective=objective)",
           "return self.lam * gradient_penalty(D, real, fake, center=self.center, target=self.target, "
           "objective=objective)",
           (T + "test_gradient_penalty_weight_is_applied_once", T + "test_every_penalty_is_linear_in_its_weight")),
    Mutant("rfm-clean-features-detached", "regularizers.py",
           "match = (_wide(phi) - _wide(phi_adv)).pow(2).sum(dim=1).mean()",
           "match = (_wide(phi.detach()) - _wide(phi_adv)).pow(2).sum(dim=1).mean()",
           (T + "test_rfm_gradient_includes_the_clean_features",)),
    Mutant("pgd-ignores-random-start", "attacks.py",
           "v = _random_in_ball(x0, delta, p, generator) if random_start "
           "else torch.zeros_like(x0, dtype=torch.float32)",
           "v = torch.zeros_like(x0, dtype=torch.float32)",
           (T + "test_pgd_random_start_escapes_a_flat_point",)),
    Mutant("instance-noise-same-draw-every-step", "regularizers.py",
           "return real + s * torch.randn_like(real), fake + s * torch.randn_like(fake)",
           "g = torch.Generator(device=real.device).manual_seed(0); "
           "return (real + s * torch.randn(real.shape, generator=g, dtype=real.dtype, device=real.device), "
           "fake + s * torch.randn(fake.shape, generator=g, dtype=fake.dtype, device=fake.device))",
           (T + "test_instance_noise_is_a_fresh_draw_every_step",)),
    Mutant("d-step-fakes-from-fixed-z", "train/loop.py",
           'fake = self.G(self._z(self.cfg["train"]["batch_size"])).float()',
           'fake = self.G(self.fixed_z[: self.cfg["train"]["batch_size"]]).float()',
           (T + "test_discriminator_step_draws_fresh_noise_vectors",)),
    # the studies' records: a rerun stopped part-way must not leave results.json knowing less
    Mutant("rerun-drops-earlier-records", "experiments/driver.py",
           "        if not any(self._carried.values()):",
           "        if True:",
           ("tests/test_experiments_driver.py::test_an_interrupted_rerun_keeps_the_earlier_records_it_has_not_reached",
            S + "test_a_rerun_stopped_part_way_leaves_results_json_as_complete_as_before")),
    Mutant("rerun-forgets-tuning-choices", "experiments/grid.py",
           "        _keep_earlier_choices(results, file.earlier)",
           "        pass",
           (S + "test_a_rerun_stopped_part_way_leaves_results_json_as_complete_as_before",)),
]


def copy_source(dest: Path) -> Path:
    """Copy ``src/`` to ``dest/src`` (without caches) and return the copy's path."""
    target = dest / "src"
    shutil.copytree(ROOT / "src", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return target


def run_pytest(src: Path, tests: list[str], timeout: float) -> tuple[int, str]:
    """pytest ``-x -q`` on ``tests`` (all of the fast suite when empty) importing robustgan from ``src``."""
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    check = [sys.executable, "-c", "import robustgan, sys; sys.stdout.write(robustgan.__file__)"]
    where = subprocess.run(check, check=False, cwd=ROOT, env=env, capture_output=True, text=True)
    if where.returncode != 0 or not Path(where.stdout).resolve().is_relative_to(src.resolve()):
        return -1, f"robustgan is not imported from the copy ({where.stdout or where.stderr.strip()})"
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        proc = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -2, f"timed out after {timeout:.0f} s"
    return proc.returncode, proc.stdout + proc.stderr


def tail(text: str, n: int = 3) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:])


def first_failure(out: str) -> str:
    """`` (by test: reason)`` from pytest's report, so a crash is told from a failed check."""
    lines = out.splitlines()
    test = next((l.split(" ", 1)[1].split(" - ")[0].split("::", 1)[-1] for l in lines
                 if l.startswith(("FAILED ", "ERROR "))), None)
    if test is None:
        return ""
    reason = next((l[1:].strip() for l in lines if l.startswith("E ")), "")
    return f" (by {test}: {reason[:90]})" if reason else f" (by {test})"


def check_mutant(m: Mutant, tests: list[str] | None, timeout: float, extra: list[str] = ()) -> str:
    """One of "caught", "SURVIVED", "anchor not found", "error: ..."."""
    with tempfile.TemporaryDirectory(prefix="robustgan-mutant-") as tmp:
        src = copy_source(Path(tmp))
        path = src / "robustgan" / m.file
        text = path.read_text()
        n = text.count(m.anchor)
        if n != 1:
            return "anchor not found" + (f" (occurs {n} times)" if n else "")
        path.write_text(text.replace(m.anchor, m.replacement))
        rc, out = run_pytest(src, [*(m.tests if tests is None else tests), *extra], timeout)
    if rc == 0:
        return "SURVIVED"
    if rc in (1, 2):  # 1: tests failed; 2: interrupted (e.g. the mutant broke collection)
        return "caught" + first_failure(out)
    return f"error: pytest exit {rc}: {tail(out)}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--all-tests", action="store_true", help="run the whole fast suite per mutant, not its named tests")
    ap.add_argument("--tests", nargs="+", metavar="NODEID",
                    help="run these tests (files or node ids) per mutant instead of its named tests")
    ap.add_argument("--deselect", action="append", default=[], metavar="NODEID",
                    help="leave this test out (repeatable; passed to pytest)")
    ap.add_argument("--only", action="append", metavar="NAME", help="check only this mutant (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the mutants and their tests, then exit")
    ap.add_argument("--no-baseline", action="store_true", help="skip the run of the tests on unmodified code")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per pytest run (default 1800)")
    args = ap.parse_args(argv)

    mutants = MUTANTS
    if args.only:
        unknown = [n for n in args.only if n not in {m.name for m in MUTANTS}]
        if unknown:
            print(f"unknown mutant {unknown[0]!r}; see --list", file=sys.stderr)
            return 2
        mutants = [m for m in MUTANTS if m.name in args.only]
    width = max(len(m.name) for m in mutants)
    if args.list:
        for m in mutants:
            print(f"{m.name:<{width}}  {m.file}\n    - {m.anchor}\n    + {m.replacement}")
            for t in m.tests:
                print(f"    test: {t}")
        return 0

    if args.all_tests and args.tests:
        print("give --all-tests or --tests, not both", file=sys.stderr)
        return 2
    chosen = [] if args.all_tests else args.tests  # None: each mutant's own tests
    extra = [f"--deselect={t}" for t in args.deselect]
    if not args.no_baseline:
        tests = chosen if chosen is not None else sorted({t for m in mutants for t in m.tests})
        with tempfile.TemporaryDirectory(prefix="robustgan-baseline-") as tmp:
            rc, out = run_pytest(copy_source(Path(tmp)), [*tests, *extra], args.timeout)
        if rc != 0:
            print(f"baseline: the tests do not pass on the unmodified code (exit {rc}): {tail(out)}")
            return 1
        print(f"baseline: {tail(out, 1)}")

    counts = {"caught": 0, "survived": 0, "anchor not found": 0, "error": 0}
    for m in mutants:
        result = check_mutant(m, chosen, args.timeout, extra)
        key = "survived" if result == "SURVIVED" else result.split(" (")[0].split(":")[0]
        counts[key] += 1
        word, _, detail = result.partition(" (by ") if key == "caught" else (result, "", "")
        if key == "error":
            word, detail = "error", result[len("error: "):]
        print(f"{word:<17} {m.name:<{width}}  {m.file}" + (f"  ({detail.rstrip(')')})" if detail else ""),
              flush=True)
    score = f"mutants: {counts['caught']} caught, {counts['survived']} survived"
    others = [f"{counts[k]} {k}" for k in ("anchor not found", "error") if counts[k]]
    print(score + (", " + ", ".join(others) if others else ""))
    return 0 if counts["caught"] == len(mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
