#!/usr/bin/env python
"""GPU check: the paper's CIFAR ResNet on one GPU, per regulariser, in a few minutes.

Usage::

    python benchmarks/gpu_check.py --out docs/benchmarks/gpu.md          # needs a CUDA GPU; < 5 minutes
    python benchmarks/gpu_check.py --device cpu --quick --out -         # tiny sizes: checks the script only

What it measures, on :class:`robustgan.train.loop.Trainer` built as ``robustgan train`` builds it for
the ``cifar10-resnet`` preset (Table 3 ResNet, width 128, batch 64, ``train.amp=bf16``,
``train.channels_last=true``; ``--fp32`` for fp32) on synthetic uint8 CIFAR-shaped data (32x32x3, no
data set needed):

* for ``reg`` in none / noise / gp / ar / rfm (penalty at every step): the median time of a D step
  and of a whole iteration (learning rate, D step, G step, EMA update) over ``--steps`` iterations
  after ``--warmup`` (the device is synchronised around each timed part), and the peak memory
  (``torch.cuda.max_memory_allocated``) of those iterations;
* a 500-step run (``--run-steps``) of the preset's regulariser (rfm) through ``Trainer.fit``, with its
  logging, sample grids and a checkpoint at the end, but no evaluation: wall time, seconds per step
  and the last logged losses.

It prints a Markdown table naming the GPU and writes it to ``--out`` ('-': print only). Without a
GPU it stops with a one-line error unless ``--device cpu`` is given.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REGS = ["none", "noise", "gp", "ar", "rfm"]


def synthetic_data(n: int, size: int = 32):
    from robustgan.data.images import TensorImageDataset
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return TensorImageDataset(images, name="synthetic-cifar10", split="train", source="random uint8 (gpu_check.py)")


def config(args, reg: str, steps: int):
    from robustgan.train.config import resolve
    return resolve("cifar10-resnet", [
        f"reg.name={reg}", f"model.width={args.width}", f"train.batch_size={args.batch}", f"train.steps={steps}",
        f"train.device={args.device}", "train.amp=" + ("none" if args.fp32 else "bf16"),
        "train.channels_last=" + ("false" if args.fp32 else "true"), "optim.d_steps=1",
        "log.tensorboard=false", "log.progress=false", "log.eval_at_end=false", "log.eval_every=0",
        f"log.every={max(1, min(100, steps))}", f"log.samples_every={steps}", f"log.checkpoint_every={steps}",
    ])


def build(args, reg: str, steps: int, run_dir: Path, data):
    import robustgan.train.loop as loop
    original = loop.load_training_data
    loop.load_training_data = lambda cfg: data
    try:
        return loop.Trainer(config(args, reg, steps), run_dir, resume=False)
    finally:
        loop.load_training_data = original


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_regulariser(args, reg: str, tmp: Path, data) -> dict:
    tr = build(args, reg, 10_000, tmp / reg, data)
    dev = tr.device
    d_times, it_times = [], []
    for i in range(args.warmup + args.steps):
        if i == args.warmup and dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        sync(dev)
        t0 = time.perf_counter()
        tr._set_lr()
        d = tr.d_step()
        sync(dev)
        t1 = time.perf_counter()
        g = tr.g_step()
        tr.step += 1
        tr._update_ema()
        sync(dev)
        t2 = time.perf_counter()
        if i >= args.warmup:
            d_times.append(t1 - t0)
            it_times.append(t2 - t0)
    if not (torch.isfinite(d["loss_d"]) and torch.isfinite(g["loss_g"])):
        raise RuntimeError(f"reg={reg}: a loss became non-finite")
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
    return {"d": statistics.median(d_times), "it": statistics.median(it_times), "peak": peak}


def long_run(args, tmp: Path, data) -> dict:
    tr = build(args, "rfm", args.run_steps, tmp / "run", data)
    dev = tr.device
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    sync(dev)
    t0 = time.perf_counter()
    tr.fit()
    sync(dev)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if "loss_d" in r][-1]
    return {"wall": wall, "per_step": wall / args.run_steps, "loss_d": last["loss_d"], "loss_g": last["loss_g"],
            "step": tr.step, "peak": torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None}


def mib(x) -> str:
    return "-" if x is None else f"{x / 2 ** 20:.0f} MiB"


def report(args, device_name: str, timings: dict, run: dict, elapsed: float) -> str:
    from robustgan.hardware import describe_machine
    info = describe_machine()
    precision = "fp32" if args.fp32 else "bf16 autocast + channels_last"
    none = timings["none"]
    lines = [f"### GPU check: {device_name}", "",
             f"Generated by `python benchmarks/gpu_check.py {' '.join(args.argv)}` on "
             f"{_dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} in {elapsed / 60:.1f} min; torch {info['torch']}, "
             f"host CPU {info['cpu']}.", "",
             f"`cifar10-resnet` (ResNet width {args.width}), batch {args.batch}, {precision}, synthetic 32x32x3 data; "
             f"median of {args.steps} iterations after {args.warmup} warm-up, penalty at every step.", "",
             "| reg | D step (ms) | D step / none | iteration (ms) | iteration / none | peak memory |",
             "|---|---:|---:|---:|---:|---:|"]
    for reg in REGS:
        t = timings[reg]
        lines.append(f"| {reg} | {t['d'] * 1000:.1f} | {t['d'] / none['d']:.2f} | {t['it'] * 1000:.1f} | "
                     f"{t['it'] / none['it']:.2f} | {mib(t['peak'])} |")
    lines += ["", f"{run['step']} steps of `robustgan train` with reg=rfm (Trainer.fit: logging every "
              f"{max(1, min(100, args.run_steps))} steps, sample grid and checkpoint at the end, no evaluation): {run['wall']:.1f} s wall, "
              f"{run['per_step'] * 1000:.1f} ms per step, peak memory {mib(run['peak'])}; last logged "
              f"loss_d {run['loss_d']:.3f}, loss_g {run['loss_g']:.3f}.", ""]
    return "\n".join(lines)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (with --quick: checks the script)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (width 8, batch 8, a few steps)")
    p.add_argument("--fp32", action="store_true", help="fp32 and contiguous instead of bf16 + channels_last")
    p.add_argument("--width", type=int, default=None, help="ResNet width (default 128; --quick 8)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 64; --quick 8)")
    p.add_argument("--steps", type=int, default=None, help="timed iterations per regulariser (default 30; --quick 2)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up iterations (default 10; --quick 1)")
    p.add_argument("--run-steps", type=int, default=None, help="steps of the training run (default 500; --quick 4)")
    p.add_argument("--out", default="-", help="Markdown file to write ('-': print only; default)")
    args = p.parse_args(argv)
    quick = args.quick
    for name, full, small in (("width", 128, 8), ("batch", 64, 8), ("steps", 30, 2), ("warmup", 10, 1),
                              ("run_steps", 500, 4)):
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
        if getattr(args, name) < (0 if name == "warmup" else 1):
            p.error(f"--{name.replace('_', '-')} must be positive")
    args.argv = list(argv)
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: error: no CUDA GPU is available (torch.cuda.is_available() is False); run it on a machine "
              "with a GPU, or use --device cpu --quick to check the script", file=sys.stderr)
        return 2
    if dev.type == "cuda" and not args.fp32 and not torch.cuda.is_bf16_supported():
        print(f"gpu_check: error: {torch.cuda.get_device_name(dev)} has no bf16; add --fp32", file=sys.stderr)
        return 2
    if dev.type == "cpu":
        torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU (script check, not a GPU measurement)"
    print(f"gpu_check on {name}: width {args.width}, batch {args.batch}", flush=True)
    t0 = time.perf_counter()
    data = synthetic_data(max(4 * args.batch, 512 if not args.quick else 4 * args.batch))
    timings = {}
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        for reg in REGS:
            timings[reg] = time_regulariser(args, reg, Path(tmp), data)
            print(f"  {reg}: D step {timings[reg]['d'] * 1000:.1f} ms, iteration {timings[reg]['it'] * 1000:.1f} ms, "
                  f"peak {mib(timings[reg]['peak'])}", flush=True)
        run = long_run(args, Path(tmp), data)
    text = report(args, name, timings, run, time.perf_counter() - t0)
    print(text)
    if args.out != "-":
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
