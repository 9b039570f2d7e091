"""Run folders: one process per folder, a saved config that resume must match, safe stops.

A run folder (``RUN/``) holds ``config.yaml``, ``metrics.jsonl``, ``log.txt``, ``tb/``,
``samples/`` and ``checkpoints/``. The pieces here keep it consistent:

* :class:`RunLock` -- an exclusive OS lock on ``RUN/.lock`` (``fcntl.flock``), so two processes
  never train into the same folder. The kernel drops it when the holder dies, so a SIGKILL never
  leaves a folder locked. A grid holds the same lock while its child trains the folder and hands
  the lock down to the child (:meth:`RunLock.child_env`).
* :func:`config_changes` -- which settings differ between the saved config and a new one, except
  the few that may change on resume (:data:`RESUMABLE_KEYS`).
* :func:`write_config` / :func:`read_config` -- ``config.yaml`` written atomically, and read back
  with a one-line error when it is empty, unreadable or not a mapping.
* :class:`StopSignals` -- SIGINT / SIGTERM set a flag the trainer checks after each step (it then
  writes a checkpoint and exits); a second signal stops at once.
* :func:`prepare_run_dir` and :func:`new_run_dir` -- one-line errors for a folder that cannot be
  used, and numbered folders ``runs/00000-NAME`` for new runs.
"""
from __future__ import annotations

import errno
import os
import re
import signal
import sys
import tempfile
import threading
from pathlib import Path

import yaml

from ..fileio import atomic_open
from ..options import flatten

LOCK_NAME = ".lock"
CONFIG_NAME = "config.yaml"

#: Environment variable through which a parent that holds a run folder's lock hands it to the
#: child it starts on that folder: ``"FD:PATH"`` (an inherited file descriptor of ``PATH/.lock``).
LOCK_ENV = "ROBUSTGAN_RUN_LOCK"


class RunDirError(ValueError):
    """A run folder that cannot be used (busy, a file, read-only, a changed config); one line."""


class RunBusyError(RunDirError):
    """Another process holds the run folder's lock."""


# ------------------------------------------------------------------------------------------- the lock
# flock locks belong to an open file description, so a second open() + flock() in the same process
# would fail against the process's own lock. Locks held by this process are therefore shared by
# reference count: the command line and the Trainer may both take the lock of one folder.
_HELD: dict[tuple[int, int], list] = {}  # (st_dev, st_ino) of the lock file -> [fd, count, inherited, pid]
_HELD_GUARD = threading.Lock()


def _lock_key(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class RunLock:
    """Exclusive lock on ``RUN/.lock``, held by one process at a time.

    ``with RunLock(run): ...`` or ``lock = RunLock(run).acquire(); ...; lock.release()``. The lock
    file holds the holder's pid; a second process gets :class:`RunBusyError` naming it. The lock
    is an ``fcntl.flock`` on the file, which the kernel releases when the process dies (SIGKILL
    included), so a stale ``.lock`` file never blocks anyone. Within one process the lock is
    re-entrant (a reference count). A child started with :meth:`child_env` shares its parent's
    lock instead of failing against it (and holds it on if the parent dies); ``exclusive=True``
    refuses even a hold of this same process (an executor that must not run two jobs in one
    folder), while the default joins it (a Trainer inside such a job); an explicit
    :meth:`release` in the parent unlocks for both, so a parent releases after its child ended.
    Keep a reference to an acquired lock: a dropped ``RunLock`` object releases its hold. On
    systems without ``fcntl`` the lock does nothing.
    """

    def __init__(self, run_dir: str | os.PathLike, *, exclusive: bool = False):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.exclusive = exclusive
        self._key: tuple[int, int] | None = None

    @property
    def held(self) -> bool:
        return self._key is not None

    def holder_pid(self) -> int | None:
        """The pid written in the lock file (the last process that took it), or None."""
        return _read_pid(self.path)

    def acquire(self) -> "RunLock":
        """Take the lock or raise :class:`RunBusyError`; returns ``self``."""
        if self._key is not None:
            return self
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            self._key = (-1, -1)
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        inherited = self._inherited_fd()
        fd = inherited if inherited is not None else os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        key = _lock_key(fd)
        with _HELD_GUARD:
            if key in _HELD:  # held by this process already
                if inherited is None:
                    os.close(fd)
                if self.exclusive:
                    raise RunBusyError(f"{self.run_dir} is in use by this process (process {os.getpid()}, lock "
                                       f"{self.path}); two jobs cannot share a run folder")
                _HELD[key][1] += 1
                self._key = key
                return self
            try:
                # On an inherited descriptor this succeeds: the parent's lock is the same lock.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if inherited is None:
                    os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                pid = self.holder_pid()
                who = f"process {pid}" if pid else "another process"
                raise RunBusyError(f"{self.run_dir} is in use by {who} (lock {self.path}); wait for it to "
                                   f"finish, stop it, or choose another folder") from None
            if inherited is None:  # a child sharing its parent's lock leaves the parent's pid there
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            _HELD[key] = [fd, 1, inherited is not None, os.getpid()]
            self._key = key
        return self

    def _inherited_fd(self) -> int | None:
        """The descriptor of this folder's lock handed down by a parent (see :meth:`child_env`)."""
        fd_text, _, path = os.environ.get(LOCK_ENV, "").partition(":")
        if not fd_text.isdigit() or not path:
            return None
        try:
            st = os.stat(self.path)
            if _lock_key(int(fd_text)) == (st.st_dev, st.st_ino):
                return int(fd_text)
        except OSError:  # no such descriptor, or no lock file yet: not ours
            return None
        return None

    def release(self) -> None:
        """Give the lock up (the last holder in this process unlocks the file); idempotent."""
        key, self._key = self._key, None
        if key is None or key == (-1, -1):
            return
        with _HELD_GUARD:
            entry = _HELD.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del _HELD[key]
            fd, _, inherited, owner = entry
            if not inherited and owner == os.getpid():
                # Unlock explicitly: forked children (data workers) share the descriptor and would
                # otherwise keep the folder locked. A forked child itself never unlocks its parent.
                import fcntl
                fcntl.flock(fd, fcntl.LOCK_UN)
            # An inherited descriptor is the parent's lock: closing our copy leaves it held by the parent.
            os.close(fd)

    def child_env(self, env: dict | None = None) -> tuple[dict, tuple[int, ...]]:
        """Environment and ``pass_fds`` for a child process that should train in this folder.

        Returns ``(env, pass_fds)`` for ``subprocess.Popen(..., env=env, pass_fds=pass_fds)``:
        the child's :class:`RunLock` on the same folder then shares this lock instead of failing
        against it, and keeps it held if this process dies first.
        """
        env = dict(os.environ if env is None else env)
        if self._key is None or self._key == (-1, -1):
            return env, ()
        fd = _HELD[self._key][0]
        env[LOCK_ENV] = f"{fd}:{self.path.resolve()}"
        return env, (fd,)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):  # a Trainer dropped without close() must not keep the folder locked
        try:
            self.release()
        except Exception:  # noqa: BLE001 -- interpreter shutdown
            pass


# ------------------------------------------------------------------------------------ config on resume
#: Keys that may change when a run is continued: they do not change what is trained. ``train.steps``
#: is here with an exception (see :func:`config_changes`): it also sets the learning-rate decay of
#: ``optim.lr_decay=linear`` and the instance-noise schedule of ``reg=noise``, and then it may not
#: change. A key ending in ``.*`` covers its whole section.
RESUMABLE_KEYS: tuple[str, ...] = (
    "out",                  # where the run is, not what it is
    "preset",               # informational: the resolved values are compared
    "train.steps",          # extend or shorten a run (not with a schedule derived from it, see above)
    "train.device",         # continue on another machine
    "train.threads",
    "train.channels_last",  # memory layout only
    "train.on_nan",         # e.g. resume a diverged run with on_nan=rollback
    "train.max_rollbacks",
    "data.root",            # where the files are on this machine (name, split and size still compared)
    "data.download",
    "data.workers",
    "log.*",                # reports, samples, checkpoints, evaluation settings, progress bar
)


def _resumable(key: str, allowed) -> bool:
    for a in allowed:
        if key == a or (a.endswith(".*") and key.startswith(a[:-1])):
            return True
    return False


def _steps_fix_schedule(cfg: dict) -> str | None:
    """Why ``train.steps`` may not change for this config, or None."""
    optim, reg = cfg.get("optim") or {}, cfg.get("reg") or {}
    if optim.get("lr_decay") == "linear":
        return "optim.lr_decay=linear decays the learning rate to 0 at train.steps"
    if reg.get("name") == "noise" and reg.get("anneal"):
        return "reg=noise anneals its noise over reg.anneal * train.steps"
    return None


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return float(a) == float(b)
    return a == b


def config_changes(saved_cfg: dict, new_cfg: dict, allowed=RESUMABLE_KEYS) -> list[str]:
    """The run-changing differences between a saved config and a new one, one string per key.

    Each entry reads ``"model.width: 32 -> 64"`` (sorted by key); an empty list means the new config
    may continue the saved run. Keys in ``allowed`` (default :data:`RESUMABLE_KEYS`) are skipped,
    except ``train.steps`` when the saved run's schedule depends on it (linear lr decay, annealed
    instance noise), where the entry says why. Numbers compare by value (``1`` equals ``1.0``);
    keys present in only one of the two configs are skipped.
    """
    fa, fb = flatten(saved_cfg), flatten(new_cfg)
    changes = []
    # A key on one side only (a checkpoint of an older or newer robustgan) is no difference: a
    # new key's default keeps the old behaviour. Resolve both configs to compare such keys too.
    for key in sorted(set(fa) & set(fb)):
        va, vb = fa[key], fb[key]
        if _same(va, vb):
            continue
        if key == "train.steps" and _resumable(key, allowed):
            why = _steps_fix_schedule(saved_cfg) or _steps_fix_schedule(new_cfg)
            if why:
                changes.append(f"train.steps: {va} -> {vb} ({why})")
            continue
        if not _resumable(key, allowed):
            changes.append(f"{key}: {_show(va)} -> {_show(vb)}")
    return changes


def _show(v) -> str:
    return "null" if v is None else str(v) if isinstance(v, (int, float, str)) else repr(v)


def refuse_changes(run_dir: str | os.PathLike, saved_cfg: dict, new_cfg: dict) -> None:
    """Raise :class:`RunDirError` (one line naming each key) if ``new_cfg`` would change the saved run."""
    changes = config_changes(saved_cfg, new_cfg)
    if changes:
        raise RunDirError(f"{run_dir} holds a run with another config ({'; '.join(changes)}); continue it "
                          f"with its own config (robustgan train --resume {run_dir}), or start a new run "
                          f"in another folder (--out)")


# ---------------------------------------------------------------------------------------- config.yaml
def write_config(run_dir: str | os.PathLike, cfg: dict) -> Path:
    """Write ``cfg`` to ``RUN/config.yaml`` atomically (a kill leaves the old file or the new one)."""
    path = Path(run_dir) / CONFIG_NAME
    with atomic_open(path, "w") as fh:
        fh.write(yaml.safe_dump(cfg, sort_keys=False))
    return path


def read_config(run_dir: str | os.PathLike) -> dict:
    """The saved config of a run (``RUN/config.yaml``), parsed with ``yaml.safe_load``.

    Raises FileNotFoundError if there is none, :class:`RunDirError` (one line) if it is empty,
    unreadable or not a mapping -- never a silent fall-back to the defaults.
    """
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no {CONFIG_NAME}); start a run there with "
                                f"robustgan train --out {run_dir}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path} cannot be read ({type(exc).__name__}: {exc})") from None
    if not text.strip():
        raise RunDirError(f"{path} is empty; restore it (a copy is in every checkpoint's 'config') or start "
                          f"the run again in another folder")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RunDirError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); restore it or start the "
                          f"run again in another folder") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path} does not hold a config (a {type(data).__name__}, not a mapping of keys)")
    return data


# ----------------------------------------------------------------------------------------- the folder
def prepare_run_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Create the run folder ``path`` (and its parents) and check it can be written.

    Raises :class:`RunDirError` with one line saying what to do when ``path`` is a file, lies
    under a file, or cannot be created or written (permissions, a read-only file system).
    ``flag`` names the option the folder came from in the message.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{flag} {path} is a file, not a folder; choose another {flag}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunDirError(f"{flag} {path} lies under {parent}, which is a file; choose another {flag}")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create {flag} {path} ({exc.strerror or exc}); choose a folder you can "
                          f"write") from None
    # A real write, not os.access: it also catches read-only mounts, and root passes access().
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise RunDirError(f"cannot write in {flag} {path} ({exc.strerror or exc}); choose a folder you can "
                          f"write, or fix its permissions") from None
    return path


_NUMBERED = re.compile(r"^(\d{5,})-")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "run"


def next_run_dir(root: str | os.PathLike, name: str) -> Path:
    """``ROOT/NNNNN-NAME`` with the next free number (one more than the largest in ``root``)."""
    root = Path(root)
    numbers = [int(m.group(1)) for p in (root.iterdir() if root.is_dir() else []) if (m := _NUMBERED.match(p.name))]
    return root / f"{max(numbers, default=-1) + 1:05d}-{_slug(name)}"


def new_run_dir(root: str | os.PathLike, name: str) -> Path:
    """Create and return a new numbered run folder ``ROOT/NNNNN-NAME`` (stylegan2-ada's style).

    Two processes starting at once get different numbers: the folder is made with ``mkdir``,
    which fails for the second, which then takes the next number.
    """
    root = prepare_run_dir(root)
    for _ in range(1000):
        path = next_run_dir(root, name)
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunDirError(f"could not create a new numbered run folder in {root}")


# -------------------------------------------------------------------------------------- stop signals
class StopNow(KeyboardInterrupt):
    """A second stop signal: stop at once. ``exit_code`` is 128 + the signal number (130, 143)."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by a second {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = 128 + signum


class StopSignals:
    """SIGINT / SIGTERM request a stop; the caller checks :attr:`requested` between steps.

    The first signal sets :attr:`requested` (the signal number) and prints one line to stderr;
    the loop then finishes its step, writes a checkpoint and returns. A second signal raises
    :class:`StopNow` (a KeyboardInterrupt, exit code 130 for SIGINT and 143 for SIGTERM) at once.
    On exit the previous handlers are restored. Signal handlers can only be set from the main
    thread; elsewhere this is a no-op and :attr:`requested` stays None.
    """

    def __init__(self, signals=(signal.SIGINT, signal.SIGTERM), message: str | None = None):
        self.signals = tuple(signals)
        self.requested: int | None = None
        self.active = False
        self.message = message or "stopping after this step and writing a checkpoint; send the signal again to stop at once"
        self._previous: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:
        if self.requested is not None:
            raise StopNow(signum)
        self.requested = signum
        try:
            print(f"robustgan: {signal.Signals(signum).name} received: {self.message}", file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001 -- stderr closed: the flag is what matters
            pass

    @property
    def name(self) -> str | None:
        """The requested signal's name (``"SIGTERM"``), or None."""
        return None if self.requested is None else signal.Signals(self.requested).name

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handler)
        self.active = True
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
        self.active = False
