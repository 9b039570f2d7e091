"""Stored records (a study survives a fresh clone) and the study summaries built from them."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from robustgan.experiments import executors, grid, records, studies
from robustgan.experiments.executors import LocalExecutor
from robustgan.experiments.studies import Part, Study

TINY = ["log.every=10", "log.checkpoint_every=10", "log.samples_every=20", "log.progress=false",
        "log.tensorboard=false", "model.width=16", "train.batch_size=32", "log.eval_n=200", "train.threads=1"]


def _counting_executor(calls):
    def runner(job):
        calls.append(job.run_id)
        return executors.run_job(job)
    return LocalExecutor(inprocess=True, runner=runner)


def test_a_fresh_clone_skips_every_recorded_run(tmp_path):
    out = tmp_path / "study"
    kw = dict(losses=["gan"], regs=["none", "rfm"], seeds=2, steps=20, overrides=TINY,
              tune={"reg.lam": [0.1, 1]}, tune_overrides=["log.eval_every=0"])
    calls = []
    first = grid.run_grid("toy-8gaussians", out, executor=_counting_executor(calls), **kw)
    assert len(calls) == 2 + 4  # rfm's two candidates, then 2 cells x 2 seeds
    eval_ids = [r["run_id"] for r in first["runs"]]
    stored = {r["run_id"]: r for r in records.stored_records(out / "records" / "eval")}
    assert sorted(stored) == sorted(eval_ids)
    assert len(records.stored_records(out / "records" / "tune")) == 2
    for run_id, rec in stored.items():
        assert rec["status"] == "complete" and rec["final"] == next(r["final"] for r in first["runs"]
                                                                    if r["run_id"] == run_id)
        assert [e["step"] for e in rec["evals"]] == [20] and rec["machine"]["threads"] == 1
        # a sample grid is kept for the first evaluation seed only; never checkpoints
        assert (out / "records" / "eval" / run_id / "samples.png").is_file() == run_id.endswith("-s0")
        assert not list((out / "records" / "eval" / run_id).glob("*.pt"))
    # a fresh clone: the run folders (checkpoints) are gone, the records and results.json are not
    shutil.rmtree(out / "runs")
    shutil.rmtree(out / "tune")
    calls.clear()
    again = grid.run_grid("toy-8gaussians", out, executor=_counting_executor(calls), **kw)
    assert calls == []
    assert [r["final"] for r in again["runs"]] == [r["final"] for r in first["runs"]]
    assert again["tuning"] == first["tuning"]
    # a changed command is refused, naming the key, before anything trains
    with pytest.raises(ValueError, match=r"records/tune/.* different config \(train.steps: 20 -> 30\)"):
        grid.run_grid("toy-8gaussians", out, executor=_counting_executor(calls), **dict(kw, steps=30))
    assert calls == []


def test_failed_runs_are_not_stored(tmp_path):
    with pytest.raises(ValueError, match="only complete and diverged"):
        records.store_record(tmp_path / "r", {"status": "failed"})
    job = executors.Job("a", tmp_path / "runs" / "a", "toy-8gaussians", TINY, record_dir=tmp_path / "rec" / "a")
    executors.save_record(job, {"run_id": "a", "status": "failed", "config": job.config()})
    assert (tmp_path / "runs" / "a" / "result.json").is_file() and not (tmp_path / "rec" / "a").exists()


# ------------------------------------------------------------------------------------------- summaries
PART = Part("gan", "toy-8gaussians", ("gan",), ("none", "gp", "rfm"), 3, 20)
STUDY = Study("demo", "a constructed study", (PART,), "w1", ("high_quality_fraction",), ("modes_covered",),
              robust=("rfm",), baselines=("none", "gp"))
CELLS = {"none": "gan-none", "gp": "gan-gp", "rfm": "gan-rfm-fgm-discriminator"}


def _store(root, reg, seed, w1, hqf, status="complete"):
    cell = CELLS[reg]
    rec = {"run_id": f"{cell}-s{seed}", "status": status, "metric": "w1", "direction": "min",
           "final": w1 if status == "complete" else None, "best": {"value": w1, "step": 20},
           "metrics": {"w1": w1, "high_quality_fraction": hqf, "modes_covered": 8} if status == "complete" else {},
           "info": {"cell": cell, "loss": "gan", "reg": reg, "seed": seed, "tuned": None},
           "wall_time": 1800.0, "machine": {"cpu": "Test CPU", "cpu_capability": "AVX2"}, "config": {}}
    records.store_record(root / "demo" / "gan" / "records" / "eval" / rec["run_id"], rec)


def test_summary_intervals_and_verdicts_from_constructed_records(tmp_path):
    for s in range(3):
        _store(tmp_path, "none", s, 0.10 + 0.01 * s, 0.50 + 0.01 * s)  # w1 0.10, 0.11, 0.12
        _store(tmp_path, "rfm", s, 0.05 + 0.01 * s, 0.80 + 0.01 * s)   # better in w1 and hqf than none
        _store(tmp_path, "gp", s, 0.08 + 0.01 * s, 0.95 + 0.01 * s)    # rfm better in w1, worse in hqf
    data = studies.load_part(tmp_path, STUDY, PART)
    got = {(c["method"], c["baseline"]): c for c in studies.verdicts(STUDY, data)}
    vs_none = got[("rfm-fgm-discriminator", "none")]
    # differences w1: -0.05 on every seed (sd 0): the interval is a point below zero
    assert vs_none["metrics"]["w1"]["mean"] == pytest.approx(-0.05) and vs_none["metrics"]["w1"]["verdict"] == "better"
    assert vs_none["metrics"]["high_quality_fraction"]["verdict"] == "better" and vs_none["verdict"] == "better"
    vs_gp = got[("rfm-fgm-discriminator", "gp")]
    assert vs_gp["metrics"]["w1"]["verdict"] == "better"
    assert vs_gp["metrics"]["high_quality_fraction"]["verdict"] == "worse"
    assert vs_gp["verdict"] == "not distinguishable"  # the metrics disagree
    cells = studies.cell_table(STUDY, data).to_markdown()
    # none: w1 mean 0.11, sd 0.01, 95% interval 0.11 -+ 4.3027 * 0.01 / sqrt 3 = [0.0852, 0.135]
    assert "| gan | none | 3/3 | 0.110 ± 0.010 [0.0852, 0.135] |" in cells
    md = studies.summary_markdown(STUDY, tmp_path)
    assert "| gan | 0/0 | 9/3 |" not in md and "| gan | 0/0 | 9/9 | 0.00 | 4.50 | Test CPU AVX2 |" in md


def test_diverged_seeds_are_counted_and_left_out_of_the_pairs(tmp_path):
    for s in range(3):
        _store(tmp_path, "none", s, 0.10 + 0.01 * s, 0.5)
        _store(tmp_path, "rfm", s, 0.05, 0.8, status="diverged" if s == 1 else "complete")
    data = studies.load_part(tmp_path, STUDY, PART)
    cells = studies.cell_table(STUDY, data).to_markdown()
    assert "| gan | rfm-fgm-discriminator | 3/3 (1 diverged) |" in cells and "| gan | gp | 0/3 | not run |" in cells
    comp = next(c for c in studies.verdicts(STUDY, data) if c["baseline"] == "none")
    assert comp["metrics"]["w1"]["seeds"] == [0, 2]


def test_glance_tables_repeat_the_intervals_and_verdicts_in_short(tmp_path):
    for s in range(3):
        _store(tmp_path, "none", s, 0.10 + 0.01 * s, 0.50 + 0.01 * s)
        _store(tmp_path, "rfm", s, 0.05 + 0.01 * s, 0.80 + 0.01 * s)
        if s < 2:  # gp: seed 2 not recorded yet
            _store(tmp_path, "gp", s, 0.08 + 0.01 * s, 0.95 + 0.01 * s)
    w1, hqf, modes, verdict = studies.glance_tables(STUDY, studies.load_part(tmp_path, STUDY, PART))
    assert w1.header == ["loss", "none", "gp", "rfm"]
    # none as above; gp from 2 seeds: 0.085 -+ 12.706 * 0.00707 / sqrt 2 = [0.0215, 0.1485]
    assert w1.rows == [["gan", "0.110 [0.085, 0.13]", "0.0850 [0.021, 0.15] (2/3)", "0.0600 [0.035, 0.085]"]]
    assert hqf.rows[0][1] == "0.510 [0.49, 0.53]" and modes.rows[0][3] == "8.00 [8.0, 8.0]"
    # rfm - none = -0.05 on every seed; rfm - gp = -0.03 in w1 but +0.15 in hqf (disagree)
    assert verdict.header == ["loss", "method", "vs none", "vs gp"]
    assert verdict.rows == [["gan", "rfm", "better (-0.050)", "not distinguishable (-0.030)"]]
    assert "at a glance" in studies.summary_markdown(STUDY, tmp_path)


def test_study_command_lists_and_reports(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(studies.STUDIES, "demo", STUDY)
    for s in range(3):
        _store(tmp_path, "none", s, 0.1, 0.5)
    assert studies.main(["list", "demo", "--root", str(tmp_path)]) == 0
    assert "evaluation 3/9 runs recorded" in capsys.readouterr().out
    assert studies.main(["report", "demo", "--root", str(tmp_path)]) == 0
    text = (tmp_path / "demo" / "summary.md").read_text()
    assert text.startswith("# Study demo: a constructed study") and "| gan | none | 3/3 |" in text
    assert studies.main(["report", "nosuch", "--root", str(tmp_path)]) == 2
    assert "unknown study 'nosuch'" in capsys.readouterr().err
    json.dumps(studies.verdicts(STUDY, studies.load_part(tmp_path, STUDY, PART)))  # JSON-able


def test_every_attack_cell_is_compared_with_the_baselines(tmp_path):
    part = Part("gan", "toy-8gaussians", ("gan",), ("none", "rfm"), 2, 20, attacks=("fgm", "pgd"))
    study = Study("atk", "attacks", (part,), "w1", ("high_quality_fraction",), robust=("rfm",), baselines=("none",))
    for cell, w1 in (("gan-none", 0.2), ("gan-rfm-fgm-discriminator", 0.1), ("gan-rfm-pgd-discriminator", 0.3)):
        for s in range(2):
            rec = {"run_id": f"{cell}-s{s}", "status": "complete", "metric": "w1", "final": w1 + 0.01 * s,
                   "metrics": {"high_quality_fraction": 0.5}, "best": {"value": w1},
                   "info": {"cell": cell, "loss": "gan", "reg": cell.split("-")[1], "seed": s}}
            records.store_record(tmp_path / "atk" / "gan" / "records" / "eval" / rec["run_id"], rec)
    got = {(c["method"], c["baseline"]): c for c in studies.verdicts(study, studies.load_part(tmp_path, study, part))}
    assert sorted(got) == [("rfm-fgm-discriminator", "none"), ("rfm-pgd-discriminator", "none")]
    assert got[("rfm-fgm-discriminator", "none")]["metrics"]["w1"]["verdict"] == "better"
    assert got[("rfm-pgd-discriminator", "none")]["metrics"]["w1"]["verdict"] == "worse"
    # equal high-quality fractions: a zero-width interval at 0 is not distinguishable, so neither is the verdict
    assert got[("rfm-fgm-discriminator", "none")]["verdict"] == "not distinguishable"
    glance = studies.glance_tables(study, studies.load_part(tmp_path, study, part))
    assert glance[0].header == ["loss", "none", "rfm-fgm", "rfm-pgd"]
    assert [r[1] for r in glance[-1].rows] == ["rfm-fgm", "rfm-pgd"]


def test_a_part_is_compared_with_its_reference_cells_paired_by_seed(tmp_path, monkeypatch):
    ref_part = Part("gan", "toy-8gaussians", ("gan",), ("none", "rfm"), 3, 20)
    ref = Study("ref", "the reference", (ref_part,), "w1", ("high_quality_fraction",), robust=("rfm",),
                baselines=("none",))
    part = Part("gan", "toy-8gaussians", ("gan",), ("none", "rfm"), 3, 20, attacks=("pgd",))
    study = Study("atk", "attacks", (part,), "w1", ("high_quality_fraction",), robust=("rfm",),
                  baselines=("none",), reference=("ref", "gan"))
    monkeypatch.setitem(studies.STUDIES, "ref", ref)

    def put(name, cell, seed, w1, hqf):
        rec = {"run_id": f"{cell}-s{seed}", "status": "complete", "metric": "w1", "final": w1,
               "metrics": {"high_quality_fraction": hqf}, "best": {"value": w1},
               "info": {"cell": cell, "loss": "gan", "reg": cell.split("-")[1], "seed": seed}}
        records.store_record(tmp_path / name / "gan" / "records" / "eval" / rec["run_id"], rec)

    for s in range(3):
        put("ref", "gan-none", s, 0.5, 0.1)
        put("ref", "gan-rfm-fgm-discriminator", s, 0.20 + 0.01 * s, 0.5)
        put("atk", "gan-none", s, 0.5, 0.1)
        put("atk", "gan-rfm-pgd-discriminator", s, 0.30 + 0.02 * s, 0.4 - 0.01 * s)
    comps = studies.reference_verdicts(study, studies.load_part(tmp_path, study, part), tmp_path)
    # none is the same cell in both (left out); pgd - fgm = 0.10, 0.11, 0.12 in w1 (worse), hqf lower (worse)
    assert [(c["method"], c["baseline"]) for c in comps] == [("rfm-pgd-discriminator", "rfm-fgm-discriminator (ref/gan)")]
    d = comps[0]["metrics"]["w1"]
    # mean 0.11, sd 0.01: 0.11 -+ 4.3027 * 0.01 / sqrt 3
    assert d["mean"] == pytest.approx(0.11) and d["lo"] == pytest.approx(0.11 - 0.024841, abs=1e-5)
    assert comps[0]["verdict"] == "worse"
    assert "against ref/gan, paired by seed" in studies.summary_markdown(study, tmp_path)
    # no reference records yet: no comparison, no error
    assert studies.reference_verdicts(study, studies.load_part(tmp_path, study, part), tmp_path / "empty") == []


def test_identical_runs_of_a_shared_study_are_copied_not_trained(tmp_path):
    base = tuple(TINY)
    ref = Study("ref", "the reference", (Part("gan", "toy-8gaussians", ("gan",), ("none", "gp"), 2, 20, base),),
                "w1", ("high_quality_fraction",), robust=(), baselines=("none", "gp"))
    part = Part("gan", "toy-8gaussians", ("gan",), ("none", "rfm"), 2, 20, base)
    study = Study("mine", "shares none with ref", (part,), "w1", ("high_quality_fraction",), robust=("rfm",),
                  baselines=("none",), share=(("ref", "gan"),))
    calls = []
    studies.run_study(ref, tmp_path, executor=_counting_executor(calls))
    assert calls == ["gan-none-s0", "gan-none-s1", "gan-gp-s0", "gan-gp-s1"]
    ref_eval = tmp_path / "ref" / "gan" / "records" / "eval"
    # seed 1 of ref's none diverged: a diverged record is not shared (a rerun may be asked for)
    diverged = dict(records.read_stored(ref_eval / "gan-none-s1"), status="diverged", final=None)
    records.store_record(ref_eval / "gan-none-s1", diverged)
    calls.clear()
    studies.run_study(study, tmp_path, executor=_counting_executor(calls))
    assert calls == ["gan-none-s1", "gan-rfm-fgm-discriminator-s0", "gan-rfm-fgm-discriminator-s1"]
    mine = tmp_path / "mine" / "gan" / "records" / "eval"
    copied = records.read_stored(mine / "gan-none-s0")
    original = records.read_stored(ref_eval / "gan-none-s0")
    assert copied["shared_from"] == str(ref_eval / "gan-none-s0")
    assert {k: v for k, v in copied.items() if k != "shared_from"} == original
    assert (mine / "gan-none-s0" / "samples.png").read_bytes() == (ref_eval / "gan-none-s0" / "samples.png").read_bytes()
    assert "shared_from" not in records.read_stored(mine / "gan-none-s1")
    # the copy is counted once: not in this study's CPU-hours
    data = studies.load_part(tmp_path, study, part)
    own = sum(r["wall_time"] for r in data.eval_records if not r.get("shared_from"))
    cost = studies.cost_table(study, [data])
    assert cost.rows[0][4] == f"{own / 3600:.2f}" and "1 recorded runs are identical runs of ref gan" in cost.note
    # a run that differs in anything is trained, not copied
    other = Study("other", "more steps", (Part("gan", "toy-8gaussians", ("gan",), ("none",), 1, 30, base),),
                  "w1", ("high_quality_fraction",), robust=(), baselines=("none",), share=(("ref", "gan"),))
    calls.clear()
    studies.run_study(other, tmp_path, executor=_counting_executor(calls))
    assert calls == ["gan-none-s0"]
    assert "shared_from" not in records.read_stored(tmp_path / "other" / "gan" / "records" / "eval" / "gan-none-s0")


def test_the_tuning_table_marks_a_choice_at_the_edge_of_the_grid(tmp_path):
    part = Part("gan", "toy-8gaussians", ("gan",), ("gp", "rfm"), 3, 20, tune={"reg.lam": [0.1, 1, 10]})
    study = Study("tun", "tuning", (part,), "w1", ("high_quality_fraction",), robust=("rfm",), baselines=("gp",))
    finals = {"gan-gp": [0.5, 0.2, 0.4], "gan-rfm-fgm-discriminator": [0.5, 0.4, 0.3]}
    for cell, values in finals.items():
        for lam, w1 in zip([0.1, 1, 10], values):
            rec = {"run_id": f"{cell}-lam{lam}-s1000", "status": "complete", "final": w1,
                   "info": {"cell": cell, "candidate": {"reg.lam": lam}, "seed": 1000}}
            records.store_record(tmp_path / "tun" / "gan" / "records" / "tune" / rec["run_id"], rec)
    (tmp_path / "tun" / "gan" / "results.json").write_text(json.dumps(
        {"cells": [{"id": "gan-gp", "tuned": {"reg.lam": 1}},
                   {"id": "gan-rfm-fgm-discriminator", "tuned": {"reg.lam": 10}}]}))
    table = studies.tuning_table(study, studies.load_part(tmp_path, study, part))
    chosen = {row[0]: row[1] for row in table.rows}
    assert chosen == {"gan-gp": "lam=1", "gan-rfm-fgm-discriminator": "lam=10 (largest tried)"}
    assert "edge of what was tried" in table.note


def test_every_study_resolves():
    for study in studies.STUDIES.values():
        for part in study.parts:
            tjobs, ejobs = studies.part_jobs("studies", study, part)
            assert ejobs and all(j.record_dir for j in tjobs + ejobs)
            for job in (tjobs + ejobs)[:3]:
                assert job.config()["train"]["amp"] == "none" or study.name == "table2"


# ------------------------------------------------------------------------------ tuning past the edge
def test_a_step_beyond_the_edge_continues_the_grid():
    step = grid._step_beyond
    assert step([0.1, 1, 10, 100, 1000], 0.1) == pytest.approx(0.01)
    assert step([0.1, 1, 10, 100, 1000], 1000) == pytest.approx(10000)
    assert step([0.1, 1, 10, 100, 1000], 10) is None  # inside: nothing to extend
    assert step([0.05, 0.1, 0.2], 0.2) == pytest.approx(0.4) and step([0.05, 0.1, 0.2], 0.05) == pytest.approx(0.025)
    assert step([0.1, 1, 10, 0.01], 0.01) == pytest.approx(0.001)  # an extended grid continues from its new edge
    assert step([1, 2, 4], 4) == 8 and isinstance(step([1, 2, 4], 4), int)
    assert step([0.1, 1], 0.1) is None and step(["a", "b", "c"], "a") is None and step([0, 1, 2], 0) is None


def _lam_runner(calls):
    """A fake trainer: tuning runs score (log10 lam + 3)^2 + 1 (best at lam 0.001), evaluation runs 1."""
    import math

    def runner(job):
        calls.append(job.run_id)
        cfg = job.config()
        lam = cfg["reg"]["lam"]
        final = (math.log10(lam) + 3) ** 2 + 1 if job.info.get("phase") == "tune" else 1.0
        record = {"run_id": job.run_id, "info": job.info, "status": "complete", "config": cfg, "final": final,
                  "metrics": {"w1": final}, "evals": [], "wall_time": 1.0}
        executors.save_record(job, record)
        return record
    return runner


def test_tuning_goes_past_the_edge_and_replaces_runs_of_the_old_choice(tmp_path, capsys):
    out = tmp_path / "g"
    kw = dict(losses=["gan"], regs=["gp"], seeds=2, steps=20, overrides=TINY, tune={"reg.lam": [0.1, 1, 10]})
    calls = []
    ex = LocalExecutor(inprocess=True, runner=_lam_runner(calls))
    first = grid.run_grid("toy-8gaussians", out, executor=ex, extend=1, **kw)
    # 0.1 is the grid's best and its edge: one step beyond, 0.01 (score 2), wins
    assert calls[:3] == ["gan-gp-lam0.1-s1000", "gan-gp-lam1-s1000", "gan-gp-lam10-s1000"]
    assert calls[3] == "gan-gp-lam0.01-s1000" and len(calls) == 4 + 2
    assert first["tuning"]["gan-gp"]["chosen"] == {"reg.lam": 0.01}
    assert first["tuned_beyond_grid"] == {"gan-gp": [{"reg.lam": 0.01}]}
    assert [c["score"] for c in first["tuning"]["gan-gp"]["candidates"]] == pytest.approx([5, 10, 17, 2])
    assert all(r["config"]["reg"]["lam"] == pytest.approx(0.01) for r in first["runs"])
    # two rounds: 0.01 is recorded (not trained again), 0.001 (score 1) is tried and wins
    calls.clear()
    with pytest.raises(ValueError, match=r"different config \(reg.lam: 0.01 -> 0.001\)"):
        grid.run_grid("toy-8gaussians", out, executor=ex, extend=2, **kw)
    assert calls == ["gan-gp-lam0.001-s1000"]
    calls.clear()
    again = grid.run_grid("toy-8gaussians", out, executor=ex, extend=2, replace_retuned=True, **kw)
    assert calls == ["gan-gp-s0", "gan-gp-s1"]  # the evaluation runs of lam 0.01 train again with 0.001
    assert again["tuning"]["gan-gp"]["chosen"] == {"reg.lam": 0.001}
    assert "gan-gp-s0: the tuned value changed (reg.lam: 0.01 -> 0.001)" in capsys.readouterr().out
    aside = records.read_stored(out / "records" / "superseded" / "gan-gp-s0")
    assert aside["config"]["reg"]["lam"] == pytest.approx(0.01)
    assert records.read_stored(out / "records" / "eval" / "gan-gp-s0")["config"]["reg"]["lam"] == pytest.approx(0.001)
    assert (out / "runs" / "gan-gp-s0.superseded").is_dir()
    # the tuning table counts the runs beyond the grid apart and marks the new edge
    part = Part("gan", "toy-8gaussians", ("gan",), ("gp",), 2, 20, tuple(TINY), {"reg.lam": [0.1, 1, 10]}, extend=2)
    study = Study("s", "edge", (part,), "w1", (), robust=(), baselines=("gp",))
    shutil.copytree(out, tmp_path / "root" / "s" / "gan")
    data = studies.load_part(tmp_path / "root", study, part)
    cost = studies.cost_table(study, [data])
    assert cost.rows[0][1] == "3/3 + 2 beyond the grid"
    assert "Not in these figures: 2 evaluation runs of an earlier tuned value (0.00 CPU-hours)" in cost.note
    table = studies.tuning_table(study, data)
    assert table.rows[0][1] == "lam=0.001 (smallest tried)" and "up to 2 steps beyond" in table.note


def test_progress_counts_runs_beyond_the_grid_apart(tmp_path, capsys):
    report = executors.print_progress(2)
    plain = executors.Job("a-s0", tmp_path / "a", "toy-8gaussians", [], {"phase": "eval"})
    beyond = executors.Job("a-lam0.01-s1000", tmp_path / "b", "toy-8gaussians", [], {"beyond_grid": True})
    rec = {"status": "complete", "metric": "w1", "final": 0.5, "wall_time": 2.0}
    report(plain, rec, False)
    report(beyond, rec, True)
    report(plain, rec, True)
    assert capsys.readouterr().out.splitlines() == [
        "[1/2] a-s0: complete w1=0.5 (2.0 s)", "[+1] a-lam0.01-s1000: complete w1=0.5 (done before)",
        "[2/2] a-s0: complete w1=0.5 (done before)"]


def test_a_rerun_stopped_part_way_leaves_results_json_as_complete_as_before(tmp_path):
    out = tmp_path / "g"
    kw = dict(losses=["gan"], regs=["gp"], seeds=2, steps=20, overrides=TINY, tune={"reg.lam": [0.1, 1, 10]})
    calls = []
    grid.run_grid("toy-8gaussians", out, executor=LocalExecutor(inprocess=True, runner=_lam_runner(calls)), **kw)
    before = json.loads((out / "results.json").read_text())
    assert len(before["tuning_runs"]) == 3 and len(before["runs"]) == 2

    def stop_beyond_the_edge(job):  # the rerun tunes past the edge first, and is stopped there
        if job.run_id == "gan-gp-lam0.01-s1000":
            raise KeyboardInterrupt
        return _lam_runner(calls)(job)

    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        grid.run_grid("toy-8gaussians", out, executor=LocalExecutor(inprocess=True, runner=stop_beyond_the_edge),
                      extend=1, **kw)
    assert calls == []  # every recorded run was skipped, and the stop came before the evaluation runs
    after = json.loads((out / "results.json").read_text())
    key = lambda runs: sorted((r["run_id"], r["final"]) for r in runs)  # noqa: E731
    assert key(after["tuning_runs"]) == key(before["tuning_runs"])
    assert key(after["runs"]) == key(before["runs"])
    assert after["tuning"] == before["tuning"] and after["cells"] == before["cells"]


# ------------------------------------------------------------------------------ the sweep's start
def test_table2_start_part_trains_the_same_setups_one_step():
    study = studies.get_study("table2")
    start, sweep = study.parts
    _, sjobs = studies.part_jobs("studies", study, start)
    _, ejobs = studies.part_jobs("studies", study, sweep)
    assert [j.info["factors"] for j in sjobs] == [j.info["factors"] for j in ejobs if j.info["method"] == "none"]
    for s, e in zip(sjobs, [j for j in ejobs if j.info["method"] == "none"]):
        sc, ec = s.config(), e.config()
        assert sc["train"]["steps"] == 1 and ec["train"]["steps"] == 1500
        assert sc["model"] == ec["model"] and sc["optim"] == ec["optim"] and sc["loss"] == ec["loss"]


def test_the_start_table_lists_each_setup_against_the_threshold(tmp_path):
    start = studies.SweepPart("start", "cpu", 3, ("none",), overrides=studies.START_OVERRIDES, role="start")
    study = Study("t2", "start only", (start,), "fd", ("kid_mean",))
    scores = iter([600.0, 500.0, 800.0])
    calls = []

    def runner(job):
        calls.append(job.run_id)
        cfg = job.config()
        assert cfg["train"]["steps"] == 1
        final = next(scores)
        record = {"run_id": job.run_id, "info": job.info, "status": "complete", "config": cfg, "final": final,
                  "metrics": {"fd": final}, "evals": [], "wall_time": 1.0}
        executors.save_record(job, record)
        return record

    studies.run_study(study, tmp_path, executor=LocalExecutor(inprocess=True, runner=runner))
    assert calls == ["setup00-none", "setup01-none", "setup02-none"]
    text = studies.summary_markdown(study, tmp_path)
    assert "start: fd of each setup after one step (seed 0)" in text
    rows = [line for line in text.splitlines() if line.startswith("| setup0")]
    assert [row.rsplit("|", 2)[1].strip() for row in rows] == ["600", "500", "800"]
    # the best start (500) is 2.0x the cpu pool's threshold of 250
    assert "3 of 3 setups scored: 500 to 800" in text and "below 250, 2.0x below the best start here" in text


def test_table2_runs_every_method_at_table1s_weight_for_the_setups_loss():
    study = studies.get_study("table2")
    _, jobs = studies.part_jobs("studies", study, study.parts[1])
    tuned = {}
    for loss in ("gan", "lsgan", "wgan"):
        for cell in json.loads((Path("studies") / "table1" / loss / "results.json").read_text())["cells"]:
            if cell["attack"] in (None, "fgm") and cell["target"] in (None, "discriminator"):
                tuned[(loss, cell["reg"])] = cell["tuned"]
    checked = 0
    for job in jobs:
        cfg, method = job.config(), job.info["method"]
        if method == "none":
            assert cfg["reg"]["lam"] is None
            continue
        ((key, value),) = tuned[(cfg["loss"], method)].items()
        assert cfg["reg"][key.split(".")[1]] == value
        checked += 1
    assert checked == 100  # 20 setups x 5 methods with a weight


def test_a_part_with_weights_from_runs_every_attack_at_the_weight_the_other_grid_tuned(tmp_path):
    base = tuple(TINY)
    ref = Study("ref", "tunes rfm with fgm", (Part("gan", "toy-8gaussians", ("gan",), ("none", "rfm"), 1, 20, base,
                                                   {"reg.lam": [0.1, 1]}, tune_overrides=("log.eval_every=0",)),),
                "w1", ("high_quality_fraction",), robust=("rfm",), baselines=("none",))
    # a tuning grid too: the cells with a given weight are not tuned
    part = Part("gan", "toy-8gaussians", ("gan",), ("none", "rfm"), 2, 20, base, {"reg.lam": [0.1, 1]},
                tune_overrides=("log.eval_every=0",), attacks=("fgsm", "pgd"), weights_from=(("ref", "gan"),))
    study = Study("att", "attacks at ref's weight", (part,), "w1", ("high_quality_fraction",), robust=("rfm",),
                  baselines=("none",))
    # before ref has run, the study says what to run instead of training at the default weight
    with pytest.raises(ValueError, match=r"no such file; run that grid"):
        studies.part_jobs(tmp_path, study, part)
    studies.run_study(ref, tmp_path, executor=_counting_executor([]))
    chosen = json.loads((tmp_path / "ref" / "gan" / "results.json").read_text())
    lam = next(c["tuned"] for c in chosen["cells"] if c["reg"] == "rfm")["reg.lam"]
    assert lam in (0.1, 1)
    calls = []
    studies.run_study(study, tmp_path, executor=_counting_executor(calls))
    # no tuning: two seeds of none and of each attack's rfm cell, nothing else
    assert sorted(calls) == sorted(f"gan-{c}-s{s}" for c in ("none", "rfm-fgsm-discriminator",
                                                             "rfm-pgd-discriminator") for s in (0, 1))
    out = tmp_path / "att" / "gan"
    for attack in ("fgsm", "pgd"):
        rec = records.read_stored(out / "records" / "eval" / f"gan-rfm-{attack}-discriminator-s1")
        assert rec["config"]["reg"]["lam"] == lam and rec["config"]["reg"]["attack"] == attack
        assert rec["info"]["weights"] == {"reg.lam": lam} and rec["info"]["tuned"] is None
    none = records.read_stored(out / "records" / "eval" / "gan-none-s0")
    assert "weights" not in none["info"]
    results = json.loads((out / "results.json").read_text())
    assert results["weights_from"] == ["ref/gan"] and results["tuning_runs"] == []
    table = studies.cell_table(study, studies.load_part(tmp_path, study, part))
    given = {row[1]: row[-1] for row in table.rows}
    assert given["rfm-fgsm-discriminator"] == f"lam={lam} (given)" and given["none"] == "default"
    assert "ref/gan tuned" in table.note
    # a grid that tuned a different regulariser leaves this one without a weight: refused
    other = Part("gan", "toy-8gaussians", ("gan",), ("ar",), 1, 20, base, attacks=("fgsm",),
                 weights_from=(("ref", "gan"),))
    with pytest.raises(ValueError, match=r"ref/gan has no tuned weight for gan ar; run that first"):
        other.weights(tmp_path)
