"""Tests of ``robustgan report`` (robustgan.experiments.report).

A tiny real grid (8 Gaussians, MLP of width 16, 20 steps, evaluated at steps 10 and 20) gives
run folders with metrics, samples and checkpoints; the figures are checked for what they show
(labels, plotted data, shared limits) against the runs' own files, not for pixels.
"""
from __future__ import annotations

import ast
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from robustgan.experiments import grid, report, results
from robustgan.experiments.executors import LocalExecutor
from robustgan.experiments.report import ReportWarning, SampleCell, sample_matrix, sample_matrix_figure

SRC = Path(__file__).resolve().parents[1] / "src" / "robustgan"
TINY = ["log.every=10", "log.checkpoint_every=10", "log.samples_every=20", "log.progress=false",
        "log.tensorboard=false", "model.width=16", "train.batch_size=32", "log.eval_n=200", "train.threads=1",
        "log.eval_every=10"]


@pytest.fixture(scope="module")
def toy_grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("grid")
    torch.manual_seed(0)
    grid.run_grid("toy-8gaussians", out, losses=["gan"], regs=["none", "rfm"], seeds=1, overrides=TINY, steps=20,
                  executor=LocalExecutor(inprocess=True), command="robustgan grid test")
    return out


def _axes(fig, nr, nc):
    return np.array([ax for ax in fig.axes if ax.get_subplotspec() is not None]).reshape(nr, nc)


def test_report_is_self_contained(toy_grid):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReportWarning)  # nothing is missing here
        html_path, md_path = report.write_report(toy_grid)
    page = html_path.read_text()
    assert "<table>" in page and "Final w1" in page and "Final w1 during" not in page and "Warning" not in page
    assert page.count('src="data:image/png;base64,') == 3 + 1  # curves (w1, robustness, loss_d) + the matrix
    assert "<script" not in page and "<link" not in page and "http://" not in page and "https://" not in page
    md = md_path.read_text()
    assert "| loss | none | rfm |" in md
    links = [line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]
    assert links == ["report_files/curves-w1.png", "report_files/curves-robustness.png",
                     "report_files/curves-loss_d.png", "report_files/samples.png"]
    assert all((toy_grid / link).is_file() for link in links)


def test_main_metric_curve_is_the_mean_of_the_eval_rows(toy_grid):
    res = report.load_results(toy_grid)
    fig = report.curves_figure(res, "w1", "eval")
    (ax,) = [a for a in fig.axes if a.get_title() == "loss gan"]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == {"none", "rfm-fgm-discriminator"}
    for r in res["runs"]:
        label = "none" if r["info"]["reg"] == "none" else "rfm-fgm-discriminator"
        rows = results.eval_rows(results.read_metrics(r["run_dir"]))
        np.testing.assert_array_equal(lines[label].get_xdata(), [10, 20])
        np.testing.assert_allclose(lines[label].get_ydata(), [row["w1"] for row in rows], rtol=1e-12)


def test_two_d_samples_share_axes_with_the_data_beneath(toy_grid):
    res = report.load_results(toy_grid)
    row_kind, rows, columns, cells = sample_matrix(res)
    assert (row_kind, rows, columns) == ("loss", ["gan"], ["none", "rfm-fgm-discriminator"])
    from robustgan.data.toy import get_toy

    real = get_toy("8gaussians").sample(1000, generator=torch.Generator().manual_seed(8)).numpy()
    for cell in cells.values():
        assert cell.points.shape == (1000, 2) and np.isfinite(cell.points).all() and cell.image is None
        np.testing.assert_array_equal(cell.real, real)  # the trainer's data points for samples/
    assert not np.array_equal(cells[("gan", "none")].points, cells[("gan", "rfm-fgm-discriminator")].points)
    fig = sample_matrix_figure(rows, columns, cells)
    axes = _axes(fig, 1, 2)
    assert [ax.get_title() for ax in axes[0]] == columns and axes[0, 0].get_ylabel() == "gan"
    assert axes[0, 0].get_xlim() == axes[0, 1].get_xlim() == axes[0, 0].get_ylim() == axes[0, 1].get_ylim()
    half = axes[0, 0].get_xlim()[1]
    assert half == pytest.approx(1.25 * float(np.abs(real).max()), rel=1e-6)  # real is float32
    for ax, col in zip(axes[0], columns):
        data, samples = ax.collections  # drawn in this order: the data beneath the samples
        assert data.get_zorder() < samples.get_zorder()
        np.testing.assert_array_equal(data.get_offsets(), real)
        np.testing.assert_array_equal(samples.get_offsets(), cells[("gan", col)].points)
        record = next(r for r in res["runs"] if col.startswith(r["info"]["reg"]))
        assert ax.get_xlabel().startswith(f"w1 {results.format_value(record['final'])}, seed 0")


def test_image_matrix_is_labelled_rows_losses_columns_regularisers():
    rng = np.random.default_rng(0)
    rows, cols = ["gan", "lsgan", "wgan"], ["none", "gp", "ar"]
    imgs = {(r, c): rng.integers(0, 256, (34, 34), dtype=np.uint8) for r in rows for c in cols}
    cells = {k: SampleCell(caption=f"fd {i}", image=v) for i, (k, v) in enumerate(imgs.items())}
    cells[("wgan", "ar")] = SampleCell(caption="diverged at step 7, seed 0", failed=True)
    del cells[("lsgan", "gp")]
    axes = _axes(sample_matrix_figure(rows, cols, cells), 3, 3)
    assert [ax.get_title() for ax in axes[0]] == cols and [ax.get_title() for ax in axes[1]] == ["", "", ""]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == rows and axes[0, 1].get_ylabel() == ""
    np.testing.assert_array_equal(axes[1, 2].images[0].get_array(), imgs[("lsgan", "ar")])
    assert axes[0, 1].get_xlabel() == "fd 1"
    assert axes[1, 1].get_xlabel() == "not run" and not axes[1, 1].images
    assert not axes[2, 2].images and [t.get_text() for t in axes[2, 2].texts] == ["no samples"]
    assert axes[2, 2].xaxis.label.get_color() == "#b00020"


def test_no_runs_folder_is_a_warning_on_the_page_and_stderr(toy_grid, tmp_path, capsys):
    res = json.loads((toy_grid / "results.json").read_text())
    for r in res["runs"]:
        r["run_dir"] = str(tmp_path / "elsewhere" / r["run_id"])
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "results.json").write_text(json.dumps(res))
    with pytest.warns(ReportWarning, match="no runs/ folder next to .*: this report has the tables only"):
        html_path, md_path = report.write_report(moved)
    assert 'class="warning"' in html_path.read_text() and "> **Warning:** no runs/ folder" in md_path.read_text()
    assert "<table>" in html_path.read_text() and "Samples" not in html_path.read_text()
    from robustgan.cli import main

    assert main(["report", str(moved)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("robustgan report: warning: no runs/ folder")


def test_one_missing_run_folder_is_named(toy_grid, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(toy_grid, copy)
    res = json.loads((copy / "results.json").read_text())
    for r in res["runs"]:
        r["run_dir"] = str(tmp_path / "gone" / r["run_id"])  # only copy/runs/ holds them now
    (copy / "results.json").write_text(json.dumps(res))
    shutil.rmtree(copy / "runs" / "gan-none-s0")
    shutil.rmtree(copy / "records" / "eval" / "gan-none-s0")  # and its stored record
    with pytest.warns(ReportWarning, match=r"1 of 2 run folders are missing .*\(gan-none-s0\)"):
        html_path, _ = report.write_report(copy)
    assert html_path.read_text().count('src="data:image/png;base64,') == 3 + 1  # rfm still drawn


def test_a_fresh_clone_reports_from_the_stored_records(toy_grid, tmp_path):
    clone = tmp_path / "clone"  # what is committed: results.json and records/, no run folders
    clone.mkdir()
    shutil.copy(toy_grid / "results.json", clone / "results.json")
    shutil.copytree(toy_grid / "records", clone / "records")
    res = json.loads((clone / "results.json").read_text())
    for r in res["runs"]:
        r["run_dir"] = str(tmp_path / "gone" / r["run_id"])
    (clone / "results.json").write_text(json.dumps(res))
    loaded = report.load_results(clone)
    steps, values = report.collect_curves(loaded["runs"][:1], "w1", "eval")
    evals = res["runs"][0]["evals"]
    assert steps == [e["step"] for e in evals] == [10, 20] and values == [e["w1"] for e in evals]
    assert report.collect_curves(loaded["runs"][:1], "loss_d", "train") == ([], [])
    with pytest.warns(ReportWarning, match="only their stored records"):
        html_path, _ = report.write_report(clone)
    page = html_path.read_text()
    assert "Samples" in page and page.count('src="data:image/png;base64,') >= 2  # w1 curve and the samples


def test_without_evaluations_during_training_the_page_says_so(toy_grid, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(toy_grid, copy)
    for run in (copy / "runs").iterdir():  # keep only the final evaluation, as without log.eval_every
        rows = results.read_metrics(run)
        keep = [r for r in rows if r.get("kind") != "eval" or r["step"] == 20]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
    html_path, _ = report.write_report(copy)
    page = html_path.read_text()
    assert "No w1 curve: the runs were evaluated at most once" in page
    assert page.count('src="data:image/png;base64,') == 2 + 1


def test_report_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="run robustgan grid or robustgan sweep"):
        report.write_report(tmp_path)


def test_report_draws_without_pyplot():
    # library code must not switch the user's matplotlib backend
    tree = ast.parse((SRC / "experiments" / "report.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            assert not any("pyplot" in n for n in names)
        if isinstance(node, ast.Attribute) and node.attr == "use":
            assert not (isinstance(node.value, ast.Name) and node.value.id == "matplotlib")
