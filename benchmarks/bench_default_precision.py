"""The default job's preset for a few steps with train.amp=auto against forced fp32 (one process, one run each).

    python benchmarks/bench_default_precision.py --steps 30

Prints the machine, what ``auto`` resolved to and the wall time of each run (model build and data
loading excluded: the clock starts at the first step). Set ``ONEDNN_MAX_CPU_ISA=AVX2`` to see what
a CPU without native bf16 gets.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

from robustgan.hardware import describe_machine
from robustgan.train.config import resolve
from robustgan.train.loop import Trainer


def timed_run(amp: str, steps: int, preset: str) -> tuple[float, dict]:
    cfg = resolve(preset, [f"train.amp={amp}", f"train.steps={steps}", "log.progress=false",
                           "log.eval_at_end=false", "log.tensorboard=false", f"log.every={steps}",
                           f"log.samples_every={steps}", f"log.checkpoint_every={steps}"])
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(cfg, tmp)
        tr.d_step()  # warm-up step outside the clock
        tr.g_step()
        t0 = time.perf_counter()
        tr.fit()
        seconds = time.perf_counter() - t0
        tr.close()
        return seconds, tr.resolved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--preset", default="fmnist-dcgan")
    args = ap.parse_args()
    print(json.dumps(describe_machine()))
    t_auto, r_auto = timed_run("auto", args.steps, args.preset)
    t_fp32, r_fp32 = timed_run("none", args.steps, args.preset)
    print(f"auto resolved to: amp={r_auto['amp']} channels_last={r_auto['channels_last']} threads={r_auto['threads']}")
    print(f"  reasons: {r_auto['reasons']}")
    print(f"{args.steps} steps: auto {t_auto:.2f} s ({t_auto / args.steps:.3f} s/step), "
          f"fp32 {t_fp32:.2f} s ({t_fp32 / args.steps:.3f} s/step), auto / fp32 = {t_auto / t_fp32:.2f}")


if __name__ == "__main__":
    main()
