"""``robustgan train``: train one configuration.

    robustgan train                                   # the default job, in a new folder runs/NNNNN-...
    robustgan train --preset fmnist-dcgan loss=lsgan reg=rfm reg.lam=1
    robustgan train --preset my.yaml --out runs/x train.steps=500
    robustgan train --resume runs/x                  # continue a run where it stopped
    robustgan train --resume runs/x train.steps=8000 # ... and train it for longer
    torchrun --nproc_per_node 2 -m robustgan train --preset cifar10-resnet --out runs/c

Overrides are ``key=value`` with dotted keys (``robustgan train --list-keys`` prints them all).
A new run without ``--out`` gets a new numbered folder ``runs/NNNNN-<preset>-<loss>-<reg>``.
``--out`` on a folder that holds a run continues it, and ``--resume RUN`` continues a run with
its saved config as the base; both refuse a config that would change the run (one line naming
each key; :data:`robustgan.train.rundir.RESUMABLE_KEYS` lists the keys that may change).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from . import rundir
from .config import DEFAULTS, ConfigError, _flat_keys, dump, merge, parse_override, preset_names, resolve

DEFAULT_PRESET = "fmnist-dcgan"
#: where new numbered run folders go when no --out is given
RUNS_ROOT = "runs"


def add_arguments(parser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. loss=lsgan reg=rfm reg.lam=1 train.steps=500")
    parser.add_argument("--preset", default=None,
                        help=f"preset name or YAML file (default {DEFAULT_PRESET}); presets: {', '.join(preset_names())}")
    parser.add_argument("--out", default=None,
                        help=f"run folder; a run already there is continued if the config matches "
                             f"(default: a new folder {RUNS_ROOT}/NNNNN-<preset>-<loss>-<reg>)")
    parser.add_argument("--resume", default=None, metavar="RUN",
                        help="continue the run in RUN with its saved config; overrides may change only the "
                             "keys that do not change the run (train.steps, train.device, log.*, ...)")
    parser.add_argument("--fresh", action="store_true",
                        help="refuse to reuse a run folder that already holds checkpoints")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--list-keys", action="store_true",
                        help="list every config key with its type, default (and the --preset's value) and exit")


# ------------------------------------------------------------------------------------------ configs
def _nested(dotted: str, value) -> dict:
    out = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def apply_overrides(base: dict, overrides: list[str]) -> dict:
    """``base`` (a resolved config) with ``key=value`` overrides applied in order, validated."""
    cfg = base
    for text in overrides:
        key, value = parse_override(text)
        cfg = merge(cfg, _nested(key, value))
    return resolve(None, cfg)


def saved_config(run_dir: str | Path) -> dict | None:
    """The resolved config of the run in ``run_dir``, or None if no run is there.

    Read from ``config.yaml`` (an empty or unreadable one is an error, never the defaults); a
    folder with checkpoints but no ``config.yaml`` gives the config stored in its latest one.
    """
    run_dir = Path(run_dir)
    if (run_dir / rundir.CONFIG_NAME).exists():
        saved = rundir.read_config(run_dir)
    else:
        from .checkpoint import latest_checkpoint, load_checkpoint
        latest = latest_checkpoint(run_dir)
        if latest is None:
            return None
        saved = load_checkpoint(latest).get("config")
        if not isinstance(saved, dict):
            raise rundir.RunDirError(f"{run_dir} holds checkpoints but no {rundir.CONFIG_NAME}, and {latest.name} "
                                     f"stores no config; choose another --out")
    try:
        return resolve(None, saved)
    except ConfigError as exc:
        raise ConfigError(f"{run_dir / rundir.CONFIG_NAME}: {exc}") from None


def build_config(args) -> tuple[dict, Path | None]:
    """The resolved config and its run folder (None: a new numbered folder, made when training starts)."""
    if args.resume:
        run = Path(args.resume)
        if args.preset:
            raise ConfigError("--resume takes the preset and every setting from the run's saved config; drop --preset")
        if args.out and Path(args.out).resolve() != run.resolve():
            raise ConfigError(f"--resume {run} continues that run in its own folder; drop --out {args.out}")
        saved = saved_config(run)
        if saved is None:
            raise FileNotFoundError(f"{run} is not a run folder (no {rundir.CONFIG_NAME} or checkpoints); start a "
                                    f"run there with robustgan train --out {run}")
        cfg = apply_overrides(saved, list(args.overrides))
        cfg["out"] = str(run)
        return cfg, run
    preset = args.preset or DEFAULT_PRESET
    cfg = resolve(preset, args.overrides)
    out = args.out or cfg["out"]
    if not out:
        return cfg, None
    cfg["out"] = str(out)
    return cfg, Path(out)


def check_existing_run(run_dir: Path, cfg: dict) -> None:
    """Refuse ``cfg`` if ``run_dir`` holds a run that it would change (one line naming each key)."""
    saved = saved_config(run_dir)
    if saved is None:
        return
    changes = rundir.config_changes(saved, cfg)
    if changes:
        hint = ""
        if saved.get("preset") != cfg.get("preset") and saved.get("preset"):
            hint = f" (it was started with --preset {saved['preset']})"
        raise rundir.RunDirError(f"{run_dir} holds a run with another config{hint}: {'; '.join(changes)}; continue "
                                 f"it with robustgan train --resume {run_dir} [KEY=VALUE of the keys that may "
                                 f"change], or start this config in another folder (--out)")


def run_name(cfg: dict) -> str:
    preset = cfg.get("preset") or DEFAULT_PRESET
    return f"{Path(str(preset)).stem}-{cfg['loss']}-{cfg['reg']['name']}"


def _is_main_process() -> bool:
    """Rank 0 of a torchrun job (or a single process): the one that owns the run folder."""
    return os.environ.get("RANK", "0") == "0"


# ---------------------------------------------------------------------------------------- list-keys
def _fmt(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _key_rows(preset: str | None) -> list[dict]:
    """One row per config key: key, type, default, preset_value, help."""
    try:
        from .config import describe_keys
    except ImportError:
        describe_keys = None
    if describe_keys is not None:
        return list(describe_keys(preset))
    preset_cfg = resolve(preset, None) if preset else None
    rows = []
    for key in _flat_keys(DEFAULTS):
        node, pnode = DEFAULTS, preset_cfg
        for p in key.split("."):
            node = node[p]
            pnode = pnode[p] if pnode is not None else None
        if isinstance(node, dict):
            continue
        rows.append({"key": key, "type": "any" if node is None else type(node).__name__, "default": node,
                     "preset_value": pnode, "help": ""})
    return rows


def list_keys(preset: str | None) -> list[str]:
    """The ``--list-keys`` table: ``key  type  default [preset value]  description``."""
    rows = _key_rows(preset)
    kw = max(len(r["key"]) for r in rows)
    tw = max(len(str(r.get("type", ""))) for r in rows)
    dw = max(len(_fmt(r.get("default"))) for r in rows)
    lines = []
    for r in rows:
        line = f"{r['key']:<{kw}}  {str(r.get('type', '')):<{tw}}  {_fmt(r.get('default')):<{dw}}"
        if preset:
            pv = r.get("preset_value")
            line += f"  {('preset: ' + _fmt(pv)) if pv != r.get('default') else '':<24}"
        if r.get("help"):
            line += f"  {r['help']}"
        lines.append(line.rstrip())
    return lines


# ------------------------------------------------------------------------------------------ running
def run(args) -> int:
    if args.list_keys:
        if args.resume:
            raise ConfigError("--list-keys lists the keys of a preset; drop --resume")
        print("\n".join(list_keys(args.preset)))
        return 0
    cfg, run_dir = build_config(args)
    if args.print_config:
        print(dump(cfg), end="")
        return 0
    main = _is_main_process()
    if run_dir is None:
        # Only rank 0 writes the run; the other ranks of a torchrun job never read a new run's folder.
        make = rundir.new_run_dir if main else rundir.next_run_dir
        run_dir = make(RUNS_ROOT, run_name(cfg))
        cfg["out"] = str(run_dir)
    elif main:
        rundir.prepare_run_dir(run_dir, flag="--resume" if args.resume else "--out")
    lock = rundir.RunLock(run_dir).acquire() if main else None
    try:
        return _train(args, cfg, run_dir, main)
    finally:
        if lock is not None:
            lock.release()


def _train(args, cfg: dict, run_dir: Path, main: bool) -> int:
    from .checkpoint import latest_checkpoint
    if main:  # under the lock: no other process changes the folder while we look
        check_existing_run(run_dir, cfg)
        if args.fresh and latest_checkpoint(run_dir) is not None:
            raise ConfigError(f"{run_dir} already holds checkpoints; choose another --out or drop --fresh to resume it")
    from .loop import Trainer, TrainingDiverged
    trainer = Trainer(cfg, run_dir)
    try:
        result = trainer.fit()
    except TrainingDiverged as exc:
        print(f"robustgan train: {exc}", file=sys.stderr)
        return 3
    except rundir.StopNow as exc:
        where = trainer.last_checkpoint or "none written yet"
        print(f"robustgan train: {exc} at step {trainer.step}; the last checkpoint ({where}) is intact; continue "
              f"with robustgan train --resume {run_dir}", file=sys.stderr)
        return exc.exit_code
    finally:
        close = getattr(trainer, "close", None)
        if callable(close):
            close()
        trainer.dist.close()
    if result.get("status") == "stopped":
        signum = int(result.get("signal") or 15)
        if trainer.is_main:
            print(f"robustgan train: stopped by {_signal_name(signum)} at step {result.get('step')}; checkpoint "
                  f"{result.get('checkpoint') or trainer.last_checkpoint} written; continue with robustgan train "
                  f"--resume {run_dir}", file=sys.stderr)
        return 128 + signum
    if trainer.is_main:
        print(f"run directory: {run_dir}")
        print(f"samples: {run_dir / 'samples' / 'latest.png'}")
        metrics = result.get("metrics") or {}
        shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        if shown:
            print("metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in shown.items()))
        elif "skipped" in metrics:
            print(f"metrics skipped: {metrics['skipped']}")
    return 0


def _signal_name(signum: int) -> str:
    import signal
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
