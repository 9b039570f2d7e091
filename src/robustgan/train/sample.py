"""``robustgan sample RUN --n 64 --out grid.png``: draw a grid from a run's latest checkpoint (EMA if present)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch


def load_generator(run: str | Path, checkpoint: str | None = None, ema: bool = True, device: str = "cpu"):
    """Rebuild a run's generator from its checkpoint: returns ``(G, cfg, data_info)``.

    ``G`` is in eval mode; the EMA weights are used when the run kept them and ``ema`` is True.
    """
    from .checkpoint import latest_checkpoint, load_checkpoint
    from .config import DEFAULTS, merge
    from .loop import TOY_NAMES, build_networks

    run = Path(run)
    path = Path(checkpoint) if checkpoint else latest_checkpoint(run)
    if path is None:
        raise FileNotFoundError(f"no checkpoint in {run}/checkpoints; train it first (robustgan train --out {run})")
    state = load_checkpoint(path, map_location=device)
    cfg = merge(DEFAULTS, state["config"])
    if cfg["data"]["name"] in TOY_NAMES:
        from ..data.toy import get_toy
        info = get_toy(cfg["data"]["name"])
    else:  # image size and channels, recorded so the data set need not be loaded
        info = SimpleNamespace(**state["data_shape"])
    G, _ = build_networks(cfg, info)
    weights = state["G_ema"] if (ema and state.get("G_ema") is not None) else state["G"]
    G.load_state_dict(weights)
    return G.to(device).eval(), cfg, path


def add_arguments(parser) -> None:
    parser.add_argument("run", help="run directory (or a checkpoint file with --checkpoint)")
    parser.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    parser.add_argument("--out", default=None, help="output PNG (default RUN/samples/sample.png)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default=None, help="a specific checkpoint file")
    parser.add_argument("--no-ema", action="store_true", help="use the trained G rather than its EMA copy")
    parser.add_argument("--nrow", type=int, default=None)


def run(args) -> int:
    from ..ranges import range_to_uint8
    from .logging import save_grid, save_scatter

    if args.n < 1:
        raise ValueError("--n must be at least 1")
    G, cfg, path = load_generator(args.run, args.checkpoint, ema=not args.no_ema)
    g = torch.Generator().manual_seed(args.seed)
    z = torch.randn(args.n, G.z_dim, generator=g)
    with torch.no_grad():
        x = G(z).float()
    out = Path(args.out) if args.out else Path(args.run) / "samples" / "sample.png"
    if x.dim() == 2:
        save_scatter(x, out, title=f"{args.n} samples")
    else:
        save_grid(range_to_uint8(x, cfg["model"]["out_range"]), out, nrow=args.nrow)
    print(f"wrote {out} ({args.n} samples from {path})")
    return 0
