"""``robustgan sample RUN --n 64 --out grid.png``: draw a grid from a run's latest checkpoint (EMA if present).

:func:`load_generator` is the public way to get a run's generator in Python (``robustgan.load_generator``).
"""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import torch


class LoadedGenerator(NamedTuple):
    """What :func:`load_generator` returns; unpacks as ``G, cfg, checkpoint = ...``."""

    G: torch.nn.Module
    cfg: dict
    checkpoint: Path


def load_generator(run: str | Path, checkpoint: str | Path | None = None, ema: bool = True, device: str = "cpu",
                   G: torch.nn.Module | None = None) -> LoadedGenerator:
    """A trained generator from a run directory, ready to sample: ``(G, cfg, checkpoint)``.

    Args:
        run: a run directory (its latest checkpoint under ``run/checkpoints/`` is used) or a
            checkpoint file ``ckpt-<step>.pt``.
        checkpoint: a specific checkpoint file (overrides the latest one).
        ema: use the EMA weights when the run kept them (the default), else the trained G.
        device: where G is put, e.g. "cpu" or "cuda".
        G: the module to load the weights into, for runs trained with your own generator class;
            None rebuilds robustgan's generator from the run's config.

    Returns:
        A :class:`LoadedGenerator` named tuple:

        * ``G``: the generator in eval mode on ``device``; ``G(z)`` maps ``z`` of shape
          ``(B, G.z_dim)``, ``z ~ N(0, I)``, to images ``(B, C, H, W)`` in ``cfg["model"]["out_range"]``
          (``[0, 1]`` for sigmoid, ``[-1, 1]`` for tanh) or, for 2-D runs, points ``(B, 2)``;
        * ``cfg``: the run's resolved configuration (a dict, as in ``run/config.yaml``);
        * ``checkpoint``: the ``Path`` of the checkpoint file that was loaded.

    Raises:
        FileNotFoundError: the run has no checkpoint.
    """
    from ..data.toy import TOY_DATASETS, get_toy
    from .build import build_networks
    from .checkpoint import latest_checkpoint, load_checkpoint
    from .config import DEFAULTS, merge

    run = Path(run)
    if checkpoint is None and run.is_file():
        checkpoint = run
    path = Path(checkpoint) if checkpoint else latest_checkpoint(run)
    if path is None:
        raise FileNotFoundError(f"no checkpoint in {run}/checkpoints; train it first (robustgan train --out {run})")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    state = load_checkpoint(path, map_location=device)
    cfg = merge(DEFAULTS, state["config"])
    if G is None:
        if cfg["data"]["name"] in TOY_DATASETS:
            info = get_toy(cfg["data"]["name"])
        else:  # image size and channels, recorded so the data set need not be loaded
            info = SimpleNamespace(**state["data_shape"])
        G, _ = build_networks(cfg, info)
    weights = state["G_ema"] if (ema and state.get("G_ema") is not None) else state["G"]
    G.load_state_dict(weights)
    return LoadedGenerator(G.to(device).eval(), cfg, path)


def run_directory(run: str | Path) -> Path:
    """The run directory of ``run``: itself, or the run holding checkpoint file ``run``."""
    run = Path(run)
    return run.parent.parent if run.is_file() and run.parent.name == "checkpoints" else run


def output_file(out: str | Path | None, default_dir: Path, default_name: str) -> Path:
    """The file an ``--out`` option names: a folder (existing, or written with a trailing /) gets
    ``default_name`` inside it; otherwise the path must end in an image extension such as .png."""
    if out is None:
        return default_dir / default_name
    text = str(out)
    path = Path(text).expanduser()
    if path.is_dir() or text.endswith(("/", os.sep)):
        return path / default_name
    from PIL import Image
    if path.suffix.lower() not in Image.registered_extensions():
        raise ValueError(f"--out {text}: give an image file such as grid.png, or a folder ending in /")
    return path


def add_arguments(parser) -> None:
    parser.add_argument("run", help="run directory (its latest checkpoint) or a checkpoint file")
    parser.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    parser.add_argument("--out", default=None,
                        help="output PNG, or a folder (existing, or ending in /) to write sample.png into "
                             "(default RUN/samples/sample.png)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default=None, help="a specific checkpoint file")
    parser.add_argument("--no-ema", action="store_true", help="use the trained G rather than its EMA copy")
    parser.add_argument("--nrow", type=int, default=None, help="images per row (default: a square grid)")
    parser.add_argument("--device", default="cpu", help="where to run G (default cpu)")


def run(args) -> int:
    from ..ranges import range_to_uint8
    from .logging import save_grid, save_scatter

    if args.n < 1:
        raise ValueError("--n must be at least 1")
    out = output_file(args.out, run_directory(args.run) / "samples", "sample.png")
    G, cfg, path = load_generator(args.run, args.checkpoint, ema=not args.no_ema, device=args.device)
    g = torch.Generator().manual_seed(args.seed)
    z = torch.randn(args.n, G.z_dim, generator=g)
    with torch.no_grad():
        x = G(z.to(args.device)).float().cpu()
    if x.dim() == 2:
        save_scatter(x, out, title=f"{args.n} samples")
    else:
        save_grid(range_to_uint8(x, cfg["model"]["out_range"]), out, nrow=args.nrow)
    print(f"wrote {out} ({args.n} samples from {path})")
    return 0
