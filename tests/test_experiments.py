"""Tests of the experiments layer: grid, stability sweep, executors (reports: tests/test_report.py).

Rankings, summaries and tables are checked on constructed examples whose answers are worked out
by hand in the test; executors on tiny real runs (8 Gaussians, an MLP of width 16, 20 steps) and
on a fake trainer where only the bookkeeping matters.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from robustgan.experiments import executors, grid, report, results, sweep
from robustgan.experiments.executors import Job, LocalExecutor, RunDirBusy
from robustgan.experiments.grid import Cell, choose_tuned, expand_cells, parse_tune
from robustgan.experiments.sweep import POOLS, rank_methods, rank_setups, sample_setups, summarize_ranks

REPO = Path(__file__).resolve().parents[1]

#: A run that takes about a second in-process: 20 steps of a width-16 MLP on 8 Gaussians.
TINY = ["train.steps=20", "log.every=10", "log.checkpoint_every=10", "log.samples_every=20", "log.progress=false",
        "log.tensorboard=false", "model.width=16", "train.batch_size=32", "log.eval_n=200", "train.threads=1"]
#: Diverges at the first step: a linear critic with an astronomically large learning rate.
DIVERGE = ["loss=wgan", "reg.name=none", "optim.lr_d=1e30", "optim.lr_g=1e30"]


def tiny_job(tmp_path, name, extra=(), info=None) -> Job:
    return Job(name, tmp_path / name, "toy-8gaussians", TINY + list(extra), info or {"name": name})


# ------------------------------------------------------------------------------------------- sampler
def test_sampler_is_seeded_and_distinct():
    a = sample_setups("paper", 55, seed=0)
    b = sample_setups("paper", 55, seed=0)
    c = sample_setups("paper", 55, seed=1)
    assert a == b
    assert [s["factors"] for s in a] != [s["factors"] for s in c]
    keys = [tuple(s["factors"].values()) for s in a]
    assert len(set(keys)) == 55  # without replacement
    assert [s["id"] for s in a][:3] == ["setup00", "setup01", "setup02"]


def test_sampler_covers_the_whole_pool():
    pool = POOLS["paper"]
    size = sweep.pool_size(pool)
    assert size == 3 * 2 * 2 * 2 * 2 * 3 * 3 == 432
    drawn = {tuple(s["factors"].values()) for s in sample_setups(pool, size, seed=3)}
    assert drawn == set(itertools.product(*pool.factors.values()))
    # 55 setups (seed 0, as in the paper's study) already contain every value of every factor
    fifty_five = sample_setups(pool, 55, seed=0)
    for name, values in pool.factors.items():
        assert {s["factors"][name] for s in fifty_five} == set(values), name
    with pytest.raises(ValueError, match="only 432 distinct setups"):
        sample_setups(pool, 433)


def test_setup_overrides_reach_the_config(tmp_path):
    setup = {"id": "setup00", "factors": {"loss": "lsgan", "batch": 16, "lr": 1e-3, "block": "plain", "width": 16,
                                          "nonlinearity": "tanh", "normalisation": "instance"}}
    (job,) = sweep.sweep_jobs(POOLS["cpu"], [setup], ["gp"], tmp_path, seed=4)
    cfg = job.config()
    assert cfg["loss"] == "lsgan" and cfg["train"]["batch_size"] == 16
    assert cfg["optim"]["lr_g"] == cfg["optim"]["lr_d"] == 1e-3
    assert (cfg["model"]["block"], cfg["model"]["width"]) == ("plain", 16)
    assert (cfg["model"]["nonlinearity"], cfg["model"]["normalisation"]) == ("tanh", "instance")
    assert cfg["reg"]["name"] == "gp" and cfg["seed"] == 4
    assert cfg["data"]["name"] == "fashion-mnist" and cfg["train"]["steps"] == 1500
    assert job.run_dir == tmp_path / "runs" / "setup00-gp"
    with pytest.raises(ValueError, match="sets model.width itself"):
        sweep.sweep_jobs(POOLS["cpu"], [setup], ["gp"], tmp_path, overrides=["model.width=8"])
    with pytest.raises(ValueError, match="distinct regularisers"):
        sweep.sweep_jobs(POOLS["cpu"], [setup], ["gp", "bogus"], tmp_path)


# ------------------------------------------------------------------------------------------- ranking
def test_rank_methods_ties_and_failures():
    assert rank_methods({"a": 1.0, "b": 2.0, "c": 2.0, "d": None}) == {"a": 1, "b": 2.5, "c": 2.5, "d": 4}
    # two failures share the last two places; NaN counts as a failure
    assert rank_methods({"a": 5.0, "b": float("nan"), "c": 1.0, "d": None}) == {"a": 2, "b": 3.5, "c": 1, "d": 3.5}
    # larger is better
    assert rank_methods({"a": 5.0, "b": 7.0, "c": 5.0}, "max") == {"a": 2.5, "b": 1, "c": 2.5}
    assert rank_methods({"a": None, "b": None}) == {"a": 1.5, "b": 1.5}
    rng = random.Random(0)
    for _ in range(50):  # the ranks of M methods always sum to M (M + 1) / 2
        vals = {k: rng.choice([None, 1.0, 2.0, rng.random()]) for k in "abcde"}
        assert sum(rank_methods(vals).values()) == pytest.approx(15)


def test_summary_counts_on_a_constructed_example():
    methods = ["none", "gp", "rfm"]
    per_setup = [
        rank_methods({"none": 3.0, "gp": 2.0, "rfm": 1.0}),   # none 3, gp 2, rfm 1
        rank_methods({"none": None, "gp": 1.0, "rfm": 1.0}),  # gp 1.5, rfm 1.5, none 3
        rank_methods({"none": 0.5, "gp": None, "rfm": None}),  # none 1, gp 2.5, rfm 2.5
    ]
    s = summarize_ranks(per_setup, methods)
    assert (s["rfm"]["top"], s["gp"]["top"], s["none"]["top"]) == (2, 1, 1)
    assert (s["none"]["worst"], s["gp"]["worst"], s["rfm"]["worst"]) == (2, 1, 1)
    assert s["none"]["avg_rank"] == pytest.approx(7 / 3)
    assert s["gp"]["avg_rank"] == pytest.approx(2.0)
    assert s["rfm"]["avg_rank"] == pytest.approx(5 / 3)


def _rec(setup, method, final, status="complete"):
    return {"run_id": f"{setup}-{method}", "info": {"setup": setup, "method": method}, "final": final,
            "status": status}


def test_rank_setups_skips_incomplete_and_all_failed_setups():
    setups = [{"id": f"s{i}", "factors": {}} for i in range(4)]
    records = [_rec("s0", "none", 2.0), _rec("s0", "rfm", 1.0),
               _rec("s1", "none", None, "diverged"), _rec("s1", "rfm", 3.0),
               _rec("s2", "none", None, "failed"), _rec("s2", "rfm", None, "diverged"),  # no value at all
               _rec("s3", "none", 1.0)]                                                   # rfm still to do
    rows, summary = rank_setups(setups, ["none", "rfm"], records, "min")
    assert [r["ranks"] is not None for r in rows] == [True, True, False, False]
    assert rows[1]["ranks"] == {"none": 2, "rfm": 1}
    assert summary["rfm"] == {"top": 2, "worst": 0, "avg_rank": 1.0, "setups": 2, "failed": 1,
                              "avg_rank_ci": [1.0, 1.0]}  # rank 1 in both setups: every resample gives 1
    assert summary["none"]["worst"] == 2 and summary["none"]["failed"] == 2
    assert "trained" not in summary  # no left-the-start threshold: not judged


def test_left_the_start_splits_the_summary():
    setups = [{"id": f"s{i}", "factors": {}} for i in range(3)]
    # s0: both past FD 250, rfm best; s1: none stuck at 400, so s1 is not trained; s2: none best
    records = [_rec("s0", "none", 200.0), _rec("s0", "rfm", 150.0), _rec("s1", "none", 400.0),
               _rec("s1", "rfm", 240.0), _rec("s2", "none", 100.0), _rec("s2", "rfm", 120.0)]
    rows, summary = rank_setups(setups, ["none", "rfm"], records, "min", left_start=250.0)
    assert [r["trained"] for r in rows] == [True, False, True]
    assert summary["rfm"]["avg_rank"] == pytest.approx(4 / 3) and summary["rfm"]["setups"] == 3
    trained = summary["trained"]
    assert trained["rfm"]["setups"] == 2 and trained["rfm"]["avg_rank"] == 1.5 and trained["threshold"] == 250.0
    # two setups with ranks {1, 2}: resampled means are 1, 1.5, 2 -> the 95% interval is [1, 2]
    assert trained["rfm"]["avg_rank_ci"] == [1.0, 2.0]
    res = {"methods": ["none", "rfm"], "summary": summary, "setups": rows, "pool": "cpu", "metric": "fd",
           "direction": "min", "preset": "p"}
    tables = sweep.build_tables(res)
    assert [t.title for t in tables][:2] == ["Stability over 3 setups (Table 2)",
                                             "Stability over 2 setups that left the start (Table 2)"]
    assert "fd < 250" in tables[1].note and tables[2].rows[1][-1] == "no"
    assert sweep.left_the_start(None, 250.0) is False and sweep.left_the_start(1.0, None) is None


def test_sweep_table_layout():
    setups = [{"id": "s0", "factors": {"loss": "gan"}}, {"id": "s1", "factors": {"loss": "wgan"}}]
    records = [_rec("s0", "none", 2.0), _rec("s0", "rfm", 1.0), _rec("s1", "none", 4.0), _rec("s1", "rfm", 4.0)]
    rows, summary = rank_setups(setups, ["none", "rfm"], records, "min")
    res = {"methods": ["none", "rfm"], "summary": summary, "setups": rows, "pool": "toy", "metric": "fd",
           "direction": "min", "preset": "p"}
    md = sweep.summary_table(res).to_markdown()
    assert "| #top | 1 | **2** |" in md      # rfm is top in both setups (tied in s1), none in s1
    assert "| #worst | 2 | **1** |" in md       # s0: none; s1: the tie makes both worst as well
    assert "| average rank | 1.75 | **1.25** |" in md


# ---------------------------------------------------------------------------------------------- grid
def test_grid_expands_attacks_only_for_attack_regularizers():
    cells = expand_cells(["gan", "lsgan", "wgan"], ["none", "noise", "gp", "ar", "rfm"], ["fgm", "pgd"],
                         ["discriminator", "loss"])
    # gp has a target (gp on f o D for the robust loss) but no attack: gan-gp and gan-gp-loss
    assert len(cells) == 3 * (2 + 2 + 2 * 2 * 2)
    assert len({c.id for c in cells}) == len(cells)
    for c in cells:
        assert (c.attack is None) == (c.reg not in ("ar", "rfm"))
        assert (c.target is None) == (c.reg not in ("ar", "rfm", "gp") or (c.reg == "gp" and c.target is None))
    assert [c.id for c in cells[:6]] == ["gan-none", "gan-noise", "gan-gp", "gan-gp-loss",
                                         "gan-ar-fgm-discriminator", "gan-ar-fgm-loss"]
    assert len(expand_cells(["gan"], ["none", "gp"], ["fgm", "pgd", "cw"], ["discriminator", "loss"])) == 3
    assert len(expand_cells(["gan"], ["none", "r1", "r2", "r1r2"], ["fgm", "pgd"], ["discriminator", "loss"])) == 4
    with pytest.raises(ValueError, match="unknown regs 'foo'"):
        expand_cells(["gan"], ["foo"])
    with pytest.raises(ValueError, match="twice"):
        expand_cells(["gan", "gan"], ["none"])


def test_grid_jobs_configs(tmp_path):
    base = grid._base_overrides(["optim.d_steps=2"], 7, {})
    cells = [Cell("lsgan", "ar", "pgd", "loss"), Cell("wgan", "gp")]
    jobs = grid.grid_jobs(cells, [0, 1], tmp_path, "toy-8gaussians", base, tuned={"wgan-gp": {"reg.lam": 3}})
    assert [j.run_id for j in jobs] == ["lsgan-ar-pgd-loss-s0", "lsgan-ar-pgd-loss-s1", "wgan-gp-s0", "wgan-gp-s1"]
    cfg = jobs[1].config()
    assert (cfg["loss"], cfg["reg"]["name"], cfg["reg"]["attack"], cfg["reg"]["target"]) == ("lsgan", "ar", "pgd", "loss")
    assert cfg["seed"] == 1 and cfg["train"]["steps"] == 7 and cfg["optim"]["d_steps"] == 2
    assert cfg["log"]["progress"] is False
    assert jobs[2].config()["reg"]["lam"] == 3 and jobs[2].info["tuned"] == {"reg.lam": 3}
    with pytest.raises(ValueError, match="the grid sets loss itself"):
        grid._base_overrides(["loss=gan"], None, {})
    with pytest.raises(ValueError, match="--steps or train.steps"):
        grid._base_overrides(["train.steps=5"], 7, {})
    with pytest.raises(ValueError, match="being tuned"):
        grid._base_overrides(["reg.lam=1"], None, {"reg.lam": [1, 2]})


def test_tuning_choice():
    assert parse_tune(["reg.lam=0.1,1,10"]) == {"reg.lam": [0.1, 1, 10]}
    assert parse_tune(["reg.alpha=1e-4,1e-3"]) == {"reg.alpha": [1e-4, 1e-3]}  # YAML alone reads "1e-4" as text
    with pytest.raises(ValueError, match="sets loss itself"):
        parse_tune(["loss=gan,wgan"])
    tune = {"reg.lam": [0.1, 1, 10]}
    cells = [Cell("gan", "rfm", "fgm", "discriminator"), Cell("gan", "none"), Cell("wgan", "gp"), Cell("lsgan", "ar")]
    jobs = grid.tuning_jobs(cells, tune, [1000, 1001], "out", "toy-8gaussians", [])
    assert len(jobs) == 3 * 3 * 2  # none has no lambda
    assert jobs[0].run_id == "gan-rfm-fgm-discriminator-lam0.1-s1000"

    def rec(cell, lam, final, status="complete"):
        return {"run_id": f"{cell}-{lam}", "final": final, "status": status,
                "info": {"cell": cell, "candidate": {"reg.lam": lam}}}

    records = [
        # rfm: lam 1 has the best mean (2.0 vs 2.5); a diverged seed makes lam 10 the worst
        rec("gan-rfm-fgm-discriminator", 0.1, 2.0), rec("gan-rfm-fgm-discriminator", 0.1, 3.0),
        rec("gan-rfm-fgm-discriminator", 1, 1.5), rec("gan-rfm-fgm-discriminator", 1, 2.5),
        rec("gan-rfm-fgm-discriminator", 10, 0.1), rec("gan-rfm-fgm-discriminator", 10, None, "diverged"),
        # gp: a tie between 0.1 and 10 goes to the one listed first
        rec("wgan-gp", 0.1, 4.0), rec("wgan-gp", 1, 5.0), rec("wgan-gp", 10, 4.0),
        # ar: every candidate failed
        rec("lsgan-ar", 0.1, None, "failed"), rec("lsgan-ar", 1, None, "diverged"), rec("lsgan-ar", 10, None, "failed"),
    ]
    chosen = choose_tuned(cells, tune, records, "min")
    assert chosen["gan-rfm-fgm-discriminator"]["chosen"] == {"reg.lam": 1}
    assert chosen["gan-rfm-fgm-discriminator"]["candidates"][1]["score"] == pytest.approx(2.0)
    assert chosen["gan-rfm-fgm-discriminator"]["candidates"][2]["score"] is None
    assert chosen["wgan-gp"]["chosen"] == {"reg.lam": 0.1}
    assert chosen["lsgan-ar"]["chosen"] is None and "default" in chosen["lsgan-ar"]["note"]
    assert "gan-none" not in chosen
    assert choose_tuned(cells[:1], tune, records, "max")["gan-rfm-fgm-discriminator"]["chosen"] == {"reg.lam": 0.1}


def _grid_results(runs, regs=("none", "rfm"), seeds=(0, 1, 2)):
    cells = [Cell("gan", r, "fgm", "discriminator") if r in ("ar", "rfm") else Cell("gan", r) for r in regs]
    return {"kind": "grid", "preset": "toy-8gaussians", "metric": "w1", "direction": "min",
            "cells": [c.as_dict() for c in cells], "runs": runs, "seeds": list(seeds), "command": "robustgan grid x"}


def test_grid_table_mean_std_and_failures():
    runs = []
    for seed, (a, b) in enumerate([(1.0, 0.5), (2.0, None), (3.0, 0.7)]):
        runs.append({"run_id": f"gan-none-s{seed}", "info": {"cell": "gan-none", "seed": seed}, "final": a,
                     "best": {"value": a / 2, "step": 10}, "status": "complete"})
        runs.append({"run_id": f"gan-rfm-fgm-discriminator-s{seed}", "status": "complete" if b else "diverged",
                     "info": {"cell": "gan-rfm-fgm-discriminator", "seed": seed}, "final": b,
                     "best": {"value": b, "step": 10}, "error": None if b else "loss_d became nan"})
    final, best, failed = grid.build_tables(_grid_results(runs))
    md = final.to_markdown()
    # none: mean 2, sample std 1; rfm: mean 0.6, std of (0.5, 0.7) = 0.1414, 2 of 3 seeds
    assert "| gan | 2.000 ± 1.0 | **0.6000 ± 0.14 (2/3)** |" in md
    assert "attack fgm, target discriminator" in final.title
    assert "| gan | 1.000 ± 0.50 |" in best.to_markdown()
    assert failed.rows == [["gan-rfm-fgm-discriminator-s1", "diverged", "loss_d became nan"]]


# --------------------------------------------------------------------------------------- executors
def _fake_runner(calls):
    def runner(job):
        calls.append(job.run_id)
        status = job.info.get("status", "complete")
        record = {"run_id": job.run_id, "info": job.info, "status": status, "config": job.config(),
                  "final": 1.0 if status == "complete" else None, "error": None if status == "complete" else "x"}
        results.write_result(job.run_dir, record)
        return record
    return runner


def test_local_executor_reuses_finished_runs(tmp_path):
    jobs = [tiny_job(tmp_path, "a"), tiny_job(tmp_path, "b", info={"status": "diverged"}),
            tiny_job(tmp_path, "c", info={"status": "failed"})]
    calls = []
    LocalExecutor(inprocess=True, runner=_fake_runner(calls)).run(jobs)
    assert calls == ["a", "b", "c"]
    mtime = (tmp_path / "a" / "result.json").stat().st_mtime_ns
    seen = []
    LocalExecutor(inprocess=True, runner=_fake_runner(calls)).run(jobs, on_record=lambda j, r, reused: seen.append(
        (j.run_id, reused)))
    assert calls[3:] == ["c"]  # complete and diverged kept, failed run again
    assert sorted(seen) == [("a", True), ("b", True), ("c", False)]
    assert (tmp_path / "a" / "result.json").stat().st_mtime_ns == mtime
    LocalExecutor(inprocess=True, runner=_fake_runner(calls), retry_diverged=True).run(jobs)
    assert calls[4:] == ["b", "c"]


def test_executor_refuses_a_changed_config_and_a_busy_dir(tmp_path):
    job = tiny_job(tmp_path, "a")
    LocalExecutor(inprocess=True, runner=_fake_runner([])).run([job])
    changed = tiny_job(tmp_path, "a", extra=["optim.lr_d=0.5"])
    with pytest.raises(ValueError, match=r"different config \(optim.lr_d: 0.0001 -> 0.5\)"):
        LocalExecutor(inprocess=True, runner=_fake_runner([])).run([changed])
    with pytest.raises(ValueError, match="share the run directory"):
        LocalExecutor(inprocess=True).run([job, tiny_job(tmp_path, "a")])
    with executors._run_lock(tmp_path / "b"):
        with pytest.raises(RunDirBusy, match="another process"):
            executors.run_job(tiny_job(tmp_path, "b"))


def test_build_record_reads_final_and_best(tmp_path):
    job = Job("img", tmp_path / "img", "fmnist-dcgan", ["train.steps=30"])
    cfg = job.config()
    rows = [{"step": 10, "kind": "train", "loss_d": 1.0}, {"step": 10, "kind": "eval", "fd": 50.0, "kid": 0.1},
            {"step": 20, "kind": "eval", "fd": "nan"}, {"step": 20, "kind": "eval", "fd": 12.5},
            {"step": 30, "kind": "eval", "fd": 20.0, "kid": 0.02}]
    job.run_dir.mkdir()
    (job.run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 3')  # torn
    rec = executors.build_record(job, cfg, "complete", None, 1.5, 0)
    assert rec["metric"] == "fd" and rec["direction"] == "min"  # images: FD, lower is better
    assert rec["final"] == 20.0 and rec["metrics"] == {"fd": 20.0, "kid": 0.02}
    assert rec["best"] == {"value": 12.5, "step": 20} and rec["step"] == 30 and rec["note"] is None
    # no evaluation at the last step: final is None and the note says why
    (job.run_dir / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\n")
    (job.run_dir / "log.txt").write_text("[t] evaluation skipped: no reference statistics\n")
    rec = executors.build_record(job, cfg, "complete", None, 1.5, 0)
    assert rec["final"] is None and rec["note"] == "no reference statistics" and rec["best"]["value"] is None


def test_subprocess_output_parsing():
    out = "step 1\nrobustgan train: loss_d became nan at step 3; the run stopped\n"
    assert executors._error_from_output(out, 3) == ("diverged", "loss_d became nan at step 3; the run stopped")
    assert executors._error_from_output("robustgan train: error: unknown preset 'x'\n", 2) == (
        "failed", "exit status 2: unknown preset 'x'")
    assert executors._error_from_output("Traceback ...\nMemoryError\n", 1) == ("failed", "exit status 1: MemoryError")
    assert executors._error_from_output("", -9) == ("failed", "killed by signal SIGKILL")
    assert executors.job_command(Job("a", "d", "toy-8gaussians", ["seed=1"]))[1:] == [
        "-m", "robustgan", "train", "--preset", "toy-8gaussians", "--out", "d", "seed=1"]


def test_inprocess_runs_a_divergence_and_goes_on(tmp_path):
    torch.manual_seed(0)
    jobs = [tiny_job(tmp_path, "bad", DIVERGE), tiny_job(tmp_path, "good")]
    bad, good = LocalExecutor(inprocess=True).run(jobs)
    assert bad["status"] == "diverged" and "became nan" in bad["error"] and bad["final"] is None
    assert "last good checkpoint" in bad["error"]
    assert good["status"] == "complete" and good["step"] == 20 and good["error"] is None
    assert good["metric"] == "w1" and good["final"] == pytest.approx(good["metrics"]["w1"])
    assert 0 <= good["metrics"]["modes_covered"] <= 8
    assert good["best"]["value"] == good["final"] and good["best"]["step"] == 20
    assert good["config"]["out"] == str(tmp_path / "good") and good["config"]["train"]["steps"] == 20
    on_disk = json.loads((tmp_path / "bad" / "result.json").read_text())
    assert on_disk["status"] == "diverged" and on_disk["run_id"] == "bad"


# ------------------------------------------------------------------------------------------- grid
@pytest.fixture(scope="module")
def toy_grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("grid")
    torch.manual_seed(0)
    res = grid.run_grid("toy-8gaussians", out, losses=["gan"], regs=["none", "rfm"], seeds=1,
                        overrides=[o for o in TINY if not o.startswith("train.steps")] + ["log.eval_every=10"],
                        steps=20, executor=LocalExecutor(inprocess=True), command="robustgan grid test")
    return out, res


def test_grid_end_to_end(toy_grid):
    out, res = toy_grid
    assert [r["run_id"] for r in res["runs"]] == ["gan-none-s0", "gan-rfm-fgm-discriminator-s0"]
    assert all(r["status"] == "complete" for r in res["runs"])
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["metric"] == "w1" and len(on_disk["runs"]) == 2
    for r in on_disk["runs"]:
        rows = results.eval_rows(results.read_metrics(out / "runs" / r["run_id"]))
        assert [row["step"] for row in rows] == [10, 20]  # eval_every=10 and the final evaluation
        assert r["best"]["value"] == min(row["w1"] for row in rows)
        assert r["final"] == rows[-1]["w1"]
        assert r["config"]["reg"]["name"] == r["info"]["reg"]
    table = (out / "table.md").read_text()
    assert "| loss | none | rfm |" in table and "Best w1 during training" in table


def test_cli_dry_run(tmp_path, capsys):
    assert grid.main(["--preset", "toy-8gaussians", "--out", str(tmp_path), "--regs", "none,ar", "--attacks",
                      "fgm,cw", "--seeds", "2", "--dry-run", "train.steps=5"]) == 0
    text = capsys.readouterr().out
    assert "9 cells, 18 runs" in text and "reg.attack=cw" in text  # 3 losses x (none + ar x 2 attacks)
    assert sweep.main(["--pool", "toy", "--setups", "3", "--out", str(tmp_path), "--dry-run"]) == 0
    assert "3 setups x 4 methods = 12 runs" in capsys.readouterr().out
    assert grid.main(["--preset", "toy-8gaussians", "--out", str(tmp_path), "nope=1", "--dry-run"]) == 2
    assert "unknown config key 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------------------- slow
DRIVER = textwrap.dedent("""
    import sys
    from robustgan.experiments.executors import Job, LocalExecutor
    out, tiny = sys.argv[1], sys.argv[2:]
    jobs = [Job("first", out + "/first", "toy-8gaussians", tiny),
            Job("second", out + "/second", "toy-8gaussians",
                tiny + ["train.steps=300", "log.checkpoint_every=10", "log.samples_every=300"])]
    for r in LocalExecutor(workers=1, poll=0.05).run(jobs):
        print(r["run_id"], r["status"], r["resumed_from"], r["step"])
""")


@pytest.mark.slow
def test_local_executor_resumes_after_sigkill(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    cmd = [sys.executable, str(script), str(tmp_path / "sweep")] + TINY
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    first, second = tmp_path / "sweep" / "first", tmp_path / "sweep" / "second"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if (first / "result.json").exists() and list((second / "checkpoints").glob("ckpt-*.pt")):
                break
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.05)
        else:
            pytest.fail("the sweep did not reach the second run's first checkpoint in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its training subprocess: a hard crash
        proc.wait()
    assert not (second / "result.json").exists()
    first_mtime = (first / "result.json").stat().st_mtime_ns
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["first"].startswith("complete 0 20")
    status, resumed_from, step = lines["second"].split()
    assert status == "complete" and int(step) == 300 and int(resumed_from) >= 10
    assert (first / "result.json").stat().st_mtime_ns == first_mtime  # not redone
    assert (first / "log.txt").read_text().count("starting step 0") == 1
    log = (second / "log.txt").read_text()
    assert f"resuming at step {resumed_from}" in log
    steps = [row["step"] for row in results.read_metrics(second) if row["kind"] == "train"]
    assert steps == list(range(10, 301, 10))  # no gap and no duplicate after the resume
    record = results.read_result(second)
    assert record["status"] == "complete" and record["final"] is not None


@pytest.mark.slow
def test_subprocess_executor_records_divergence(tmp_path):
    jobs = [tiny_job(tmp_path, "bad", DIVERGE), tiny_job(tmp_path, "good")]
    bad, good = LocalExecutor(workers=2, poll=0.05).run(jobs)
    assert bad["status"] == "diverged" and "became nan" in bad["error"]
    assert good["status"] == "complete" and good["final"] is not None
    assert "robustgan train:" in (tmp_path / "bad" / "output.txt").read_text()


@pytest.mark.slow
def test_sweep_end_to_end_with_report(tmp_path):
    res = sweep.run_sweep("toy", tmp_path, setups=2, methods=["none", "rfm"], steps=20,
                          overrides=["log.checkpoint_every=10", "log.every=10", "train.threads=1"],
                          executor=LocalExecutor(inprocess=True))
    assert len(res["runs"]) == 4 and len(res["setups"]) == 2
    ranked = [s for s in res["setups"] if s["ranks"]]
    for s in ranked:
        assert sorted(s["ranks"].values()) in ([1, 2], [1.5, 1.5])
    assert sum(v["top"] for v in res["summary"].values()) >= len(ranked)
    assert "Stability over" in (tmp_path / "table.md").read_text()
    html_path, _ = report.write_report(tmp_path)
    assert html_path.read_text().count("data:image/png;base64,") == 2 + 1  # robustness, loss_d; the sample matrix


@pytest.mark.slow
def test_ray_executor_runs_two_tiny_runs(tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        jobs = [tiny_job(tmp_path, "r0"), tiny_job(tmp_path, "r1", DIVERGE)]
        ok, bad = executors.RayExecutor(cpus_per_run=1).run(jobs)
        assert ray.is_initialized()  # an instance the caller started is left running
    finally:
        ray.shutdown()
    assert ok["status"] == "complete" and ok["final"] is not None and ok["step"] == 20
    assert bad["status"] == "diverged" and "became nan" in bad["error"]
    assert results.read_result(tmp_path / "r0")["status"] == "complete"
    assert math.isclose(results.read_result(tmp_path / "r0")["final"], ok["final"])
    # the same job in this process gives the same numbers (same seed, one thread each)
    (same,) = LocalExecutor(inprocess=True).run([Job("r0", tmp_path / "again", "toy-8gaussians", TINY)])
    assert same["final"] == pytest.approx(ok["final"], rel=1e-6)


def test_grid_dry_run_lists_the_new_names(tmp_path, capsys):
    assert grid.main(["--preset", "toy-8gaussians", "--out", str(tmp_path), "--losses", "gan,rpgan", "--regs",
                      "none,noise,gp,r1,r2,r1r2,ar,rfm", "--seeds", "1", "--tune", "reg.lam=default",
                      "--dry-run", "train.steps=5", "reg.attack_steps=3"]) == 0
    text = capsys.readouterr().out
    assert "16 cells, 16 runs" in text
    for cell in ("rpgan-r1r2", "gan-r1", "gan-r2", "rpgan-ar-fgm-discriminator"):
        assert cell in text
    # reg.lam=default: each cell's default weight x 0.1, 1, 10 (r1: gamma 0.05, 0.5, 5)
    assert "gan-r1-lam0.05" in text and "gan-r1-lam5" in text and "gan-ar-fgm-discriminator-lam1000" in text
    # a grid-wide attack option is left out of cells whose regulariser / attack does not take it
    cells = expand_cells(["gan"], ["none", "ar"], ["fgm", "pgd"])
    base = ["reg.attack_steps=3", "optim.d_steps=2"]
    jobs = grid.grid_jobs(cells, [0], tmp_path, "toy-8gaussians", base)
    assert [("reg.attack_steps=3" in j.overrides) for j in jobs] == [False, False, True]
    for j in jobs:
        j.config()  # every cell's config is valid


# ------------------------------------------------------------------------------ sweep weights per loss
def _grid_file(path, cells):
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps({"kind": "grid", "cells": cells}))
    return path


def test_tuned_weights_are_read_per_loss_and_regulariser(tmp_path):
    a = _grid_file(tmp_path / "gan", [
        {"id": "gan-none", "loss": "gan", "reg": "none", "attack": None, "target": None, "tuned": None},
        {"id": "gan-gp", "loss": "gan", "reg": "gp", "attack": None, "target": None, "tuned": {"reg.lam": 1}},
        {"id": "gan-ar-fgm-discriminator", "loss": "gan", "reg": "ar", "attack": "fgm", "target": "discriminator",
         "tuned": {"reg.lam": 1000}},
        # other attacks and the robust loss are other cells: they do not set ar's weight
        {"id": "gan-ar-pgd-discriminator", "loss": "gan", "reg": "ar", "attack": "pgd", "target": "discriminator",
         "tuned": {"reg.lam": 1}},
        {"id": "gan-ar-fgm-loss", "loss": "gan", "reg": "ar", "attack": "fgm", "target": "loss",
         "tuned": {"reg.lam": 10}}])
    b = _grid_file(tmp_path / "wgan", [
        {"id": "wgan-noise", "loss": "wgan", "reg": "noise", "attack": None, "target": None,
         "tuned": {"reg.sigma": 0.1}}])
    assert sweep.tuned_weights([a, b / "results.json"]) == {
        "gan": {"gp": {"reg.lam": 1}, "ar": {"reg.lam": 1000}}, "wgan": {"noise": {"reg.sigma": 0.1}}}
    c = _grid_file(tmp_path / "again", [
        {"id": "gan-gp", "loss": "gan", "reg": "gp", "attack": None, "target": None, "tuned": {"reg.lam": 10}}])
    with pytest.raises(ValueError, match=r"gan gp tuned to \{'reg.lam': 10\}, another grid chose \{'reg.lam': 1\}"):
        sweep.tuned_weights([a, c])
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "results.json").write_text(json.dumps({"kind": "sweep"}))
    with pytest.raises(ValueError, match="not a grid's results.json"):
        sweep.tuned_weights([tmp_path / "sw"])
    with pytest.raises(ValueError, match="no such file; run that grid"):
        sweep.tuned_weights([tmp_path / "missing"])


def test_sweep_runs_take_the_weight_of_their_setups_loss(tmp_path):
    setups = [{"id": "s0", "factors": {"loss": "gan"}}, {"id": "s1", "factors": {"loss": "wgan"}}]
    weights = {"gan": {"gp": {"reg.lam": 1}, "noise": {"reg.sigma": 0.2}},
               "wgan": {"gp": {"reg.lam": 30}, "noise": {"reg.sigma": 0.05}}}
    jobs = sweep.sweep_jobs(POOLS["toy"], setups, ["none", "gp", "noise"], tmp_path, weights=weights)
    got = {(j.info["setup"], j.info["method"]): j.config()["reg"] for j in jobs}
    assert got[("s0", "gp")]["lam"] == 1 and got[("s1", "gp")]["lam"] == 30
    assert got[("s0", "noise")]["sigma"] == 0.2 and got[("s1", "noise")]["sigma"] == 0.05
    assert got[("s0", "none")]["lam"] is None and "weights" not in jobs[0].info
    # without weights every method keeps its default
    plain = sweep.sweep_jobs(POOLS["toy"], setups, ["gp"], tmp_path)
    assert [j.config()["reg"]["lam"] for j in plain] == [None, None]
    with pytest.raises(ValueError, match="no tuned weight for rfm on the wgan loss"):
        sweep.sweep_jobs(POOLS["toy"], setups, ["rfm"], tmp_path, weights={"gan": {"rfm": {"reg.lam": 1}}})


def test_a_sweep_ranked_again_among_a_subset_of_its_methods():
    from robustgan.experiments.results import format_value
    from robustgan.experiments.sweep import rank_difference_table, rank_setups, subset_tables

    values = {"s0": {"a": 1.0, "b": 2.0, "c": 3.0},   # among a, c: a 1, c 2
              "s1": {"a": 3.0, "b": 1.0, "c": 2.0},   # c 1, a 2 (b, the best, is left out)
              "s2": {"a": 5.0, "b": 6.0, "c": 9.0}}   # a 1, c 2; c does not pass the start (8)
    runs = [{"info": {"setup": s, "method": m}, "final": v, "status": "complete"}
            for s, vs in values.items() for m, v in vs.items()]
    setups = [{"id": s, "factors": {"loss": "gan"}} for s in values]
    rows, summary = rank_setups(setups, ["a", "b", "c"], runs, "min", 8.0)
    results = {"methods": ["a", "b", "c"], "setups": rows, "summary": summary, "runs": runs, "direction": "min",
               "metric": "fd", "pool": "p", "left_start": 8.0}
    every, trained = subset_tables(results, ["a", "c"])
    assert every.header == ["", "a", "c"] and "ranked among a, c only" in every.title
    assert every.rows[0][1:] == ["2", "1"] and every.rows[1][1:] == ["1", "2"]  # #top, #worst
    assert every.rows[2][1:] == [format_value((1 + 2 + 1) / 3, 3), format_value((2 + 1 + 2) / 3, 3)]
    # s2 is left out where every method must have left the start (c's 9 > 8)
    assert trained.rows[0][1:] == ["1", "1"] and trained.rows[2][1:] == ["1.50", "1.50"]
    with pytest.raises(ValueError, match="d not in this sweep's methods"):
        subset_tables(results, ["a", "d"])
    # paired by setup: among a, c the differences a - c are -1, +1, -1 (mean -1/3, an interval
    # from -1 to 1: not distinguishable); among all three, b - c is -1, -1, -1 in every resample
    diff = rank_difference_table(results, ["a", "c"], [("a", "c")])
    assert diff.rows == [["a vs c", "3", f"{format_value(-1 / 3, 3)} [-1.00, 1.00]", "not distinguishable"]]
    diff = rank_difference_table(results, ["a", "b", "c"], [("b", "c"), ("c", "b")])
    assert [r[3] for r in diff.rows] == ["better", "worse"] and diff.rows[0][2] == "-1.00 [-1.00, -1.00]"
    # only the setups that left the start: s2 drops out, a - c is -1, +1
    diff = rank_difference_table(results, ["a", "c"], [("a", "c")], trained=True)
    assert diff.rows[0][:3] == ["a vs c", "2", "0 [-1.00, 1.00]"]
    with pytest.raises(ValueError, match="both must be among a, c"):
        rank_difference_table(results, ["a", "c"], [("a", "b")])
