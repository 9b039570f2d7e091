#!/usr/bin/env python
"""What one training iteration of each architecture of the CPU stability pool costs, 1 thread.

Usage (the command behind docs/benchmarks/pool.md)::

    python benchmarks/bench_pool.py [--rounds 5] [--iterations 5] [--out docs/benchmarks/pool.md]

For the Fashion-MNIST presets at 28x28 (``fmnist-dcgan`` with ``model.block`` plain / residual, and
``fmnist-resnet``, the Table 3 ResNet), widths 16 and 32 and batches 16 and 64, with ``reg.name``
none and rfm: a :class:`robustgan.train.loop.Trainer` built as ``robustgan train`` builds it on
synthetic in-memory images (``bench_train.synthetic_loader``), fp32, contiguous memory, one torch
thread (a sweep runs one run per core). One warm-up iteration, then ``--rounds`` rounds, each timing
``--iterations`` iterations (lr update, D step, G step, EMA) of every configuration in an order
rotated from round to round, so that load from other processes hits all alike. Reported: the
median over rounds of seconds per iteration, and the ratio to the plain DCGAN of the same width,
batch and regulariser.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import machine_description, synthetic_loader  # noqa: E402

from robustgan.train import loop  # noqa: E402
from robustgan.train.config import resolve  # noqa: E402

ARCHS = {"dcgan-plain": ("fmnist-dcgan", ["model.block=plain"]),
         "dcgan-residual": ("fmnist-dcgan", ["model.block=residual"]),
         "resnet": ("fmnist-resnet", [])}


def build(arch: str, width: int, batch: int, reg: str, run_dir: Path):
    preset, extra = ARCHS[arch]
    cfg = resolve(preset, extra + [f"model.width={width}", f"train.batch_size={batch}", f"reg.name={reg}",
                                   "train.amp=none", "train.channels_last=false", "train.threads=1",
                                   "train.device=cpu", "log.tensorboard=false", "log.progress=false"])
    loop.load_training_data = synthetic_loader(1, 28, 4 * batch)
    return loop.Trainer(cfg, run_dir, resume=False)


def iteration(tr) -> None:
    tr._set_lr()
    tr.d_step()
    tr.g_step()
    tr.step += 1
    tr._update_ema()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--widths", default="16,32")
    p.add_argument("--batches", default="16,64")
    p.add_argument("--regs", default="none,rfm")
    p.add_argument("--out", default="docs/benchmarks/pool.md", help="Markdown report ('-': print only)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    configs = [(a, w, b, r) for a in ARCHS for w in map(int, args.widths.split(","))
               for b in map(int, args.batches.split(",")) for r in args.regs.split(",")]
    times: dict = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for i, c in enumerate(configs):
            trainers[c] = build(*c, Path(tmp) / f"r{i}")
            iteration(trainers[c])  # warm-up
        for k in range(args.rounds):
            order = configs[k % len(configs):] + configs[:k % len(configs)]
            for c in order:
                t0 = time.perf_counter()
                for _ in range(args.iterations):
                    iteration(trainers[c])
                times[c].append((time.perf_counter() - t0) / args.iterations)
            print(f"round {k + 1}/{args.rounds} done", file=sys.stderr)
    med = {c: statistics.median(v) for c, v in times.items()}
    lines = ["# Cost of the CPU stability pool's architectures", "",
             f"`python benchmarks/bench_pool.py --rounds {args.rounds} --iterations {args.iterations}`, "
             f"{time.strftime('%Y-%m-%d')}, on {machine_description()}.", "",
             "Seconds per training iteration (D step + G step + EMA), median over rounds, fp32, one thread, "
             "Fashion-MNIST-shaped synthetic data (28x28x1); ratio to the plain DCGAN of the same width, batch "
             "and regulariser.", "",
             "| arch | width | batch | reg | s / iteration | x plain DCGAN |", "|---|---|---|---|---|---|"]
    for c in configs:
        a, w, b, r = c
        base = med[("dcgan-plain", w, b, r)]
        lines.append(f"| {a} | {w} | {b} | {r} | {med[c]:.4f} | {med[c] / base:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
