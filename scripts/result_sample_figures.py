"""Rebuild the labelled sample matrices of docs/img/results/ from the committed reports.

The run folders of the studies in docs/results/ are not committed, but each study's report.html
embeds the latest samples of every cell's first seed. This script takes them out, puts them back
into a temporary grid folder next to the study's results.json, and draws the matrix that
``robustgan report`` draws (rows losses, columns regularisers; rows setups, columns methods for
a sweep), labelled with each cell's main metric.

    PYTHONPATH=src python scripts/result_sample_figures.py docs/results/fmnist-dcgan docs/img/results/fmnist-dcgan-samples.png

The 2-D studies' samples are embedded as finished scatter plots, so their panels are images of
those plots (each with its own axes), not the shared-axes scatter a report of the runs draws.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import re
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

from robustgan.experiments import report

SECTION = re.compile(r"<h3>(?:loss )?([^<]+)</h3><div class=\"gallery\">(.*?)</div>", re.S)
FIGURE = re.compile(r'<figure><img src="data:image/png;base64,([A-Za-z0-9+/=]+)"[^>]*alt="([^"]*)"')
ALT = re.compile(r"^(\S+) \(seed (\d+)\)")


def embedded_samples(page: str) -> dict[tuple[str, str, int], bytes]:
    """``{(section, label, seed): png bytes}`` of the sample gallery of a report.html."""
    out = {}
    for section, body in SECTION.findall(page):
        for data, alt in FIGURE.findall(body):
            m = ALT.match(html.unescape(alt))
            if m:
                out[(html.unescape(section), m.group(1), int(m.group(2)))] = base64.b64decode(data)
    return out


def _key(record: dict) -> tuple[str, str, int]:
    i = record["info"]
    if "setup" in i:
        return i["setup"], i["method"], i.get("seed", 0)
    return i["loss"], "-".join(p for p in (i.get("reg"), i.get("attack"), i.get("target")) if p), i.get("seed", 0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", help="a docs/results/NAME folder with results.json and report.html")
    parser.add_argument("out", help="the PNG to write")
    parser.add_argument("--cell-size", type=int, default=260, help="pixels of one cell (default 260)")
    args = parser.parse_args(argv)
    study = Path(args.study)
    images = embedded_samples((study / "report.html").read_text(encoding="utf-8"))
    if not images:
        raise SystemExit(f"{study / 'report.html'} embeds no samples")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copy(study / "results.json", folder / "results.json")
        found = 0
        for record in report.load_results(folder)["runs"]:
            png = images.get(_key(record))
            if png is not None:
                path = folder / "runs" / record["run_id"] / "samples" / "latest.png"
                path.parent.mkdir(parents=True)
                path.write_bytes(png)
                found += 1
        figs = report.samples_figures(report.load_results(folder), max_rows=60, cell_inches=args.cell_size / 100)
        buf = io.BytesIO()
        figs[0].savefig(buf, dpi=100)
    # a 64-colour palette keeps the committed PNG small; the figures are grey or few-coloured
    Image.open(buf).convert("RGB").quantize(colors=64).save(args.out, optimize=True)
    print(f"wrote {args.out} ({found} cells from {study / 'report.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
