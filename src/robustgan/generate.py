"""``robustgan generate RUN --seeds 0-99 --outdir DIR``: one image per seed, reproducible per seed.

Seed ``k`` draws ``z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(k))`` and
runs G (eval mode) on that one sample, so the image of seed ``k`` does not depend on which other
seeds are asked for: batching would let the convolution kernels chosen for other batch sizes
change the last bit of a pixel. Images are written as ``seed0000.png``, ``seed0001.png``, ...; a
2-D run writes its points to ``DIR/points.csv`` (columns ``seed, x, y``) instead.
"""
from __future__ import annotations

import csv
from pathlib import Path

import torch

__all__ = ["parse_seeds", "latent_for_seed", "generate_for_seeds"]


def parse_seeds(text: str) -> list[int]:
    """``"0-9,20,30-31"`` -> ``[0, 1, ..., 9, 20, 30, 31]`` (inclusive ranges, duplicates dropped, order kept)."""
    seeds: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ValueError(f"--seeds {text!r}: use non-negative integers and ranges, e.g. 0-99 or 0-9,20,30-31") from None
        if a < 0 or b < a:
            raise ValueError(f"--seeds {text!r}: the range {part!r} is empty or negative; write LOW-HIGH with LOW <= HIGH")
        seeds.extend(range(a, b + 1))
    return list(dict.fromkeys(seeds))


def latent_for_seed(seed: int, z_dim: int) -> torch.Tensor:
    """The latent of one seed: ``(1, z_dim)`` from N(0, I), drawn on the CPU from ``manual_seed(seed)``."""
    return torch.randn(1, z_dim, generator=torch.Generator().manual_seed(int(seed)))


@torch.no_grad()
def generate_for_seeds(G: torch.nn.Module, seeds, device: str = "cpu") -> torch.Tensor:
    """``G(z_k)`` for each seed, one forward per seed: ``(len(seeds), C, H, W)`` (or ``(len(seeds), dim)``)
    in G's output range, float32 on the CPU."""
    dev = torch.device(device)
    return torch.cat([G(latent_for_seed(s, G.z_dim).to(dev)).float().cpu() for s in seeds])


def add_arguments(parser) -> None:
    parser.add_argument("run", help="run directory (its latest checkpoint) or a checkpoint file")
    parser.add_argument("--seeds", required=True, help="seeds: ranges and lists, e.g. 0-99 or 0-9,20,30-31")
    parser.add_argument("--outdir", required=True, help="folder for seedNNNN.png (created if missing)")
    parser.add_argument("--checkpoint", default=None, help="a specific checkpoint file")
    parser.add_argument("--no-ema", action="store_true", help="use the trained G rather than its EMA copy")
    parser.add_argument("--device", default="cpu", help="where to run G (default cpu)")


def run(args) -> int:
    from PIL import Image

    from .ranges import range_to_uint8
    from .train.sample import load_generator

    seeds = parse_seeds(args.seeds)
    outdir = Path(args.outdir).expanduser()
    if outdir.exists() and not outdir.is_dir():
        raise ValueError(f"--outdir {outdir} is a file; give a folder")
    G, cfg, path = load_generator(args.run, args.checkpoint, ema=not args.no_ema, device=args.device)
    x = generate_for_seeds(G, seeds, args.device)
    outdir.mkdir(parents=True, exist_ok=True)
    weights = "trained G" if args.no_ema else "EMA weights (if kept)"
    if x.dim() == 2:
        out = outdir / "points.csv"
        with open(out, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["seed"] + (["x", "y"] if x.shape[1] == 2 else [f"x{i}" for i in range(x.shape[1])]))
            for s, p in zip(seeds, x.tolist()):
                w.writerow([s] + [repr(v) for v in p])
        print(f"wrote {out} ({len(seeds)} points, a 2-D run has no images; {weights} of {path})")
        return 0
    images = range_to_uint8(x, cfg["model"]["out_range"]).permute(0, 2, 3, 1).numpy()
    for s, img in zip(seeds, images):
        Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(outdir / f"seed{s:04d}.png")
    print(f"wrote {len(seeds)} images to {outdir} (seed{seeds[0]:04d}.png ...; {weights} of {path})")
    return 0
