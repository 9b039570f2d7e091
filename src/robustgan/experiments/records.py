"""Committable run records: what of a finished run is kept so that a study survives a new machine.

A run directory holds checkpoints, TensorBoard files and sample grids of every step: too much to
commit, and gone on a fresh clone. A *stored record* is the small part that is kept in the
experiment's ``records/`` folder and committed:

* ``records/<run_id>/result.json``: the run record (:mod:`robustgan.experiments.results`):
  status, resolved config, final metrics, the best value during training, every evaluation row
  (``evals``), the wall time and the machine the run trained on;
* ``records/<run_id>/samples.png``: the run's last sample grid, for the runs asked to keep one
  (the first evaluation seed of each cell, so the folder stays small).

An executor given a job with a ``record_dir`` treats a stored ``complete`` (or ``diverged``) record
as the finished run when the run directory has none, so running a study's command again on a fresh
clone trains only what is not recorded; a stored record whose config differs from the job's is an
error naming the keys. Failed runs are not stored: they are run again anyway.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from .results import RESULT_FILE, read_json, write_json_atomic

__all__ = ["KEPT_STATUSES", "SAMPLES_FILE", "store_record", "read_stored", "stored_records"]

#: statuses whose records are stored (a failed run is run again, so it is not)
KEPT_STATUSES = ("complete", "diverged")
SAMPLES_FILE = "samples.png"


def store_record(record_dir: str | Path, record: dict, run_dir: str | Path | None = None) -> Path:
    """Write ``record`` to ``record_dir/result.json`` (atomically); if ``run_dir`` is given and has
    ``samples/latest.png``, copy it to ``record_dir/samples.png``. Returns the record's path."""
    record_dir = Path(record_dir)
    if record.get("status") not in KEPT_STATUSES:
        raise ValueError(f"only {' and '.join(KEPT_STATUSES)} runs are stored, not {record.get('status')!r}")
    path = write_json_atomic(record_dir / RESULT_FILE, record)
    if run_dir is not None:
        latest = Path(run_dir) / "samples" / "latest.png"
        if latest.is_file():
            tmp = record_dir / f".{SAMPLES_FILE}.tmp"
            shutil.copyfile(latest, tmp)
            tmp.replace(record_dir / SAMPLES_FILE)
    return path


def read_stored(record_dir: str | Path) -> dict | None:
    """The stored record in ``record_dir``, or ``None`` if there is none."""
    path = Path(record_dir) / RESULT_FILE
    if not path.is_file():
        return None
    return read_json(path)


def stored_records(folder: str | Path) -> list[dict]:
    """Every stored record under ``folder`` (``folder/<run_id>/result.json``), sorted by run id."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob(f"*/{RESULT_FILE}")):
        out.append(read_json(path))
    return out
