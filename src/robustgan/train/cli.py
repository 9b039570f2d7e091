"""``robustgan train``: train one configuration.

    robustgan train                                   # the default job (preset fmnist-dcgan)
    robustgan train --preset fmnist-dcgan loss=lsgan reg=rfm reg.lam=1
    robustgan train --preset my.yaml --out runs/x train.steps=500
    robustgan train --resume runs/x                  # continue a run where it stopped
    torchrun --nproc_per_node 2 -m robustgan train --preset cifar10-resnet

Overrides are ``key=value`` with dotted keys (``robustgan train --list-keys`` prints them all).
"""
from __future__ import annotations

import sys
from pathlib import Path

from .config import DEFAULTS, ConfigError, _flat_keys, dump, load_yaml, merge, preset_names, resolve

DEFAULT_PRESET = "fmnist-dcgan"


def add_arguments(parser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. loss=lsgan reg=rfm reg.lam=1 train.steps=500")
    parser.add_argument("--preset", default=None,
                        help=f"preset name or YAML file (default {DEFAULT_PRESET}); presets: {', '.join(preset_names())}")
    parser.add_argument("--out", default=None, help="run directory (default runs/<preset>-<loss>-<reg>)")
    parser.add_argument("--resume", default=None, metavar="RUN",
                        help="continue the run in RUN with its saved config (overrides still apply)")
    parser.add_argument("--fresh", action="store_true",
                        help="refuse to reuse a run directory that already holds checkpoints")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--list-keys", action="store_true", help="list every config key with its default and exit")


def build_config(args) -> tuple[dict, Path]:
    if args.resume:
        run = Path(args.resume)
        if not (run / "config.yaml").is_file():
            raise ConfigError(f"{run} is not a run directory (no config.yaml); start it with robustgan train --out {run}")
        saved = load_yaml(str(run / "config.yaml"))
        cfg = resolve(None, None)
        cfg = merge(cfg, saved)
        cfg = resolve(None, _as_overrides(cfg) + list(args.overrides))
        return cfg, run
    preset = args.preset or DEFAULT_PRESET
    cfg = resolve(preset, args.overrides)
    if args.out:
        cfg["out"] = args.out
    if not cfg["out"]:
        name = Path(preset).stem
        cfg["out"] = f"runs/{name}-{cfg['loss']}-{cfg['reg']['name']}"
    return cfg, Path(cfg["out"])


def _as_overrides(cfg: dict, prefix: str = "") -> list[str]:
    import json
    out = []
    for k, v in cfg.items():
        if isinstance(v, dict):
            out += _as_overrides(v, prefix + k + ".")
        else:
            out.append(f"{prefix}{k}={json.dumps(v)}")
    return out


def run(args) -> int:
    if args.list_keys:
        for key in _flat_keys(DEFAULTS):
            node = DEFAULTS
            for p in key.split("."):
                node = node[p]
            if not isinstance(node, dict):
                print(f"{key} = {node!r}")
        return 0
    cfg, run_dir = build_config(args)
    if args.print_config:
        print(dump(cfg), end="")
        return 0
    from .checkpoint import latest_checkpoint
    if args.fresh and latest_checkpoint(run_dir) is not None:
        raise ConfigError(f"{run_dir} already holds checkpoints; choose another --out or drop --fresh to resume it")
    from .loop import Trainer, TrainingDiverged
    trainer = Trainer(cfg, run_dir)
    try:
        result = trainer.fit()
    except TrainingDiverged as exc:
        print(f"robustgan train: {exc}", file=sys.stderr)
        return 3
    finally:
        trainer.dist.close()
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
