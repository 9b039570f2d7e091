"""``robustgan report DIR``: an HTML and a Markdown report of a grid or a sweep.

Reads ``DIR/results.json`` (written by ``robustgan grid`` or ``robustgan sweep``) and every run's
``metrics.jsonl`` and ``samples/latest.png``, and writes

* ``DIR/report.html``: self-contained (images embedded as base64 ``data:`` URIs, styles inline,
  no scripts, nothing fetched): open it anywhere, mail it, attach it to an issue;
* ``DIR/report.md``: the same tables, with the figures written to ``DIR/report_files/`` and the
  samples linked from the run folders (relative paths, so the folder can be moved as a whole).

Sections: the result tables (as in ``table.md``); curves over training steps (the main metric
from the evaluation rows when runs were evaluated more than once, ``log.eval_every``; always the
discriminator's robustness and loss from the training rows), one panel per loss (grid) or per
setup (sweep), one line per regulariser averaged over seeds; the latest samples of every cell
(image grids, or scatter plots against the data for 2-D mixtures).
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import math
import sys
import time
from pathlib import Path

from .results import format_value, read_json, read_metrics

__all__ = ["load_results", "collect_curves", "plot_curves", "write_report", "add_arguments", "run", "main"]

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
.meta{color:#555;font-size:.9em}
.gallery{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;border:1px solid #e2e2e2;padding:6px;background:#fff;text-align:center}
figure img{display:block;margin:auto;image-rendering:pixelated}
figcaption{font-size:.8em;color:#444;margin-top:4px;max-width:260px}
img.curves{max-width:100%;image-rendering:auto}
.status-diverged,.status-failed{color:#b00020}
"""


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
    return results


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
        for row in read_metrics(r["run_dir"]):
            v = row.get(quantity)
            if row.get("kind") == kind and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                series[int(row["step"])] = float(v)
        if series:
            per_run.append(series)
    if not per_run:
        return [], []
    steps = sorted(set.intersection(*(set(s) for s in per_run)))
    return steps, [sum(s[k] for s in per_run) / len(per_run) for k in steps]


def plot_curves(results: dict, quantity: str, kind: str, path: Path, ylabel: str | None = None,
                max_panels: int = 60) -> Path | None:
    """One panel per loss (grid) or setup (sweep), one line per regulariser; saved as PNG at ``path``.

    Returns ``None`` (and writes nothing) when no run has at least two points of ``quantity``.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 0.4, size * 0.8 * rows + 0.6), dpi=90, squeeze=False)
    labels = sorted({c[0] for _, curves in data for c in curves}, key=lambda s: (s.split("-")[0] != "none", s))
    colors = {lab: plt.get_cmap("tab10")(k % 10) for k, lab in enumerate(labels)}
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
    handles = [plt.Line2D([], [], color=colors[lab], lw=2) for lab in labels]
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (size * 0.8 * rows + 0.6)))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _png_data_uri(path: Path, max_size: int | None = None) -> tuple[str, tuple[int, int]]:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if max_size and max(im.size) > max_size:
            scale = max_size / max(im.size)
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=True)
        size = im.size
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), size


def _sample_entries(results: dict) -> list[tuple[str, list[tuple[str, dict | None, Path | None]]]]:
    """[(section title, [(caption, record, latest.png or None)])]: one image per cell / run."""
    _, panels = _groups(results)
    out = []
    for title, lines in panels:
        items = []
        for label, recs in lines:
            recs = sorted(recs, key=lambda r: r.get("info", {}).get("seed", 0))
            shown = next((r for r in recs if (Path(r["run_dir"]) / "samples" / "latest.png").is_file()), None)
            img = Path(shown["run_dir"]) / "samples" / "latest.png" if shown else None
            items.append((label, shown or (recs[0] if recs else None), img))
        out.append((title, items))
    return out


def _caption(label: str, record: dict | None) -> str:
    if record is None:
        return label
    seed = record.get("info", {}).get("seed")
    parts = [label + (f" (seed {seed})" if seed is not None else "")]
    if record.get("status") != "complete":
        parts.append(f"{record.get('status')} at step {record.get('step')}")
    elif record.get("final") is not None:
        parts.append(f"{record.get('metric')} {format_value(record['final'])}")
    return ", ".join(parts)


def _tables(results: dict):
    if results["kind"] == "grid":
        from .grid import build_tables
    else:
        from .sweep import build_tables
    return build_tables(results)


def write_report(folder: str | Path, image_size: int | None = None) -> tuple[Path, Path]:
    """Write ``folder/report.html`` and ``folder/report.md`` (and ``folder/report_files/``).

    ``image_size``: samples larger than this many pixels on their long side are downscaled in the
    HTML (default 320 for a grid, 200 for a sweep). Returns ``(html_path, md_path)``.
    """
    folder = Path(folder)
    results = load_results(folder)
    files = folder / "report_files"
    kind = results["kind"]
    image_size = image_size or (320 if kind == "grid" else 200)
    metric = results["metric"]
    runs = results.get("runs", [])
    statuses = [r.get("status") for r in runs]
    if kind == "grid":
        title = f"Grid: {results.get('preset')} — losses × regularisers"
    else:
        title = f"Stability sweep: pool {results.get('pool')} ({results.get('preset')})"
    summary = (f"{len(runs)} runs: {statuses.count('complete')} complete, {statuses.count('diverged')} diverged, "
               f"{statuses.count('failed')} failed. Main metric: {metric} "
               f"({'lower' if results['direction'] == 'min' else 'higher'} is better).")
    generated = time.strftime("%Y-%m-%d %H:%M")

    curve_specs = [(metric, "eval", f"{metric} at the evaluations ({'lower' if results['direction'] == 'min' else 'higher'}"
                                    f" is better)", metric),
                   ("robustness", "train", "D's sensitivity to the FGM attack, E|D(G(z)) - D(G(z)+v)| "
                                           "(lower: a more robust D)", "E|D(x) - D(x+v)|"),
                   ("loss_d", "train", "discriminator loss", "loss_d")]
    curves = []
    for quantity, kind_, label, ylabel in curve_specs:
        png = plot_curves(results, quantity, kind_, files / f"curves-{quantity}.png", ylabel=ylabel)
        if png is not None:
            curves.append((label, png))
    tables = _tables(results)
    samples = _sample_entries(results)

    # ---------------------------------------------------------------- HTML
    esc = html.escape
    h = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         f"<title>{esc(title)}</title>", f"<style>{_CSS}</style></head><body>",
         f"<h1>{esc(title)}</h1>", f'<p class="meta">{esc(summary)}<br>generated {generated}'
         + (f"<br><code>{esc(results['command'])}</code>" if results.get("command") else "") + "</p>",
         "<h2>Results</h2>"]
    h += [t.to_html() for t in tables]
    if curves:
        h.append("<h2>Curves over training</h2>")
        for label, png in curves:
            uri, _ = _png_data_uri(png)
            h.append(f'<h3>{esc(label)}</h3><img class="curves" alt="{esc(label)}" src="{uri}">')
    h.append("<h2>Samples</h2>")
    h.append('<p class="note">The latest samples of each run (EMA generator where enabled); '
             'for 2-D data, generated points against the data and the mode centres.</p>')
    for section, items in samples:
        h.append(f"<h3>{'loss ' if kind == 'grid' else ''}{esc(section)}</h3><div class=\"gallery\">")
        for label, record, img in items:
            cap = esc(_caption(label, record))
            cls = f' class="status-{esc(record.get("status", ""))}"' if record else ""
            if img is not None:
                uri, (w, hh) = _png_data_uri(img, image_size)
                h.append(f'<figure><img src="{uri}" width="{w}" height="{hh}" alt="{cap}">'
                         f"<figcaption{cls}>{cap}</figcaption></figure>")
            else:
                h.append(f"<figure><figcaption{cls}>{cap}<br>(no samples)</figcaption></figure>")
        h.append("</div>")
    h.append("</body></html>")
    html_path = folder / "report.html"
    html_path.write_text("\n".join(h), encoding="utf-8")

    # ---------------------------------------------------------------- Markdown
    m = [f"# {title}", "", summary, "", f"generated {generated}", ""]
    if results.get("command"):
        m += [f"`{results['command']}`", ""]
    m += ["## Results", ""] + [t.to_markdown() for t in tables]
    if curves:
        m += ["## Curves over training", ""]
        for label, png in curves:
            m += [f"### {label}", "", f"![{label}]({png.relative_to(folder).as_posix()})", ""]
    m += ["## Samples", ""]
    for section, items in samples:
        m += [f"### {'loss ' if kind == 'grid' else ''}{section}", ""]
        for label, record, img in items:
            cap = _caption(label, record)
            m.append(f"![{cap}]({_relative(img, folder)})" if img is not None else f"{cap}: no samples")
            m.append("")
    md_path = folder / "report.md"
    md_path.write_text("\n".join(m), encoding="utf-8")
    return html_path, md_path


def _relative(path: Path, folder: Path) -> str:
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_uri()


# ------------------------------------------------------------------------------------------ command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``robustgan report``."""
    parser.add_argument("folder", metavar="DIR", help="a folder written by robustgan grid or robustgan sweep")
    parser.add_argument("--image-size", type=int, default=None,
                        help="downscale sample images in the HTML to this many pixels (default 320 grid, 200 sweep)")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``robustgan report``."""
    html_path, md_path = write_report(args.folder, image_size=args.image_size)
    kb = html_path.stat().st_size / 1024
    print(f"wrote {html_path} ({kb:.0f} KiB, self-contained) and {md_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m robustgan.experiments.report DIR`` (the same as ``robustgan report DIR``)."""
    from .grid import standalone_main

    return standalone_main("report", add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
