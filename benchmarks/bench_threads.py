#!/usr/bin/env python
"""Runs that share the cores: what oversubscribing them costs.

Usage (the numbers in docs/benchmarks/training.md, "Threads")::

    python benchmarks/bench_threads.py [--runs 1,2] [--threads 1,2] [--steps 30] [--preset fmnist-dcgan]

For every (runs at once R, threads per run T), R subprocesses start together, each training
``--steps`` iterations of ``--preset`` (fp32, synthetic uint8 data of the preset's shape, no data
set needed, no evaluation) with ``torch.set_num_threads(T)`` and ``OMP_NUM_THREADS=T``. Reported:
the wall time until the last run ends and the mean seconds per step of a run (after one warm-up
iteration). R * T above the available cores is oversubscription.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time, tempfile
import torch
import robustgan.train.loop as loop
from robustgan.data.images import TensorImageDataset
from robustgan.train.config import resolve
preset, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
shape = {"fmnist-dcgan": (1, 28), "cifar10-resnet": (3, 32), "mnist-dcgan": (1, 28)}.get(preset, (1, 28))
images = torch.randint(0, 256, (256, shape[0], shape[1], shape[1]), dtype=torch.uint8,
                       generator=torch.Generator().manual_seed(0))
ds = TensorImageDataset(images, name="synthetic", split="train")
loop.load_training_data = lambda cfg: ds
cfg = resolve(preset, ["train.amp=none", f"train.threads={threads}", "train.device=cpu", "log.tensorboard=false",
                       "log.progress=false"])
with tempfile.TemporaryDirectory() as tmp:
    tr = loop.Trainer(cfg, tmp, resume=False)
    def it():
        tr._set_lr(); tr.d_step(); tr.g_step(); tr.step += 1; tr._update_ema()
    it()
    t0 = time.perf_counter()
    for _ in range(steps):
        it()
    print(json.dumps({"step_time": (time.perf_counter() - t0) / steps}))
"""


def run_group(preset: str, runs: int, threads: int, steps: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, preset, str(steps), str(threads)], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(runs)]
    outs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - t0
    if any(p.returncode for p in procs):
        raise RuntimeError("a benchmark run failed")
    times = [json.loads(o.strip().splitlines()[-1])["step_time"] for o in outs]
    return {"wall": wall, "step_time": sum(times) / len(times)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="1,2", help="comma list of runs at once")
    p.add_argument("--threads", default="1,2", help="comma list of threads per run")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--preset", default="fmnist-dcgan")
    args = p.parse_args(argv)
    from robustgan.hardware import describe_machine
    info = describe_machine()
    print(f"# {info['cpu']} ({info['cpu_capability']}), {info['cores_available']} cores available, torch "
          f"{info['torch']}; preset {args.preset}, fp32, {args.steps} steps; load average at start "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    print("| runs at once | threads per run | threads in all | s per step (mean of runs) | wall, all runs |\n"
          "|---:|---:|---:|---:|---:|", flush=True)
    for runs in [int(x) for x in args.runs.split(",")]:
        for threads in [int(x) for x in args.threads.split(",")]:
            r = run_group(args.preset, runs, threads, args.steps)
            print(f"| {runs} | {threads} | {runs * threads} | {r['step_time']:.3f} | {r['wall']:.1f} s |", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
