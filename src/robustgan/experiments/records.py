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

A study part may *share* another part's records (:func:`adopt_shared`): a run whose config is
identical to a run already recorded there (Table 4's and Appendix F's ``none`` cells are Table 1's
gan ``none`` runs) is not trained again; its record is copied, with ``shared_from`` naming the
original, so both tables report the same runs and cost sums count them once.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from .results import RESULT_FILE, read_json, write_json_atomic

__all__ = ["KEPT_STATUSES", "SAMPLES_FILE", "store_record", "read_stored", "stored_records", "adopt_shared"]

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
        _copy_samples(Path(run_dir) / "samples" / "latest.png", record_dir)
    return path


def _copy_samples(png: Path, record_dir: Path) -> None:
    """Copy the sample grid ``png`` (if it exists) to ``record_dir/samples.png``, atomically."""
    if png.is_file():
        tmp = record_dir / f".{SAMPLES_FILE}.tmp"
        shutil.copyfile(png, tmp)
        tmp.replace(record_dir / SAMPLES_FILE)


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


def adopt_shared(record_dir: str | Path, config: dict, sources, differences) -> Path | None:
    """Copy into ``record_dir`` the first stored ``complete`` record among ``sources`` (record
    folders of other experiments) whose config equals ``config``; return where it came from.

    ``differences(saved, config)`` lists the keys in which two configs differ (machine-only keys
    ignored). Nothing is copied if ``record_dir`` already holds a record, or if no source has a
    complete record with an identical config (a diverged one is not shared: a rerun may be asked
    for). The copy carries ``shared_from`` (the source folder) and, if the source has one, its
    sample grid; a record that was itself shared keeps naming the original.
    """
    record_dir = Path(record_dir)
    if read_stored(record_dir) is not None:
        return None
    for source in sources:
        source = Path(source)
        record = read_stored(source)
        if record is None or record.get("status") != "complete":
            continue
        if differences(record.get("config") or {}, config):
            continue
        record_dir.mkdir(parents=True, exist_ok=True)
        _copy_samples(source / SAMPLES_FILE, record_dir)
        write_json_atomic(record_dir / RESULT_FILE, dict(record, shared_from=record.get("shared_from") or str(source)))
        return source
    return None
