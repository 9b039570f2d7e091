#!/usr/bin/env python
"""Contiguous (NCHW) or channels_last (NHWC): which is faster for our models on this machine?

Usage (the numbers behind the ``train.channels_last: auto`` rule, docs/benchmarks/training.md)::

    python benchmarks/bench_memory_format.py [--threads 1] [--amp none|bf16] [--repeats 5]
        [--models dcgan32,dcgan64,resnet32,resnet128] [--batch 64] [--reg rfm]

For each model a :class:`robustgan.train.loop.Trainer` is built as ``robustgan train`` builds it
(synthetic uint8 images of the preset's shape), once with ``train.channels_last=false`` and once
with ``true``; ``d_step()`` and ``g_step()`` are timed separately. After one warm-up step each, the
two layouts alternate within every round (so load from other processes hits both alike); reported
are the median over rounds and the ratio channels_last / contiguous (below 1: channels_last faster).

Models: ``dcgan32`` / ``dcgan64``: the ``fmnist-dcgan`` preset at width 32 / 64 on 28x28x1 images
(the default job's shape); ``resnet32`` / ``resnet128``: ``cifar10-resnet`` (the paper's ResNet) at
width 32 / 128 on 32x32x3. The regulariser is ``--reg`` (default rfm, the presets' own).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import robustgan.train.loop as loop
from robustgan.data.images import TensorImageDataset
from robustgan.hardware import describe_machine
from robustgan.train.config import resolve

#: name -> (preset, width, channels, image side)
MODELS = {
    "dcgan32": ("fmnist-dcgan", 32, 1, 28),
    "dcgan64": ("fmnist-dcgan", 64, 1, 28),
    "resnet32": ("cifar10-resnet", 32, 3, 32),
    "resnet128": ("cifar10-resnet", 128, 3, 32),
}


def build(model: str, channels_last: bool, amp: str, reg: str, batch: int, threads: int, run_dir: Path):
    preset, width, channels, side = MODELS[model]
    images = torch.randint(0, 256, (2 * batch, channels, side, side), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    ds = TensorImageDataset(images, name="synthetic", split="train")
    cfg = resolve(preset, [f"model.width={width}", f"train.amp={amp}",
                           f"train.channels_last={'true' if channels_last else 'false'}", f"reg.name={reg}",
                           f"train.batch_size={batch}", f"train.threads={threads}", "train.device=cpu",
                           "log.tensorboard=false", "log.progress=false"])
    original = loop.load_training_data
    loop.load_training_data = lambda cfg: ds
    try:
        return loop.Trainer(cfg, run_dir, resume=False)
    finally:
        loop.load_training_data = original


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma list of: " + ", ".join(MODELS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--amp", default="none", choices=("none", "bf16"))
    p.add_argument("--repeats", type=int, default=5, help="rounds (default 5)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--reg", default="rfm", choices=("none", "noise", "gp", "ar", "rfm"))
    args = p.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in MODELS:
            p.error(f"unknown model {m!r}; choose from {', '.join(MODELS)}")
    torch.set_num_threads(args.threads)
    info = describe_machine()
    print(f"# {info['cpu']} ({info['cpu_capability']}, native bf16: {info['cpu_native_bf16']}), "
          f"{info['cores_available']} cores available, torch {info['torch']}, {args.threads} thread(s), "
          f"amp {args.amp}, reg {args.reg}, batch {args.batch}, {args.repeats} rounds", flush=True)
    print("| model | D step contiguous | D step channels_last | ratio | G step contiguous | G step channels_last "
          "| ratio |\n|---|---:|---:|---:|---:|---:|---:|", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_memory_format-") as tmp:
        for m in models:
            trainers = {cl: build(m, cl, args.amp, args.reg, args.batch, args.threads, Path(tmp) / f"{m}-{cl}")
                        for cl in (False, True)}
            times = {(cl, ph): [] for cl in (False, True) for ph in ("d", "g")}
            for tr in trainers.values():  # warm-up: oneDNN primitives, Adam state
                tr.d_step()
                tr.g_step()
            for r in range(args.repeats):
                order = (False, True) if r % 2 == 0 else (True, False)
                for cl in order:
                    tr = trainers[cl]
                    times[(cl, "d")].append(timed(tr.d_step))
                    times[(cl, "g")].append(timed(tr.g_step))
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"| {m} | {med[(False, 'd')]:.3f} | {med[(True, 'd')]:.3f} | {med[(True, 'd')] / med[(False, 'd')]:.2f} "
                  f"| {med[(False, 'g')]:.3f} | {med[(True, 'g')]:.3f} | {med[(True, 'g')] / med[(False, 'g')]:.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
