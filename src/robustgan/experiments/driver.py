"""What the grid and the sweep drivers share: overrides, the main metric, the results file and the command line.

A driver (:func:`robustgan.experiments.grid.run_grid`, :func:`robustgan.experiments.sweep.run_sweep`)
builds its jobs, then runs them through a :class:`ResultsFile`: each run's record replaces any
earlier record of the same run, ``results.json`` is rewritten atomically after every record (so an
interrupted experiment leaves a readable file), and at the end the records are in job order and
``table.md`` is written beside it.

A rerun in a folder that already has a ``results.json`` (to add seeds, to resume, to skip what is
recorded) keeps that file whole while it goes: until the rerun has visited a run, the file still
lists the run's earlier record, so stopping a rerun half-way never leaves a file that knows less
than before it started. When the rerun ends (:meth:`ResultsFile.close`), the file holds exactly
the runs of this rerun.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Callable

from .results import default_metric, metric_direction, read_json, write_json_atomic

__all__ = ["override_key", "main_metric", "ResultsFile", "print_jobs", "csv_list", "command_line",
           "standalone_main"]


def override_key(text: str) -> str:
    """The full config key the override ``text`` (``key=value``) sets; shorthands such as ``reg``
    become ``reg.name``. Raises ``ConfigError`` for text that is not ``key=value``."""
    from ..train.config import SHORTHANDS, parse_override

    key, _ = parse_override(text)
    return SHORTHANDS.get(key, key)


def main_metric(metric: str | None, cfg: dict) -> tuple[str, str]:
    """``(metric, direction)``: ``metric`` or, when None, the default of a run with config ``cfg``
    (``w1`` for 2-D data, ``fd`` for images); direction "min" or "max" (which value is better)."""
    metric = metric or default_metric(cfg)
    return metric, metric_direction(metric)


class ResultsFile:
    """``results`` (a JSON-able dict) kept in the file ``path``, rewritten after every change.

    ``refresh(results)``, if given, is called before every write (the sweep re-ranks its setups).

    ``carry`` names record lists (e.g. ``("runs",)``) whose earlier records, read from the file
    ``path`` already holds (same ``kind``), are written after this run's records until this run
    records the same run id, :meth:`forget` drops them or :meth:`close` ends the carrying; the
    in-memory ``results`` never hold them. :attr:`earlier` is that file's content (``None`` if there
    was none, or it was unreadable or of another kind).
    """

    def __init__(self, path: str | Path, results: dict, refresh: Callable[[dict], None] | None = None,
                 carry: tuple[str, ...] = ()):
        self.path = Path(path)
        self.results = results
        self.refresh = refresh
        self.earlier = self._read_earlier()
        self._carried = {key: [r for r in (self.earlier or {}).get(key) or [] if isinstance(r, dict)]
                         for key in carry} if self.earlier else {}

    def _read_earlier(self) -> dict | None:
        if not self.path.is_file():
            return None
        try:
            earlier = read_json(self.path)
        except ValueError:
            return None  # unreadable: nothing to keep; it is rewritten whole
        if not isinstance(earlier, dict) or earlier.get("kind") != self.results.get("kind"):
            return None
        return earlier

    def view(self) -> dict:
        """What is written: ``results``, with the earlier records still carried after each list."""
        if not any(self._carried.values()):
            return self.results
        out = dict(self.results)
        for key, earlier in self._carried.items():
            mine = list(out.get(key) or [])
            seen = {r.get("run_id") for r in mine}
            out[key] = mine + [r for r in earlier if r.get("run_id") not in seen]
        return out

    def forget(self, run_ids) -> None:
        """Stop carrying the earlier records of ``run_ids`` (e.g. runs set aside to train again)."""
        drop = set(run_ids)
        for key, earlier in self._carried.items():
            self._carried[key] = [r for r in earlier if r.get("run_id") not in drop]

    def save(self) -> None:
        view = self.view()
        if self.refresh:
            self.refresh(view)
        view["updated"] = self.results["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        write_json_atomic(self.path, view)

    def close(self) -> None:
        """The experiment has visited every run: stop carrying earlier records and save."""
        self._carried = {}
        self.save()

    def run(self, jobs: list, executor=None, key: str = "runs", on_record=None) -> None:
        """Run ``jobs`` on ``executor`` (default: one local subprocess at a time), keeping their
        records in ``results[key]``, saved after each; then put the records in job order and save.
        ``on_record(job, record, reused)`` is called after each save."""
        from .executors import LocalExecutor

        def collect(job, record, reused):
            runs = [r for r in self.results[key] if r.get("run_id") != record.get("run_id")]
            self.results[key] = runs + [record]
            self.save()
            if on_record:
                on_record(job, record, reused)

        (executor or LocalExecutor()).run(jobs, on_record=collect)
        order = {j.run_id: i for i, j in enumerate(jobs)}
        self.results[key].sort(key=lambda r: order.get(r["run_id"], 0))
        self.save()

    def write_table(self, markdown: str) -> Path:
        """Write ``markdown`` to ``table.md`` beside the results file; return its path."""
        path = self.path.parent / "table.md"
        path.write_text(markdown)
        return path


# ------------------------------------------------------------------------------------------ command line
def print_jobs(jobs: list) -> None:
    """``--dry-run``: resolve every job's config (raising for a bad one) and print its folder and overrides."""
    for job in jobs:
        job.config()
        print(f"{job.run_dir}: {' '.join(job.overrides)}")


def csv_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (an argparse ``type``)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def command_line(args: argparse.Namespace, name: str) -> str:
    """The command that started this experiment (recorded in results.json)."""
    argv = getattr(args, "argv", None)
    if argv is None:
        return "robustgan " + shlex.join(sys.argv[1:])
    return f"robustgan {name} " + shlex.join(argv)


def standalone_main(name: str, add: Callable, runner: Callable, argv: list[str] | None) -> int:
    """``python -m robustgan.experiments.NAME``: parse ``argv`` with ``add(parser)`` and call
    ``runner(args)``; user errors print as one line (exit 2), as under ``robustgan NAME``."""
    from ..errors import UserError
    from ..options import ConfigError

    parser = argparse.ArgumentParser(prog=f"robustgan {name}")
    add(parser)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_intermixed_args(argv)
    args.argv = argv
    try:
        return int(runner(args) or 0)
    except (ValueError, FileNotFoundError, ConfigError, UserError) as exc:
        print(f"robustgan {name}: error: {exc}", file=sys.stderr)
        return 2
