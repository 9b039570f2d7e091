"""Run folders: the lock (real processes, SIGKILL), resume's config check, config.yaml, stops, errors."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

import robustgan
from robustgan.train import rundir
from robustgan.train.rundir import (RunBusyError, RunDirError, RunLock, StopNow, StopSignals, config_changes,
                                    new_run_dir, prepare_run_dir, read_config, write_config)

SRC = str(Path(robustgan.__file__).resolve().parents[1])

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file locks and signals")


def _holder(run_dir: Path, env: dict | None = None, pass_fds=()) -> subprocess.Popen:
    """A process that takes the run folder's lock, says so, and sleeps until killed."""
    code = textwrap.dedent(f"""
        import sys, time
        from robustgan.train.rundir import RunLock
        lock = RunLock({str(run_dir)!r}).acquire()
        print("locked", flush=True)
        time.sleep(120)
    """)
    env = dict(env or os.environ)
    env["PYTHONPATH"] = SRC
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, text=True, pass_fds=pass_fds)
    line = proc.stdout.readline()
    assert line.strip() == "locked", proc.stderr.read()
    return proc


def _try_lock(run_dir: Path) -> subprocess.CompletedProcess:
    """Another process that tries to take the lock once: exit 0 if it got it, 1 and the message if not."""
    code = textwrap.dedent(f"""
        import sys
        from robustgan.train.rundir import RunLock, RunBusyError
        try:
            RunLock({str(run_dir)!r}).acquire()
        except RunBusyError as exc:
            print(exc); sys.exit(1)
    """)
    env = {k: v for k, v in os.environ.items() if k != rundir.LOCK_ENV}
    env["PYTHONPATH"] = SRC
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


def test_lock_refuses_a_second_process_and_survives_sigkill(tmp_path):
    run = tmp_path / "run"
    holder = _holder(run)
    try:
        with pytest.raises(RunBusyError) as info:
            RunLock(run).acquire()
        msg = str(info.value)
        assert f"process {holder.pid}" in msg and "\n" not in msg
        assert _try_lock(run).returncode == 1  # and from a separate process too
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert (run / ".lock").exists()  # the stale file stays ...
    with RunLock(run) as lock:       # ... but the kernel dropped the lock with the process
        assert lock.held and lock.holder_pid() == os.getpid()
        assert _try_lock(run).returncode == 1
    assert _try_lock(run).returncode == 0  # released on exit of the with-block


def test_lock_is_reentrant_within_a_process(tmp_path):
    outer = RunLock(tmp_path).acquire()
    inner = RunLock(tmp_path).acquire()  # e.g. the command line, then the Trainer
    inner.release()
    assert _try_lock(tmp_path).returncode == 1  # the outer hold remains
    outer.release()
    outer.release()  # idempotent
    assert _try_lock(tmp_path).returncode == 0


def test_an_exclusive_lock_refuses_a_hold_of_the_same_process(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunBusyError, match=f"in use by this process \\(process {os.getpid()}"):
            RunLock(tmp_path, exclusive=True).acquire()
    with RunLock(tmp_path, exclusive=True):  # free again: taken; a Trainer inside may join it
        with RunLock(tmp_path) as inner:
            assert inner.held


def test_a_child_shares_the_lock_its_parent_hands_down(tmp_path):
    run = tmp_path / "run"
    lock = RunLock(run).acquire()
    env, fds = lock.child_env()
    child = _holder(run, env=env, pass_fds=fds)  # would fail against the parent's lock without it
    try:
        assert _try_lock(run).returncode == 1
    finally:
        child.kill()
        child.wait(timeout=30)
    assert _try_lock(run).returncode == 1  # the parent still holds it
    lock.release()
    assert _try_lock(run).returncode == 0


def test_the_lock_outlives_a_killed_parent_while_its_child_trains(tmp_path):
    # A grid process holds the folder and starts the trainer on it; the grid is SIGKILLed.
    run = tmp_path / "run"
    code = textwrap.dedent(f"""
        import subprocess, sys, time
        from robustgan.train.rundir import RunLock
        lock = RunLock({str(run)!r}).acquire()
        env, fds = lock.child_env()
        child = subprocess.Popen([sys.executable, "-c",
            "import time; from robustgan.train.rundir import RunLock; "
            "lock = RunLock({str(run)!r}).acquire(); print('locked', flush=True); time.sleep(120)"],
            env=env, pass_fds=fds, stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "locked"
        print(child.pid, flush=True)
        time.sleep(120)
    """)
    env = dict(os.environ, PYTHONPATH=SRC)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    child_pid = int(parent.stdout.readline())
    try:
        parent.kill()
        parent.wait(timeout=30)
        out = _try_lock(run)
        assert out.returncode == 1 and f"process {parent.pid}" in out.stdout  # the pid inside is the grid's
    finally:
        os.kill(child_pid, signal.SIGKILL)
    t0 = time.monotonic()
    while _try_lock(run).returncode != 0:  # the child is reaped by init; its lock goes with it
        assert time.monotonic() - t0 < 30
        time.sleep(0.1)


def test_a_forged_lock_variable_does_not_bypass_the_lock(tmp_path, monkeypatch):
    holder = _holder(tmp_path)
    try:
        other = os.open(os.devnull, os.O_RDONLY)  # a descriptor of some other file
        monkeypatch.setenv(rundir.LOCK_ENV, f"{other}:{tmp_path / '.lock'}")
        with pytest.raises(RunBusyError):
            RunLock(tmp_path).acquire()
        os.close(other)
    finally:
        holder.kill()
        holder.wait(timeout=30)


# ----------------------------------------------------------------------------------- config changes
def _cfg(**kw):
    cfg = {"out": "runs/a", "preset": "p", "loss": "gan", "model": {"width": 32, "arch": "dcgan"},
           "reg": {"name": "rfm", "lam": 1.0, "anneal": 1.0},
           "optim": {"lr_d": 2e-4, "lr_decay": "none"},
           "train": {"steps": 100, "device": "auto", "threads": 0, "amp": "none"},
           "data": {"name": "fashion-mnist", "root": None, "workers": 0},
           "log": {"every": 50, "progress": True, "eval_n": 2000}}
    for dotted, value in kw.items():
        section, _, key = dotted.partition("__")
        if key:
            cfg[section][key] = value
        else:
            cfg[section] = value
    return cfg


def test_config_changes_name_each_run_changing_key():
    saved = _cfg()
    assert config_changes(saved, _cfg()) == []
    new = _cfg(model__width=64, loss="wgan", reg__name="gp")
    assert config_changes(saved, new) == ["loss: gan -> wgan", "model.width: 32 -> 64", "reg.name: rfm -> gp"]
    assert config_changes(saved, _cfg(reg__lam=1)) == []  # 1 == 1.0
    assert config_changes(saved, _cfg(reg__lam=None)) == ["reg.lam: 1.0 -> null"]
    newer = _cfg()
    newer["model"]["new_setting"] = 3  # a key a later version added: not a difference
    assert config_changes(saved, newer) == []


def test_resumable_keys_may_change():
    saved = _cfg()
    new = _cfg(out="elsewhere", preset="q", train__steps=400, train__device="cuda", train__threads=2,
               data__workers=4, data__root="/data", log__every=10, log__progress=False, log__eval_n=500)
    assert config_changes(saved, new) == []
    assert config_changes(saved, _cfg(train__amp="bf16")) == ["train.amp: none -> bf16"]


def test_steps_may_not_change_when_the_schedule_depends_on_them():
    linear = _cfg(optim__lr_decay="linear")
    [change] = config_changes(linear, _cfg(optim__lr_decay="linear", train__steps=200))
    assert change.startswith("train.steps: 100 -> 200") and "lr_decay=linear" in change
    noise = _cfg(reg__name="noise")
    [change] = config_changes(noise, _cfg(reg__name="noise", train__steps=200))
    assert "anneal" in change
    constant_noise = _cfg(reg__name="noise", reg__anneal=0.0)
    assert config_changes(constant_noise, _cfg(reg__name="noise", reg__anneal=0.0, train__steps=200)) == []


def test_refuse_changes_is_one_line(tmp_path):
    with pytest.raises(RunDirError) as info:
        rundir.refuse_changes(tmp_path, _cfg(), _cfg(model__width=64))
    assert "model.width: 32 -> 64" in str(info.value) and "\n" not in str(info.value)
    rundir.refuse_changes(tmp_path, _cfg(), _cfg(train__steps=5))  # allowed: no error


# ---------------------------------------------------------------------------------------- config.yaml
def test_write_and_read_config(tmp_path):
    cfg = _cfg()
    write_config(tmp_path, cfg)
    assert read_config(tmp_path) == cfg
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == cfg


def test_write_config_is_atomic(tmp_path, monkeypatch):
    write_config(tmp_path, _cfg())
    before = (tmp_path / "config.yaml").read_bytes()

    def broken(*a, **k):
        raise KeyboardInterrupt  # a kill in the middle of writing

    monkeypatch.setattr(rundir.yaml, "safe_dump", broken)
    with pytest.raises(KeyboardInterrupt):
        write_config(tmp_path, _cfg(loss="wgan"))
    assert (tmp_path / "config.yaml").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # no temporary left


@pytest.mark.parametrize("text, what", [("", "is empty"), ("  \n", "is empty"), ("a: [1,\n", "not valid YAML"),
                                        ("- 1\n- 2\n", "not a mapping"), ("!!python/object:os.system {}\n",
                                                                          "not valid YAML")])
def test_read_config_refuses_bad_files(tmp_path, text, what):
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(RunDirError, match=what) as info:
        read_config(tmp_path)
    assert "\n" not in str(info.value)


def test_read_config_of_a_folder_without_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        read_config(tmp_path)


# ------------------------------------------------------------------------------------------ folders
def test_prepare_run_dir_refuses_a_file_and_a_path_under_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunDirError, match=r"is a file, not a folder; choose another --out"):
        prepare_run_dir(tmp_path / "f")
    with pytest.raises(RunDirError, match=r"lies under .*f, which is a file"):
        prepare_run_dir(tmp_path / "f" / "a" / "b")
    assert prepare_run_dir(tmp_path / "new" / "run").is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a 0o500 folder; see the test below")
def test_prepare_run_dir_refuses_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        for target in (ro, ro / "run"):
            with pytest.raises(RunDirError, match="choose a folder you can write") as info:
                prepare_run_dir(target)
            assert "\n" not in str(info.value)
    finally:
        ro.chmod(0o700)


def test_prepare_run_dir_reports_a_failed_write(tmp_path, monkeypatch):
    # As root a chmod does not stop writes, so the failing write is simulated (a read-only mount
    # raises the same error); prepare_run_dir tries a real write rather than trusting os.access.
    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(rundir.tempfile, "mkstemp", refuse)
    with pytest.raises(RunDirError, match=r"cannot write in --out .* \(Permission denied\)"):
        prepare_run_dir(tmp_path)


def test_new_run_dirs_are_numbered(tmp_path):
    assert new_run_dir(tmp_path / "runs", "fmnist-dcgan-gan-rfm").name == "00000-fmnist-dcgan-gan-rfm"
    (tmp_path / "runs" / "00007-old").mkdir()
    (tmp_path / "runs" / "unnumbered").mkdir()
    (tmp_path / "runs" / "00009-file").write_text("")  # a file takes its number too
    path = new_run_dir(tmp_path / "runs", "my preset/x")
    assert path.name == "00010-my_preset_x" and path.is_dir()


# ------------------------------------------------------------------------------------------- signals
def _deliver(stop_condition, timeout=5.0):
    t0 = time.monotonic()
    while not stop_condition() and time.monotonic() - t0 < timeout:
        time.sleep(0.001)  # the handler runs between bytecodes of the main thread


def test_first_signal_sets_the_flag_second_stops_at_once(capsys):
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as stop:
        assert stop.active and stop.requested is None
        os.kill(os.getpid(), signal.SIGTERM)
        _deliver(lambda: stop.requested is not None)
        assert stop.requested == signal.SIGTERM and stop.name == "SIGTERM"
        with pytest.raises(StopNow) as info:
            os.kill(os.getpid(), signal.SIGTERM)
            _deliver(lambda: False, timeout=2)
        assert info.value.exit_code == 143 and isinstance(info.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) == before
    assert "SIGTERM received" in capsys.readouterr().err


def test_sigint_and_previous_handlers_are_restored():
    seen = []
    previous = signal.signal(signal.SIGINT, lambda s, f: seen.append(s))
    try:
        with StopSignals() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            _deliver(lambda: stop.requested is not None)
            assert stop.requested == signal.SIGINT and seen == []
            with pytest.raises(StopNow) as info:
                os.kill(os.getpid(), signal.SIGINT)
                _deliver(lambda: False, timeout=2)
            assert info.value.exit_code == 130
        os.kill(os.getpid(), signal.SIGINT)  # our handler is gone: the previous one runs
        _deliver(lambda: seen)
        assert seen == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_stop_signals_outside_the_main_thread_do_nothing():
    before = signal.getsignal(signal.SIGTERM)
    out = {}

    def body():
        with StopSignals() as stop:
            out["active"] = stop.active
            out["handler"] = signal.getsignal(signal.SIGTERM)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert out == {"active": False, "handler": before}
