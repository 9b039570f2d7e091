"""Executors: run many training jobs, each in its own run directory, resumably.

A :class:`Job` is one training run: a preset, ``key=value`` overrides and a run directory.
An executor takes a list of jobs and returns one run record per job (see
:mod:`robustgan.experiments.results` for the record's keys). The rules, the same for every executor:

* A job whose run directory holds a ``result.json`` with status ``complete`` is not run again;
  nor is a ``diverged`` one (it would diverge again) unless ``retry_diverged=True``. A ``failed``
  one (e.g. killed, out of memory) is run again.
* A job that was interrupted (no ``result.json``, but checkpoints) is started again in the same
  run directory, and the trainer resumes from its latest checkpoint.
* A run that diverges (NaN/Inf) is recorded with status ``diverged``, any other error with
  ``failed``, each with its one-line error; the other jobs go on.
* A run directory whose saved config differs from the job's is an error (one line naming the
  keys), so a changed command line never mixes two experiments in one folder.
* While a job runs, its executor holds an exclusive lock on ``RUN_DIR/.lock``: a second
  executor started on the same folder stops with a one-line error instead of racing the first.
* A job with a ``record_dir`` also keeps a small copy of its record there (``result.json``, and
  ``samples.png`` when ``record_samples``; no checkpoints): the part of a study that is committed.
  A job whose run directory is gone (a fresh clone) but whose stored record is ``complete`` (or
  ``diverged``) with the same config is not run again; a stored record with another config is an
  error, as for a run directory.

Executors:

* :class:`LocalExecutor` ``(workers=K)``: up to K jobs at once, each a subprocess
  ``python -m robustgan train --preset P --out RUN_DIR KEY=VALUE ...`` (its output goes to
  ``RUN_DIR/output.txt``), with ``train.threads`` and ``OMP_NUM_THREADS`` = cores / K (at least 1;
  the cores this process may use), so K runs never ask for more threads than there are cores (runs
  that oversubscribe the cores slow each other down several-fold: docs/benchmarks/training.md,
  "Threads"). A job whose overrides set ``train.threads`` keeps its own. ``inprocess=True`` runs the jobs
  one after another in this process instead (no start-up cost; used by tests).
* :class:`RayExecutor` ``(address="auto" | "HOST:PORT" | None)``: each job is a Ray task with
  ``num_cpus=cpus_per_run`` running :func:`run_job` with ``train.threads=cpus_per_run``. Run directories must be on a file system
  every node sees (the driver writes ``result.json`` from the returned record if it cannot see it).
"""
from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from ..errors import UserError
from ..options import flatten
from .results import (
    best_of,
    default_metric,
    eval_rows,
    final_metrics,
    metric_direction,
    numeric,
    read_metrics,
    read_json,
    read_result,
    write_result,
)
from .records import KEPT_STATUSES, read_stored, store_record

__all__ = [
    "Job",
    "run_job",
    "build_record",
    "save_record",
    "job_command",
    "config_differences",
    "check_run_dir",
    "needs_run",
    "LocalExecutor",
    "RayExecutor",
    "make_executor",
    "add_executor_arguments",
    "executor_from_args",
    "print_progress",
    "RunDirBusy",
]

_CKPT = re.compile(r"^ckpt-(\d+)\.pt$")


class RunDirBusy(UserError):
    """Another process holds the run directory's lock (a second sweep on the same folder)."""


@dataclass
class Job:
    """One training run.

    Attributes:
        run_id: a short unique name (the run directory's name by convention).
        run_dir: where the run writes everything (created if missing).
        preset: preset name or YAML path (``None``: the defaults only).
        overrides: ``"key=value"`` overrides, applied in order after the preset.
        info: free-form facts copied into the run record (cell, loss, reg, seed, setup ...).
        metric: main metric for ``final`` / ``best`` (``None``: :func:`default_metric` of the config).
        record_dir: where a small, committable copy of the finished run's record is kept
            (``None``: nowhere); see :mod:`robustgan.experiments.records`.
        record_samples: also keep the run's last sample grid there (``samples.png``).
    """

    run_id: str
    run_dir: str | Path
    preset: str | None
    overrides: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    metric: str | None = None
    record_dir: str | Path | None = None
    record_samples: bool = False

    def config(self) -> dict:
        """The resolved config (defaults <- preset <- overrides) with ``out`` set to ``run_dir``.

        Raises ``robustgan.train.config.ConfigError`` (a ValueError) for an unknown key or bad value.
        """
        from ..train.config import resolve

        cfg = resolve(self.preset, list(self.overrides))
        cfg["out"] = str(self.run_dir)
        return cfg


# ------------------------------------------------------------------------------------------- helpers
def _latest_step(run_dir: Path) -> int:
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return 0
    steps = [int(m.group(1)) for p in folder.iterdir() if (m := _CKPT.match(p.name))]
    return max(steps, default=0)


#: keys that do not change what a run computes and that an executor may set per machine
MACHINE_KEYS = ("out", "train.threads")


def with_threads(job: Job, threads: int) -> Job:
    """``job`` with ``train.threads=threads`` appended to its overrides, unless they set it already."""
    if any(str(o).split("=", 1)[0].strip() == "train.threads" for o in job.overrides):
        return job
    return dataclasses.replace(job, overrides=list(job.overrides) + [f"train.threads={int(threads)}"])


def config_differences(a: dict, b: dict, ignore: tuple[str, ...] = ("out",)) -> list[str]:
    """Dotted keys whose values differ between configs ``a`` and ``b`` (``"key: a -> b"``), sorted.

    Numbers compare by value (``1`` equals ``1.0``); keys in ``ignore`` are skipped.
    """
    fa, fb = flatten(a), flatten(b)
    diffs = []
    for key in sorted(set(fa) | set(fb)):
        if key in ignore:
            continue
        va, vb = fa.get(key, "<missing>"), fb.get(key, "<missing>")
        if va != vb:
            diffs.append(f"{key}: {va!r} -> {vb!r}")
    return diffs


def saved_config(run_dir: str | Path) -> dict | None:
    """The config a run folder was trained with: ``result.json``'s if the run finished, else
    ``config.yaml``'s; ``None`` if the folder holds neither."""
    run_dir = Path(run_dir)
    record = read_result(run_dir)
    if record is not None:
        return record.get("config")
    if (run_dir / "config.yaml").is_file():
        return yaml.safe_load((run_dir / "config.yaml").read_text())
    return None


def check_run_dir(job: Job, cfg: dict) -> None:
    """Raise ValueError if ``job.run_dir`` already holds a run with a different config.

    The saved config is the one in ``result.json`` if the run finished, else ``config.yaml``.
    """
    run_dir = Path(job.run_dir)
    places = [(run_dir, saved_config(run_dir), "that run directory")]
    stored = read_stored(job.record_dir) if job.record_dir else None
    if stored is not None:
        places.append((Path(job.record_dir), stored.get("config"), "that record"))
    for where, saved, what in places:
        if not saved:
            continue
        diffs = config_differences(saved, cfg, ignore=MACHINE_KEYS)  # the executor sets train.threads per machine
        if diffs:
            shown = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
            raise ValueError(f"{where} holds a run with a different config ({shown}); "
                             f"use another --out folder or delete {what}")


def needs_run(record: dict | None, retry_diverged: bool = False) -> bool:
    """Whether a job with this existing run record (``None``: no record) must be run."""
    if record is None:
        return True
    status = record.get("status")
    if status == "complete":
        return False
    if status == "diverged":
        return retry_diverged
    return True


@contextlib.contextmanager
def _run_lock(run_dir: Path):
    """The run folder's lock (:class:`robustgan.train.rundir.RunLock`, released when the process dies).

    Yields the lock, whose ``child_env()`` hands it to the ``robustgan train`` child on that folder.
    """
    from ..train.rundir import RunBusyError, RunLock

    lock = RunLock(run_dir, exclusive=True)  # a second job in this process is refused too
    try:
        lock.acquire()
    except RunBusyError:
        pid = lock.holder_pid()
        raise RunDirBusy(f"{run_dir} is being run by another process or job{f' (process {pid})' if pid else ''}; "
                         f"wait for it to finish or stop it") from None
    try:
        yield lock
    finally:
        lock.release()


def _eval_note(run_dir: Path) -> str | None:
    log = run_dir / "log.txt"
    if not log.is_file():
        return None
    skipped = [line for line in log.read_text().splitlines() if "evaluation skipped:" in line]
    return skipped[-1].split("evaluation skipped:", 1)[1].strip() if skipped else None


def _one_line(text: str, limit: int = 500) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def build_record(job: Job, cfg: dict, status: str, error: str | None, wall_time: float,
                 resumed_from: int) -> dict:
    """The run record of a finished attempt, read from the run directory's ``metrics.jsonl``.

    ``final`` is the main metric of the evaluation at ``train.steps`` (complete runs only);
    ``best`` the best value over all evaluation rows (``log.eval_every`` and the final one).
    """
    run_dir = Path(job.run_dir)
    rows = read_metrics(run_dir)
    metric = job.metric or default_metric(cfg)
    direction = metric_direction(metric)
    steps_seen = [int(r.get("step", 0)) for r in rows]
    step = max(steps_seen + [_latest_step(run_dir)], default=0)
    metrics = final_metrics(rows, cfg["train"]["steps"]) if status == "complete" else {}
    final = numeric(metrics.get(metric))
    note = None
    if status == "complete" and final is None:
        note = _eval_note(run_dir) or f"no evaluation of {metric} at step {cfg['train']['steps']}"
    return {
        "run_id": job.run_id,
        "run_dir": str(run_dir),
        "info": dict(job.info),
        "status": status,
        "error": error,
        "config": cfg,
        "metric": metric,
        "direction": direction,
        "final": final,
        "best": best_of(eval_rows(rows), metric, direction),
        "metrics": metrics,
        "step": step,
        "resumed_from": resumed_from,
        "wall_time": round(float(wall_time), 3),
        "note": note,
        "evals": [{k: v for k, v in r.items() if k not in ("kind", "time")} for r in eval_rows(rows)],
        "machine": _machine(run_dir),
    }


def _machine(run_dir: Path) -> dict | None:
    """What ``run.json`` says about the machine and the settings ``auto`` chose (``None`` if absent)."""
    path = run_dir / "run.json"
    if not path.is_file():
        return None
    try:
        info = read_json(path)
    except ValueError:
        return None
    machine = dict(info.get("machine") or {})
    for key in ("amp", "channels_last", "threads", "device", "world_size"):
        if key in info:
            machine[key] = info[key]
    return machine


def save_record(job: Job, record: dict) -> None:
    """Write ``record`` to the run directory's ``result.json`` and, if ``job.record_dir`` is set,
    its committable copy (complete and diverged runs only: a failed one is run again anyway)."""
    write_result(job.run_dir, record)
    if job.record_dir and record.get("status") in KEPT_STATUSES:
        store_record(job.record_dir, record, Path(job.run_dir) if job.record_samples else None)


def run_job(job: Job) -> dict:
    """Train ``job`` in this process (resuming from its checkpoint), write and return its record.

    Divergence (``TrainingDiverged``) gives status ``diverged``; any other exception ``failed``;
    both keep the one-line error. Raises only for a bad config or a busy run directory.
    """
    from ..train.loop import Trainer, TrainingDiverged

    cfg = job.config()
    run_dir = Path(job.run_dir)
    with _run_lock(run_dir):
        t0 = time.perf_counter()
        resumed_from = _latest_step(run_dir)
        trainer = None
        status, error = "complete", None
        try:
            trainer = Trainer(cfg, run_dir)
            resumed_from = trainer.step
            trainer.fit()
        except TrainingDiverged as exc:
            status, error = "diverged", _one_line(exc)
        except Exception as exc:  # noqa: BLE001 -- any error of one run is recorded; the sweep goes on
            status, error = "failed", _one_line(f"{type(exc).__name__}: {exc}")
        finally:
            if trainer is not None:
                with contextlib.suppress(Exception):
                    trainer.logger.close()
                with contextlib.suppress(Exception):
                    trainer.dist.close()
        record = build_record(job, cfg, status, error, time.perf_counter() - t0, resumed_from)
        save_record(job, record)
    return record


def job_command(job: Job, python: str | None = None) -> list[str]:
    """The command line a :class:`LocalExecutor` runs for ``job``:
    ``python -m robustgan train [--preset P] --out RUN_DIR KEY=VALUE ...``."""
    cmd = [python or sys.executable, "-m", "robustgan", "train"]
    if job.preset:
        cmd += ["--preset", str(job.preset)]
    return cmd + ["--out", str(job.run_dir)] + [str(o) for o in job.overrides]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 -- best effort; not Linux / no glibc
        pass


def _error_from_output(text: str, returncode: int) -> tuple[str, str]:
    """(status, one-line error) of a finished ``robustgan train`` subprocess."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if returncode == 3:  # robustgan train's exit status for TrainingDiverged
        msg = next((ln for ln in reversed(lines) if ln.startswith("robustgan train:")), lines[-1] if lines else "")
        return "diverged", _one_line(msg.removeprefix("robustgan train:").strip())
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return "failed", f"killed by signal {name}"
    msg = next((ln for ln in reversed(lines) if ln.startswith("robustgan train: error:")), None)
    if msg is None:
        msg = lines[-1] if lines else f"exit status {returncode}"
    else:
        msg = msg.removeprefix("robustgan train: error:").strip()
    return "failed", _one_line(f"exit status {returncode}: {msg}")


OnRecord = Callable[[Job, dict, bool], None]


class _Executor:
    """Shared bookkeeping: resolve every config first, reuse finished runs, report records."""

    def __init__(self, retry_diverged: bool = False):
        self.retry_diverged = retry_diverged

    def _plan(self, jobs: list[Job], on_record: OnRecord | None) -> tuple[list, list[int], list[dict]]:
        seen = {}
        for job in jobs:
            key = str(Path(job.run_dir).resolve())
            if key in seen:
                raise ValueError(f"jobs {seen[key]!r} and {job.run_id!r} share the run directory {job.run_dir}")
            seen[key] = job.run_id
        records: list = [None] * len(jobs)
        todo, cfgs = [], []
        for i, job in enumerate(jobs):
            cfg = job.config()
            check_run_dir(job, cfg)
            cfgs.append(cfg)
            existing = read_result(job.run_dir)
            if job.record_dir:
                stored = read_stored(job.record_dir)
                if existing is None:
                    existing = stored  # a fresh clone: the committed record stands for the run
                elif stored is None and existing.get("status") in KEPT_STATUSES:
                    store_record(job.record_dir, existing, Path(job.run_dir) if job.record_samples else None)
            if needs_run(existing, self.retry_diverged):
                todo.append(i)
            else:
                records[i] = existing
                if on_record:
                    on_record(job, existing, True)
        return records, todo, cfgs


class LocalExecutor(_Executor):
    """Runs jobs on this machine: up to ``workers`` subprocesses at once, or in-process.

    Args:
        workers: jobs at once (subprocess mode), >= 1 (default 1).
        inprocess: run jobs one at a time in this process with ``runner`` (default :func:`run_job`).
        threads_per_run: ``train.threads`` and ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` of each
            subprocess; default max(1, cores // workers), cores being those this process may use.
        retry_diverged: run diverged jobs again (default False: their record is kept).
        runner: the in-process job function ``job -> record`` (tests substitute a fake trainer).
        poll: seconds between checks of the running subprocesses.
    """

    def __init__(self, workers: int = 1, inprocess: bool = False, threads_per_run: int | None = None,
                 retry_diverged: bool = False, runner: Callable[[Job], dict] | None = None, poll: float = 0.2):
        super().__init__(retry_diverged)
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.workers = workers
        self.inprocess = inprocess
        if threads_per_run is None:
            from ..hardware import resolve_threads
            threads_per_run = resolve_threads("auto", runs_in_parallel=workers)[0]
        self.threads_per_run = max(1, int(threads_per_run))
        self.runner = runner or run_job
        self.poll = poll

    def run(self, jobs: list[Job], on_record: OnRecord | None = None) -> list[dict]:
        """Run ``jobs``; returns their records in job order. ``on_record(job, record, reused)``
        is called as each record becomes known (``reused``: the run had finished before)."""
        records, todo, cfgs = self._plan(jobs, on_record)
        if self.inprocess:
            for i in todo:
                records[i] = self.runner(jobs[i])
                if on_record:
                    on_record(jobs[i], records[i], False)
            return records
        self._run_subprocesses(jobs, cfgs, todo, records, on_record)
        return records

    def _launch(self, job: Job) -> dict:
        run_dir = Path(job.run_dir)
        lock = _run_lock(run_dir)
        held = lock.__enter__()
        try:
            resumed_from = _latest_step(run_dir)  # where the trainer will pick up
            out_path = run_dir / "output.txt"
            offset = out_path.stat().st_size if out_path.exists() else 0
            env = dict(os.environ)
            env.update(OMP_NUM_THREADS=str(self.threads_per_run), MKL_NUM_THREADS=str(self.threads_per_run),
                       PYTHONUNBUFFERED="1")
            env, lock_fds = held.child_env(env)  # the child trains under this lock instead of failing on it
            fh = open(out_path, "ab")
            cmd = job_command(with_threads(job, self.threads_per_run))
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, pass_fds=lock_fds,
                                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        except BaseException:
            lock.__exit__(None, None, None)
            raise
        return {"proc": proc, "lock": lock, "fh": fh, "t0": time.perf_counter(), "offset": offset,
                "resumed_from": resumed_from, "out": out_path}

    def _finish(self, job: Job, cfg: dict, slot: dict) -> dict:
        proc = slot["proc"]
        slot["fh"].close()
        wall = time.perf_counter() - slot["t0"]
        try:
            with open(slot["out"], "rb") as fh:
                fh.seek(slot["offset"])
                text = fh.read().decode("utf-8", "replace")
            if proc.returncode == 0:
                status, error = "complete", None
            else:
                status, error = _error_from_output(text, proc.returncode)
            record = build_record(job, cfg, status, error, wall, slot["resumed_from"])
            save_record(job, record)
        finally:
            slot["lock"].__exit__(None, None, None)
        return record

    def _run_subprocesses(self, jobs, cfgs, todo, records, on_record) -> None:
        queue = collections.deque(todo)
        running: dict[int, dict] = {}
        try:
            while queue or running:
                while queue and len(running) < self.workers:
                    i = queue.popleft()
                    running[i] = self._launch(jobs[i])
                time.sleep(self.poll)
                for i in [i for i, s in running.items() if s["proc"].poll() is not None]:
                    slot = running.pop(i)
                    records[i] = self._finish(jobs[i], cfgs[i], slot)
                    if on_record:
                        on_record(jobs[i], records[i], False)
        except BaseException:
            # Interrupted (Ctrl-C, an error): stop the children; their checkpoints resume next time.
            for slot in running.values():
                with contextlib.suppress(Exception):
                    slot["proc"].terminate()
            for slot in running.values():
                with contextlib.suppress(Exception):
                    slot["proc"].wait(timeout=10)
                with contextlib.suppress(Exception):
                    slot["proc"].kill()
                slot["fh"].close()
                slot["lock"].__exit__(None, None, None)
            raise


def _ray_task(job: Job, threads: int) -> dict:
    import torch

    torch.set_num_threads(max(1, int(threads)))
    return run_job(job)


class RayExecutor(_Executor):
    """Runs each job as a Ray task (``num_cpus=cpus_per_run``) executing :func:`run_job`.

    Args:
        address: ``None`` starts a local Ray instance (unless one is initialised already);
            ``"auto"`` joins the cluster this machine belongs to; ``"HOST:PORT"`` a given head.
        cpus_per_run: CPUs Ray reserves per run (also its torch thread count), default 1.
        gpus_per_run: GPUs Ray reserves per run (default 0).
        workers: at most this many runs in flight (default: as many as Ray schedules).
        retry_diverged: run diverged jobs again (default False).
        init_kwargs: extra arguments for ``ray.init`` (e.g. ``num_cpus``).

    Ray is an optional dependency: ``pip install 'robustgan[ray]'``.
    """

    def __init__(self, address: str | None = None, cpus_per_run: float = 1, gpus_per_run: float = 0,
                 workers: int | None = None, retry_diverged: bool = False, init_kwargs: dict | None = None):
        super().__init__(retry_diverged)
        if cpus_per_run <= 0:
            raise ValueError(f"cpus_per_run must be > 0, got {cpus_per_run}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.address, self.cpus_per_run, self.gpus_per_run = address, cpus_per_run, gpus_per_run
        self.workers, self.init_kwargs = workers, dict(init_kwargs or {})

    def run(self, jobs: list[Job], on_record: OnRecord | None = None) -> list[dict]:
        """Run ``jobs`` as Ray tasks; same contract as :meth:`LocalExecutor.run`."""
        try:
            import ray
        except ImportError:
            raise ValueError("the ray backend needs Ray: pip install 'robustgan[ray]' (or use --backend local)") from None
        records, todo, cfgs = self._plan(jobs, on_record)
        if not todo:
            return records
        started = False
        if not ray.is_initialized():
            ray.init(address=self.address, **self.init_kwargs)
            started = True
        try:
            task = ray.remote(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=0)(_ray_task)
            threads = max(1, int(self.cpus_per_run))
            queue = collections.deque(todo)
            in_flight: dict = {}
            t0: dict[int, float] = {}
            limit = self.workers or len(todo)
            while queue or in_flight:
                while queue and len(in_flight) < limit:
                    i = queue.popleft()
                    t0[i] = time.perf_counter()
                    in_flight[task.remote(with_threads(copy.deepcopy(jobs[i]), threads), threads)] = i
                done, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in done:
                    i = in_flight.pop(ref)
                    try:
                        record = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 -- worker crash, lost node: record it, go on
                        if isinstance(getattr(exc, "cause", None), (RunDirBusy, ValueError)):
                            raise exc.cause from None  # another sweep owns the folder / a bad config
                        record = build_record(jobs[i], cfgs[i], "failed", _one_line(f"{type(exc).__name__}: {exc}"),
                                              time.perf_counter() - t0[i], _latest_step(Path(jobs[i].run_dir)))
                    if read_result(jobs[i].run_dir) is None or record.get("status") == "failed":
                        write_result(jobs[i].run_dir, record)  # the worker's file system may not be ours
                    if jobs[i].record_dir and record.get("status") in KEPT_STATUSES:
                        store_record(jobs[i].record_dir, record,
                                     Path(jobs[i].run_dir) if jobs[i].record_samples else None)
                    records[i] = record
                    if on_record:
                        on_record(jobs[i], record, False)
        finally:
            if started:
                ray.shutdown()
        return records


def make_executor(backend: str = "local", *, workers: int | None = None, address: str | None = None,
                  cpus_per_run: float | None = None, inprocess: bool = False, retry_diverged: bool = False):
    """The executor for ``--backend local|ray`` with the command line's settings.

    ``workers``: local, runs at once (default 1); ray, runs in flight (default: no cap).
    ``cpus_per_run``: local, the thread count of each run (default cores // workers); ray, each
    task's ``num_cpus`` (default 1).
    """
    if backend == "local":
        if address:
            raise ValueError("--address is for --backend ray")
        return LocalExecutor(workers=workers or 1, inprocess=inprocess, retry_diverged=retry_diverged,
                             threads_per_run=max(1, int(cpus_per_run)) if cpus_per_run else None)
    if backend == "ray":
        if inprocess:
            raise ValueError("--inprocess is for --backend local")
        return RayExecutor(address=address, cpus_per_run=cpus_per_run or 1, workers=workers,
                           retry_diverged=retry_diverged)
    raise ValueError(f"unknown backend {backend!r}; choose local or ray")


def add_executor_arguments(parser) -> None:
    """The executor flags shared by ``robustgan grid`` and ``robustgan sweep``."""
    g = parser.add_argument_group("execution")
    g.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: subprocesses on this machine (default); ray: one Ray task per run")
    g.add_argument("--workers", type=int, default=None,
                   help="runs at once (local default 1; ray default: as many as the cluster schedules)")
    g.add_argument("--address", default=None,
                   help="ray: 'auto' joins the running cluster, HOST:PORT a given head; default starts a local Ray")
    g.add_argument("--cpus-per-run", type=float, default=None,
                   help="CPU threads per run (train.threads of each run; ray: num_cpus of each task, default 1; "
                        "local default: available cores / workers, at least 1)")
    g.add_argument("--inprocess", action="store_true", help="local: run the jobs one by one in this process")
    g.add_argument("--retry-diverged", action="store_true", help="run again the runs recorded as diverged")
    g.add_argument("--dry-run", action="store_true", help="list the runs (id and overrides) and exit")


def executor_from_args(args):
    """:func:`make_executor` from the flags of :func:`add_executor_arguments`."""
    return make_executor(args.backend, workers=args.workers, address=args.address, cpus_per_run=args.cpus_per_run,
                         inprocess=args.inprocess, retry_diverged=args.retry_diverged)


def print_progress(total: int) -> OnRecord:
    """An ``on_record`` callback printing ``[k/total] run_id: status metric=value (time)``; runs
    not in the plan (tuning past a grid's edge) print as ``[+k]``."""
    state = {"n": 0, "beyond": 0}

    def report(job: Job, record: dict, reused: bool) -> None:
        if (job.info or {}).get("beyond_grid"):
            state["beyond"] += 1
            where = f"+{state['beyond']}"
        else:
            state["n"] += 1
            where = f"{state['n']}/{total}"
        value = record.get("final")
        shown = f" {record.get('metric')}={value:.4g}" if isinstance(value, (int, float)) else ""
        extra = " (done before)" if reused else f" ({record.get('wall_time', 0):.1f} s)"
        err = f": {record['error']}" if record.get("error") else ""
        print(f"[{where}] {job.run_id}: {record.get('status')}{shown}{extra}{err}", flush=True)

    return report

