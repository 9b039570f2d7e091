"""robustgan.experiments.driver: what the grid and the sweep share."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from robustgan.experiments.driver import ResultsFile, csv_list, main_metric, override_key, standalone_main


class BackwardsExecutor:
    """Finishes the jobs last to first, as a parallel executor may; the third record twice."""

    def run(self, jobs, on_record):
        for job in reversed(jobs):
            on_record(job, {"run_id": job.run_id, "status": "complete"}, False)
        on_record(jobs[2], {"run_id": jobs[2].run_id, "status": "diverged"}, True)


def test_results_file_keeps_one_record_per_run_saved_after_each_and_in_job_order_at_the_end(tmp_path):
    jobs = [SimpleNamespace(run_id=f"r{i}") for i in range(4)]
    path = tmp_path / "results.json"
    seen = []

    def on_record(job, record, reused):
        on_disk = json.loads(path.read_text())
        seen.append(([r["run_id"] for r in on_disk["runs"]], on_disk["count"]))

    results = {"runs": []}
    file = ResultsFile(path, results, refresh=lambda res: res.update(count=len(res["runs"])))
    file.run(jobs, BackwardsExecutor(), "runs", on_record)
    # saved (and refreshed) before each callback: the file holds every record so far
    assert seen == [(["r3"], 1), (["r3", "r2"], 2), (["r3", "r2", "r1"], 3), (["r3", "r2", "r1", "r0"], 4),
                    (["r3", "r1", "r0", "r2"], 4)]
    on_disk = json.loads(path.read_text())
    assert [r["run_id"] for r in on_disk["runs"]] == ["r0", "r1", "r2", "r3"]
    assert on_disk["runs"][2]["status"] == "diverged" and on_disk == results
    assert file.write_table("# t\n") == tmp_path / "table.md" and (tmp_path / "table.md").read_text() == "# t\n"


def test_override_keys_metric_and_lists():
    assert override_key("reg=rfm") == "reg.name"
    assert override_key("train.steps=5") == "train.steps"
    assert main_metric(None, {"data": {"name": "8gaussians"}}) == ("w1", "min")
    assert main_metric("recall", {"data": {"name": "8gaussians"}}) == ("recall", "max")
    assert csv_list(" a, b,,c ") == ["a", "b", "c"]


def test_standalone_main_prints_user_errors_as_one_line(capsys):
    def add(parser):
        parser.add_argument("--n", type=int, default=1)

    def runner(args):
        raise ValueError(f"--n must be even, got {args.n}")

    assert standalone_main("thing", add, runner, ["--n", "3"]) == 2
    assert capsys.readouterr().err == "robustgan thing: error: --n must be even, got 3\n"
    assert standalone_main("thing", add, lambda args: None, []) == 0
    with pytest.raises(SystemExit):
        standalone_main("thing", add, runner, ["--bogus"])


def test_grid_and_sweep_refuse_a_bad_out_in_one_line(tmp_path, capsys):
    from robustgan.cli import main
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    assert main(["grid", "--preset", "toy-8gaussians", "--out", str(afile / "sub")]) == 2
    err = capsys.readouterr().err.strip()
    assert "lies under" in err and "\n" not in err
    assert main(["sweep", "--pool", "toy", "--out", str(afile)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a file" in err and "\n" not in err
    assert afile.read_text() == "not a folder"


class StopAfter:
    """Records the first ``n`` jobs, then stops as an interrupted run does."""

    def __init__(self, n):
        self.n = n

    def run(self, jobs, on_record):
        for job in jobs[: self.n]:
            on_record(job, {"run_id": job.run_id, "status": "complete", "final": 2.0}, False)
        raise KeyboardInterrupt


def test_an_interrupted_rerun_keeps_the_earlier_records_it_has_not_reached(tmp_path):
    path = tmp_path / "results.json"
    jobs = [SimpleNamespace(run_id=f"r{i}") for i in range(3)]
    first = ResultsFile(path, {"kind": "grid", "runs": []}, carry=("runs",))
    assert first.earlier is None
    first.run(jobs, BackwardsExecutor(), "runs")
    first.close()
    again = ResultsFile(path, {"kind": "grid", "runs": []}, carry=("runs",))
    assert [r["run_id"] for r in again.earlier["runs"]] == ["r0", "r1", "r2"]
    with pytest.raises(KeyboardInterrupt):
        again.run(jobs, StopAfter(1), "runs")
    on_disk = json.loads(path.read_text())
    # r0 is this rerun's record, r1 and r2 the earlier ones (r2 diverged before): nothing is lost
    assert [(r["run_id"], r["status"]) for r in on_disk["runs"]] == [("r0", "complete"), ("r1", "complete"),
                                                                      ("r2", "diverged")]
    assert on_disk["runs"][0]["final"] == 2.0 and again.results["runs"] == [on_disk["runs"][0]]
    again.forget(["r2"])
    again.save()
    assert [r["run_id"] for r in json.loads(path.read_text())["runs"]] == ["r0", "r1"]
    again.close()  # the rerun is over: only its own records stay
    assert [r["run_id"] for r in json.loads(path.read_text())["runs"]] == ["r0"]


def test_an_earlier_file_of_another_kind_or_unreadable_is_not_carried(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"kind": "sweep", "runs": [{"run_id": "x"}]}))
    file = ResultsFile(path, {"kind": "grid", "runs": []}, carry=("runs",))
    assert file.earlier is None
    file.save()
    assert json.loads(path.read_text())["runs"] == []
    path.write_text("{not json")
    file = ResultsFile(path, {"kind": "grid", "runs": []}, carry=("runs",))
    assert file.earlier is None
    file.save()
    assert json.loads(path.read_text())["kind"] == "grid"
