"""``robustgan report DIR``: an HTML and a Markdown report of a grid or a sweep.

Reads ``DIR/results.json`` (written by ``robustgan grid`` or ``robustgan sweep``) and every run's
``metrics.jsonl``, ``samples/latest.png`` and last checkpoint, and writes

* ``DIR/report.html``: self-contained (images embedded as base64 ``data:`` URIs, styles inline,
  no scripts, nothing fetched): open it anywhere, mail it, attach it to an issue;
* ``DIR/report.md``: the same tables and figures, the figures written to ``DIR/report_files/``
  (relative paths, so the folder can be moved as a whole).

Sections:

* the result tables (as in ``table.md``);
* curves over training steps, one panel per loss (grid) or per setup (sweep), one line per
  regulariser averaged over seeds: the main metric whenever the runs were evaluated during
  training (``kind == "eval"`` rows of ``metrics.jsonl`` at two or more steps, ``log.eval_every``),
  and always the discriminator's robustness and loss from the training rows;
* the samples as one labelled matrix, rows losses and columns regularisers (grid) or rows setups
  and columns methods (sweep), each cell named with its main metric and seed. For 2-D data every
  panel shares the same axes and draws the real data beneath the generated points (regenerated
  from the run's last checkpoint with the trainer's fixed noise); image runs show their latest grid.

Anything that is missing (no ``runs/`` folder next to ``results.json``, a run folder gone) is
said at the top of the page and raised as a :class:`ReportWarning`, never silently left out.
"""
from __future__ import annotations

import argparse
import base64
import html
import math
import sys
import textwrap
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .results import format_value, read_json, read_metrics

__all__ = [
    "ReportWarning",
    "SampleCell",
    "load_results",
    "collect_curves",
    "curves_figure",
    "plot_curves",
    "sample_matrix",
    "sample_matrix_figure",
    "samples_figures",
    "write_report",
    "add_arguments",
    "run",
    "main",
]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1150px;color:#222;
 line-height:1.4;padding:0 12px}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
code{background:#f4f4f4;padding:1px 4px;border-radius:3px;font-size:.9em;word-break:break-all}
table{border-collapse:collapse;margin:.6em 0 .2em 0;font-size:.92em}
caption{text-align:left;font-weight:600;padding:4px 0}
th,td{border:1px solid #ccc;padding:4px 9px;text-align:right;white-space:nowrap}
thead th{background:#f0f3f7;text-align:center}tbody th{text-align:left;background:#fafafa}
p.note{color:#666;font-size:.85em;margin:0 0 1em 0}
p.warning{background:#fff4e5;border:1px solid #f0b000;padding:6px 10px;border-radius:3px}
.meta{color:#555;font-size:.9em}
img.figure{max-width:100%;image-rendering:auto}
"""

#: Points drawn per 2-D panel, and the seeds of the generator noise and of the real data: the
#: trainer's own choice for ``samples/`` (so the matrix shows the points of ``latest.png``).
SCATTER_N, SCATTER_Z_SEED, SCATTER_DATA_SEED = 1000, 7, 8


class ReportWarning(UserWarning):
    """Something the report needs is missing (run folders, samples); the page says what."""


def load_results(folder: str | Path) -> dict:
    """``folder/results.json`` of a grid or sweep; a one-line error says what to run if it is missing."""
    path = Path(folder) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run robustgan grid or robustgan sweep with --out {folder} first")
    results = read_json(path)
    if results.get("kind") not in ("grid", "sweep"):
        raise ValueError(f"{path} is not the results of robustgan grid or sweep (kind={results.get('kind')!r})")
    for r in results.get("runs", []):  # the folder may have moved since the runs were recorded
        here = Path(folder) / "runs" / str(r.get("run_id"))
        if here.is_dir():
            r["run_dir"] = str(here)
        stored = Path(folder) / "records" / "eval" / str(r.get("run_id"))
        if stored.is_dir():  # the committed part of a run (robustgan.experiments.records)
            r["record_dir"] = str(stored)
    return results


def _samples_png(record: dict) -> Path | None:
    """The run's last sample grid: from its run folder, else from its stored record."""
    path = Path(str(record.get("run_dir", ""))) / "samples" / "latest.png"
    if path.is_file():
        return path
    if record.get("record_dir"):
        path = Path(record["record_dir"]) / "samples.png"
        if path.is_file():
            return path
    return None


def _missing_runs(folder: Path, results: dict) -> list[str]:
    """One line per thing the curves and samples need but cannot find (empty when all is there)."""
    runs = results.get("runs", [])
    gone = [r for r in runs if not Path(str(r.get("run_dir", ""))).is_dir()]
    if not gone:
        return []
    if all(r.get("record_dir") for r in gone):
        return [f"{len(gone)} of {len(runs)} run folders are not here, only their stored records "
                f"({folder / 'records'}): the evaluation curves and the sample grids come from those; the "
                f"curves of training quantities (loss, robustness) of those runs are left out."]
    if not (folder / "runs").is_dir():
        return [f"no runs/ folder next to {folder / 'results.json'}, so {len(gone)} of {len(runs)} run folders "
                f"are missing: this report has the tables only (no curves, no samples). Copy the runs/ folder "
                f"written by the grid or sweep next to results.json and run robustgan report again."]
    names = ", ".join(str(r.get("run_id")) for r in gone[:5]) + (", ..." if len(gone) > 5 else "")
    return [f"{len(gone)} of {len(runs)} run folders are missing under {folder / 'runs'} ({names}): "
            f"their curves and samples are left out."]


def _groups(results: dict) -> tuple[str, list[tuple[str, list[tuple[str, list[dict]]]]]]:
    """(panel kind, [(panel title, [(line label, [records over seeds])])]) in display order."""
    runs = [r for r in results.get("runs", []) if r.get("info")]
    panels: dict[str, dict[str, list[dict]]] = {}
    if results["kind"] == "grid":
        for r in runs:
            i = r["info"]
            label = "-".join(p for p in (i.get("reg"), i.get("attack"), i.get("target")) if p)
            panels.setdefault(i["loss"], {}).setdefault(label, []).append(r)
        kind = "loss"
    else:
        for r in runs:
            i = r["info"]
            panels.setdefault(i["setup"], {}).setdefault(i["method"], []).append(r)
        kind = "setup"
    return kind, [(title, list(lines.items())) for title, lines in panels.items()]


def collect_curves(records: list[dict], quantity: str, kind: str = "eval") -> tuple[list[int], list[float]]:
    """Mean over ``records`` (seeds) of ``quantity`` in the ``kind`` rows of their ``metrics.jsonl``.

    Only steps every run reports enter the mean (a run that stopped early shortens the curve).
    Returns ``(steps, values)``; empty lists if no run has the quantity.
    """
    per_run = []
    for r in records:
        series = {}
        rows = read_metrics(r["run_dir"])
        if not rows and kind == "eval":  # no run folder: the record keeps its evaluation rows
            rows = [dict(e, kind="eval") for e in r.get("evals") or []]
        for row in rows:
            v = row.get(quantity)
            if row.get("kind") == kind and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                series[int(row["step"])] = float(v)
        if series:
            per_run.append(series)
    if not per_run:
        return [], []
    steps = sorted(set.intersection(*(set(s) for s in per_run)))
    return steps, [sum(s[k] for s in per_run) / len(per_run) for k in steps]


# ------------------------------------------------------------------------------------------ curves
def curves_figure(results: dict, quantity: str, kind: str, ylabel: str | None = None, max_panels: int = 60):
    """One panel per loss (grid) or setup (sweep), one line per regulariser, as a bare Figure.

    Returns ``None`` when no run has at least two points of ``quantity`` in its ``kind`` rows.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    panel_kind, panels = _groups(results)
    data = []
    for title, lines in panels[:max_panels]:
        curves = [(label, *collect_curves(recs, quantity, kind)) for label, recs in lines]
        data.append((title, [c for c in curves if len(c[1]) >= 1]))
    if not any(len(c[1]) >= 2 for _, curves in data for c in curves):
        return None
    n = len(data)
    cols = min(n, 3 if panel_kind == "loss" else 4)
    rows = math.ceil(n / cols)
    size = 3.6 if panel_kind == "loss" else 2.6
    fig = Figure(figsize=(size * cols + 0.4, size * 0.8 * rows + 0.6), dpi=90)
    axes = fig.subplots(rows, cols, squeeze=False)
    labels = sorted({c[0] for _, curves in data for c in curves}, key=lambda s: (s.split("-")[0] != "none", s))
    cmap = colormaps["tab10"]
    colors = {lab: cmap(k % 10) for k, lab in enumerate(labels)}
    for ax, (title, curves) in zip(axes.flat, data):
        for label, steps, values in curves:
            ax.plot(steps, values, marker="o" if len(steps) < 8 else None, ms=3, lw=1.4, label=label,
                    color=colors[label])
        ax.set_title(f"{panel_kind} {title}" if panel_kind == "loss" else title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel or quantity, fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("step", fontsize=8)
    handles = [Line2D([], [], color=colors[lab], lw=2) for lab in labels]
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (size * 0.8 * rows + 0.6)))
    return fig


def plot_curves(results: dict, quantity: str, kind: str, path: Path, ylabel: str | None = None,
                max_panels: int = 60) -> Path | None:
    """:func:`curves_figure` saved as PNG at ``path``; ``None`` (nothing written) when it has no curve."""
    fig = curves_figure(results, quantity, kind, ylabel=ylabel, max_panels=max_panels)
    if fig is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


# ------------------------------------------------------------------------------------------ samples
@dataclass
class SampleCell:
    """What one cell of the sample matrix shows.

    ``caption``: the line under the panel (main metric, seed, status). ``image``: an (H, W) or
    (H, W, 3/4) uint8 array (an image grid, or a saved scatter plot), or ``None``. ``points``:
    (N, 2) generated 2-D samples, drawn on the shared axes above ``real`` ((M, 2) data points).
    A cell with neither image nor points reads "no samples".
    ``failed``: draw the caption in red (diverged or failed run).
    """

    caption: str = ""
    image: np.ndarray | None = None
    points: np.ndarray | None = None
    real: np.ndarray | None = None
    failed: bool = False


def _caption(record: dict | None) -> str:
    if record is None:
        return "not run"
    seed = record.get("info", {}).get("seed")
    parts = []
    if record.get("status") != "complete":
        parts.append(f"{record.get('status')} at step {record.get('step')}")
    elif record.get("final") is not None:
        parts.append(f"{record.get('metric')} {format_value(record['final'])}")
    if seed is not None:
        parts.append(f"seed {seed}")
    return ", ".join(parts)


def _toy_data(record: dict):
    """The run's 2-D data set (a :class:`~robustgan.data.toy.ToyDistribution`), or ``None`` for images."""
    from ..data.toy import get_toy

    name = (record.get("config") or {}).get("data", {}).get("name")
    try:
        return get_toy(name) if name else None
    except ValueError:
        return None


def _run_points(run_dir: Path, n: int = SCATTER_N) -> np.ndarray | None:
    """(n, 2) samples of the run's last checkpoint (EMA weights) with the trainer's scatter noise."""
    import torch

    from ..train.sample import load_generator

    try:
        G, _, _ = load_generator(run_dir)
    except FileNotFoundError:
        return None
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(SCATTER_Z_SEED))
    with torch.no_grad():
        x = G(z).float().numpy()
    return x if x.ndim == 2 and x.shape[1] == 2 else None


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:  # grey image grids stay (H, W); colour grids and saved plots become RGB
        return np.asarray(im.convert("L") if im.mode in ("1", "L", "LA") else im.convert("RGB"))


def sample_matrix(results: dict) -> tuple[str, list[str], list[str], dict[tuple[str, str], SampleCell]]:
    """The samples of a grid or sweep as a matrix: ``(row_kind, rows, columns, cells)``.

    Grid: rows are losses, columns regularisers (with attack and target when not the defaults'
    only choice, e.g. ``rfm-fgm-discriminator``). Sweep: rows are setups (with their factors),
    columns methods. ``cells[(row, column)]`` shows the first seed that has samples; a cell of a
    run without samples (or whose folder is missing) has no image and says why in its caption.
    """
    row_kind, panels = _groups(results)
    columns: list[str] = []
    for _, lines in panels:
        columns += [label for label, _ in lines if label not in columns]
    rows, cells = [], {}
    factors = {}
    for r in results.get("runs", []):
        if r.get("info", {}).get("setup") is not None:
            factors[r["info"]["setup"]] = r["info"].get("factors") or {}
    for title, lines in panels:
        row = title
        if row_kind == "setup" and factors.get(title):
            row = f"{title}\n" + ", ".join(str(v) for v in factors[title].values())
        rows.append(row)
        for label, recs in lines:
            recs = sorted(recs, key=lambda r: r.get("info", {}).get("seed", 0))
            with_samples = [r for r in recs if _samples_png(r) is not None]
            shown = with_samples[0] if with_samples else (recs[0] if recs else None)
            cell = SampleCell(caption=_caption(shown), failed=bool(shown and shown.get("status") != "complete"))
            data = _toy_data(shown) if shown else None
            if data is not None and Path(shown["run_dir"]).is_dir():
                cell.points = _run_points(Path(shown["run_dir"]))
                if cell.points is not None:
                    import torch

                    cell.real = data.sample(SCATTER_N, generator=torch.Generator().manual_seed(SCATTER_DATA_SEED)).numpy()
            if cell.points is None and with_samples:
                cell.image = _read_png(_samples_png(shown))
            cells[(row, label)] = cell
    return row_kind, rows, columns, cells


def _scatter_limits(cells) -> tuple[float, float]:
    """One square window for every 2-D panel: the real data's extent, padded by 25%."""
    pts = [c.real for c in cells if c.real is not None] or [c.points for c in cells if c.points is not None]
    pts = np.concatenate([p[np.isfinite(p).all(axis=1)] for p in pts])
    half = float(np.abs(pts).max()) if pts.size else 1.0
    half = 1.25 * half if half > 0 else 1.0
    return -half, half


def _wrap(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` characters (existing line breaks kept)."""
    return "\n".join(textwrap.fill(part, width, break_long_words=False) or part for part in text.split("\n"))


def sample_matrix_figure(rows: list[str], columns: list[str], cells: dict[tuple[str, str], SampleCell], *,
                         row_kind: str = "loss", column_kind: str = "regulariser", title: str = "",
                         cell_inches: float = 2.4):
    """Samples laid out as a labelled matrix on a bare :class:`matplotlib.figure.Figure`.

    Column labels are the titles of the top row, row labels the y-labels of the first column and
    each cell's caption its x-label. When any cell has 2-D ``points`` all panels share one square
    window (:func:`_scatter_limits`), the data (grey) drawn beneath the samples (blue); points
    outside the window are counted in the caption.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    scatter = any(c.points is not None for c in cells.values())
    nr, nc = len(rows), len(columns)
    width = max(12, int(cell_inches * 13))  # characters of an 8-point caption that fit under one cell
    label_inches = 0.08 * max(len(line) for row in rows for line in _wrap(row, 24).split("\n")) + 0.3
    fig = Figure(figsize=(cell_inches * nc + label_inches, cell_inches * nr + 0.9), layout="constrained")
    axes = fig.subplots(nr, nc, squeeze=False, sharex=scatter, sharey=scatter)
    lo, hi = _scatter_limits(list(cells.values())) if scatter else (0.0, 1.0)
    for i, row in enumerate(rows):
        for j, col in enumerate(columns):
            ax = axes[i, j]
            cell = cells.get((row, col))
            caption = cell.caption if cell else "not run"
            if cell is not None and cell.points is not None:
                pts = cell.points[np.isfinite(cell.points).all(axis=1)]
                if cell.real is not None:
                    ax.scatter(cell.real[:, 0], cell.real[:, 1], s=9, c="0.6", alpha=0.35, lw=0, zorder=1)
                ax.scatter(pts[:, 0], pts[:, 1], s=2, c="tab:blue", alpha=0.6, lw=0, zorder=2)
                outside = int((np.abs(pts) > hi).any(axis=1).sum()) + len(cell.points) - len(pts)
                if outside:
                    caption += f", {outside}/{len(cell.points)} outside the window"
                ax.set_aspect("equal")
                ax.tick_params(labelsize=7)
            elif cell is not None and cell.image is not None:
                # matplotlib's default interpolation smooths when the panel is smaller than the image
                # (nearest would drop whole rows of pixels) and keeps pixels sharp when it is larger
                ax.imshow(cell.image, cmap="gray" if cell.image.ndim == 2 else None, vmin=0, vmax=255)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.text(0.5, 0.5, "no samples", ha="center", va="center", color="0.5", transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
            if scatter:
                ax.set_xlim(lo, hi)
                ax.set_ylim(lo, hi)
            ax.set_xlabel(_wrap(caption, width), fontsize=8,
                          color="#b00020" if cell is not None and cell.failed else "0.15")
            if i == 0:
                ax.set_title(_wrap(col, width), fontsize=10, fontweight="bold")
            if j == 0:  # horizontal, left of the row: long sweep setups stay readable
                ax.set_ylabel(_wrap(row, 24), fontsize=9, fontweight="bold", rotation=0, ha="right", va="center")
    if scatter:
        handles = [Line2D([], [], ls="", marker="o", ms=4, color="0.6", label="data (beneath)"),
                   Line2D([], [], ls="", marker="o", ms=4, color="tab:blue", label="generated samples")]
        fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(_wrap(title or f"rows: {row_kind}, columns: {column_kind}", int(width * nc * 0.9) + 12),
                 fontsize=10)
    return fig


def samples_figures(results: dict, *, max_rows: int = 12, cell_inches: float = 2.4) -> list:
    """The sample matrix of a grid or sweep as Figures of at most ``max_rows`` rows each.

    Returns ``[]`` when there is no run, or no run with samples (missing run folders).
    """
    return _matrix_figures(*sample_matrix(results), max_rows=max_rows, cell_inches=cell_inches)


def _matrix_figures(row_kind, rows, columns, cells, *, max_rows, cell_inches) -> list:
    if not any(c.image is not None or c.points is not None for c in cells.values()):
        return []
    column_kind = "regulariser" if row_kind == "loss" else "method"
    chunks = [rows[k:k + max_rows] for k in range(0, len(rows), max_rows)]
    figs = []
    for k, chunk in enumerate(chunks):
        part = f" (part {k + 1} of {len(chunks)})" if len(chunks) > 1 else ""
        sub = {key: c for key, c in cells.items() if key[0] in chunk}
        figs.append(sample_matrix_figure(chunk, columns, sub, row_kind=row_kind, column_kind=column_kind,
                                         title=f"latest samples: rows {row_kind}, columns {column_kind}{part}",
                                         cell_inches=cell_inches))
    return figs


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _tables(results: dict):
    if results["kind"] == "grid":
        from .grid import build_tables
    else:
        from .sweep import build_tables
    return build_tables(results)


# ------------------------------------------------------------------------------------------ the report
def write_report(folder: str | Path, image_size: int | None = None) -> tuple[Path, Path]:
    """Write ``folder/report.html`` and ``folder/report.md`` (and the figures in ``folder/report_files/``).

    ``image_size``: pixels of one cell of the sample matrix (default 240 for a grid, 160 for a
    sweep). Missing run folders give a :class:`ReportWarning` and a warning at the top of both
    pages. Returns ``(html_path, md_path)``.
    """
    folder = Path(folder)
    results = load_results(folder)
    files = folder / "report_files"
    kind = results["kind"]
    image_size = image_size or (240 if kind == "grid" else 160)
    if image_size < 16:
        raise ValueError(f"--image-size must be at least 16 pixels, got {image_size}")
    metric = results["metric"]
    better = "lower" if results["direction"] == "min" else "higher"
    runs = results.get("runs", [])
    statuses = [r.get("status") for r in runs]
    if kind == "grid":
        title = f"Grid: {results.get('preset')} — losses × regularisers"
    else:
        title = f"Stability sweep: pool {results.get('pool')} ({results.get('preset')})"
    summary = (f"{len(runs)} runs: {statuses.count('complete')} complete, {statuses.count('diverged')} diverged, "
               f"{statuses.count('failed')} failed. Main metric: {metric} ({better} is better).")
    generated = time.strftime("%Y-%m-%d %H:%M")
    problems = _missing_runs(folder, results)
    if not runs:
        problems.append(f"{folder / 'results.json'} lists no runs yet: nothing to plot.")
    for text in problems:
        warnings.warn(text, ReportWarning, stacklevel=2)

    curve_specs = [(metric, "eval", f"{metric} at the evaluations during training ({better} is better)", metric),
                   ("robustness", "train", "D's sensitivity to the FGM attack, E|D(G(z)) - D(G(z)+v)| "
                                           "(lower: a more robust D)", "E|D(x) - D(x+v)|"),
                   ("loss_d", "train", "discriminator loss", "loss_d")]
    curves = []
    for quantity, kind_, label, ylabel in curve_specs:
        png = plot_curves(results, quantity, kind_, files / f"curves-{quantity}.png", ylabel=ylabel)
        if png is not None:
            curves.append((label, png))
    curve_note = None
    if runs and not problems and not (curves and curves[0][1].name == f"curves-{metric}.png"):
        curve_note = (f"No {metric} curve: the runs were evaluated at most once (at the end), so only the final "
                      f"{metric} is known (in the tables). Set log.eval_every to evaluate during training.")
    tables = _tables(results)
    matrix = sample_matrix(results)
    sample_pngs = []
    figs = _matrix_figures(*matrix, max_rows=12, cell_inches=image_size / 100)
    for k, fig in enumerate(figs):
        path = files / (f"samples-{k + 1}.png" if len(figs) > 1 else "samples.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        sample_pngs.append(path)
    samples_note = "The latest samples of each cell's first seed (EMA generator where enabled)."
    if any(c.points is not None for c in matrix[3].values()):
        samples_note += (f" 2-D panels share one window and show {SCATTER_N} points regenerated from the run's last "
                         "checkpoint; grey: the data, drawn beneath; blue: the generated points.")

    # ---------------------------------------------------------------- HTML
    esc = html.escape
    h = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         f"<title>{esc(title)}</title>", f"<style>{_CSS}</style></head><body>",
         f"<h1>{esc(title)}</h1>", f'<p class="meta">{esc(summary)}<br>generated {generated}'
         + (f"<br><code>{esc(results['command'])}</code>" if results.get("command") else "") + "</p>"]
    h += [f'<p class="warning"><b>Warning:</b> {esc(text)}</p>' for text in problems]
    h.append("<h2>Results</h2>")
    h += [t.to_html() for t in tables]
    if curves or curve_note:
        h.append("<h2>Curves over training</h2>")
        if curve_note:
            h.append(f'<p class="note">{esc(curve_note)}</p>')
        for label, png in curves:
            h.append(f'<h3>{esc(label)}</h3><img class="figure" alt="{esc(label)}" src="{_png_data_uri(png)}">')
    if sample_pngs:
        h.append("<h2>Samples</h2>")
        h.append(f'<p class="note">{esc(samples_note)}</p>')
        for png in sample_pngs:
            h.append(f'<img class="figure" alt="sample matrix" src="{_png_data_uri(png)}">')
    h.append("</body></html>")
    html_path = folder / "report.html"
    html_path.write_text("\n".join(h), encoding="utf-8")

    # ---------------------------------------------------------------- Markdown
    m = [f"# {title}", "", summary, "", f"generated {generated}", ""]
    if results.get("command"):
        m += [f"`{results['command']}`", ""]
    m += [f"> **Warning:** {text}\n" for text in problems]
    m += ["## Results", ""] + [t.to_markdown() for t in tables]
    if curves or curve_note:
        m += ["## Curves over training", ""]
        if curve_note:
            m += [curve_note, ""]
        for label, png in curves:
            m += [f"### {label}", "", f"![{label}]({png.relative_to(folder).as_posix()})", ""]
    if sample_pngs:
        m += ["## Samples", "", samples_note, ""]
        m += [f"![sample matrix]({png.relative_to(folder).as_posix()})\n" for png in sample_pngs]
    md_path = folder / "report.md"
    md_path.write_text("\n".join(m), encoding="utf-8")
    return html_path, md_path


# ------------------------------------------------------------------------------------------ command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``robustgan report``."""
    parser.add_argument("folder", metavar="DIR", help="a folder written by robustgan grid or robustgan sweep")
    parser.add_argument("--image-size", type=int, default=None,
                        help="pixels of one cell of the sample matrix (default 240 grid, 160 sweep)")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``robustgan report``: warnings go to stderr, one line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ReportWarning)
        html_path, md_path = write_report(args.folder, image_size=args.image_size)
    for w in caught:
        if issubclass(w.category, ReportWarning):
            print(f"robustgan report: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    kb = html_path.stat().st_size / 1024
    print(f"wrote {html_path} ({kb:.0f} KiB, self-contained) and {md_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m robustgan.experiments.report DIR`` (the same as ``robustgan report DIR``)."""
    from .driver import standalone_main

    return standalone_main("report", add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
