#!/usr/bin/env python
"""Training-speed benchmark: the cost of a discriminator step per regulariser, and of bf16.

Usage (the command behind docs/benchmarks/training.md)::

    python benchmarks/bench_train.py [--presets dcgan,resnet] [--repeats N] [--batch 64]
        [--precisions fp32,bf16cl] [--profile] [--variant NAME] [--quiet-wait S]
        [--out docs/benchmarks/training.md]

What is timed, for each preset and precision, on a :class:`robustgan.train.loop.Trainer` built exactly
as ``robustgan train`` builds it, but on synthetic in-memory data (random uint8 images of the preset's
shape; ``robustgan.train.loop.load_training_data`` is monkeypatched, so no data set is needed):

* ``d_step()`` for ``reg.name`` in none / noise / gp / ar / rfm with the regulariser applied at every
  step, and for ar / rfm with lazy regularisation ``reg.every=4`` (the penalty on every 4th D step,
  scaled by 4), averaged over 4 consecutive D steps (exactly one of which carries the penalty);
* a whole iteration as in ``Trainer.fit``: learning-rate update, ``d_step()``, ``g_step()`` and the
  EMA update (``optim.d_steps=1``). The D-step time is the ``d_step()`` part of the same iteration.

Presets: ``dcgan`` = ``fmnist-dcgan`` (DCGAN width 64, 32x32x1: one channel, as the Fashion-MNIST preset
has); ``resnet`` = ``cifar10-resnet`` (the paper's Table 3 ResNet, width 128, 32x32x3). Precisions:
``fp32`` (``train.amp=none train.channels_last=false``; the fast path of a CPU without native
bf16), ``bf16cl`` (``train.amp=bf16 train.channels_last=true``, the ResNet preset's own setting),
``auto`` (what ``train.amp=auto train.channels_last=auto`` resolves to on this machine, see
:mod:`robustgan.hardware`; the choice and its reason are printed) and, on request, ``bf16`` (bf16
autocast, contiguous memory). ``--quick`` checks the script in well under a minute (dcgan, one
round, precision auto, no FLOP count, report printed only). Batch 64 unless ``--batch``. Every configuration starts from the same weights (seed 0).

Method: ``torch.set_num_threads(2)``; one warm-up iteration per configuration applied at every step
(the lazy ones share their code paths and shapes); then ``--repeats`` rounds (default: dcgan 7,
resnet 3), each running every (precision, configuration) once, in an order rotated from round to round
(round-robin), so that load from other processes hits all configurations alike. Reported: the median
and the minimum over rounds of wall-clock seconds, ratios of medians and of minimums (each target is
judged on both), the range of the per-round ratios, process CPU seconds, and the convolution/matmul
FLOPs of every configuration (counted with torch's FLOP formulas at batch 8 and scaled: a
machine-independent cost model). Each sample also records how disturbed it was: a fixed probe
workload timed before and after it, and the share of its time during which another process had a
runnable thread (``/proc/stat``). ``--quiet-wait S`` waits up to S seconds before each sample for the
other processes to go idle.

``--profile`` adds a breakdown of one D step (regulariser every step; ``--profile-precisions``) into its
phases (G forward, each D forward, the attack's or the gradient penalty's input-gradient backward, the
final backward, the optimiser step) by wrapping those calls with timers, and the operator counts of one
step from ``torch.profiler``. ``--variant NAME`` times a proposed change by monkeypatching it in (see
``VARIANTS``): ``mallopt`` (the allocator setting of :func:`variant_mallopt`) or ``groupnorm``
(InstanceNorm2d computed as GroupNorm). Nothing in ``src/`` is modified.

The Markdown report is written between the markers ``<!-- bench:begin -->`` and ``<!-- bench:end -->``
of ``--out`` (created if missing); text outside the markers (the analysis) is kept.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

import robustgan.train.loop as loop
from robustgan.data.images import TensorImageDataset
from robustgan.hardware import describe_machine, resolve_amp, resolve_channels_last
from robustgan.train.config import resolve

#: benchmark name -> (robustgan preset, channels of the synthetic images, image side)
PRESETS = {"dcgan": ("fmnist-dcgan", 1, 32), "resnet": ("cifar10-resnet", 3, 32)}
#: precision name -> config overrides
PRECISIONS = {
    "fp32": ["train.amp=none", "train.channels_last=false"],
    "bf16cl": ["train.amp=bf16", "train.channels_last=true"],
    "bf16": ["train.amp=bf16", "train.channels_last=false"],
    "auto": None,  # resolved per preset on this machine: auto_precision()
}
PRECISION_LABELS = {"fp32": "fp32", "bf16cl": "bf16 + channels_last", "bf16": "bf16, contiguous",
                    "auto": "auto (resolved on this machine)"}


def auto_precision(preset_key: str) -> tuple[list[str], str]:
    """What ``train.amp=auto train.channels_last=auto`` picks for ``preset_key`` on this CPU:
    (explicit overrides, one-line reasons)."""
    arch = "dcgan" if preset_key == "dcgan" else "resnet"
    cpu = torch.device("cpu")
    bf16, why_amp = resolve_amp("auto", cpu)
    cl, why_cl = resolve_channels_last("auto", cpu, arch, bf16=bf16)
    overrides = [f"train.amp={'bf16' if bf16 else 'none'}", f"train.channels_last={'true' if cl else 'false'}"]
    return overrides, f"{why_amp}; {why_cl}"


def precision_overrides(preset_key: str, precision: str) -> list[str]:
    return auto_precision(preset_key)[0] if precision == "auto" else list(PRECISIONS[precision])
#: (regulariser, reg.every)
CONFIGS = [("none", 1), ("noise", 1), ("gp", 1), ("ar", 1), ("rfm", 1), ("ar", 4), ("rfm", 4)]
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
THREADS = 2


def config_name(reg: str, every: int) -> str:
    return reg if every == 1 else f"{reg}/{every}"


# ----------------------------------------------------------------------------- variants
class GroupNormAsInstanceNorm(nn.GroupNorm):
    """``InstanceNorm2d(C, affine=True)`` computed as ``GroupNorm(C, C)`` (the same function).

    Instance normalisation is group normalisation with one channel per group; ``F.group_norm`` has a
    native CPU kernel (also for channels_last and bf16) and a native double backward, whereas
    ``F.instance_norm`` reshapes the batch to ``(1, B*C, H, W)`` and runs batch norm on it, with a
    ``repeat`` of the affine parameters and a copy of the input (and, for channels_last, a layout
    change) on every call.
    """

    @classmethod
    def from_instance_norm(cls, m: nn.InstanceNorm2d) -> "GroupNormAsInstanceNorm":
        if not m.affine or m.track_running_stats:
            raise ValueError("only affine InstanceNorm2d without running stats is replaced")
        g = cls(m.num_features, m.num_features, eps=m.eps, affine=True)
        with torch.no_grad():
            g.weight.copy_(m.weight)
            g.bias.copy_(m.bias)
        return g


def _replace_instance_norm(module: nn.Module) -> int:
    n = 0
    for name, child in module.named_children():
        if isinstance(child, nn.InstanceNorm2d):
            setattr(module, name, GroupNormAsInstanceNorm.from_instance_norm(child))
            n += 1
        else:
            n += _replace_instance_norm(child)
    return n


def variant_groupnorm(trainer) -> str:
    """Replace D's (and G's) InstanceNorm2d by the equivalent GroupNorm(C, C); rebuild the optimisers."""
    n = _replace_instance_norm(trainer.D) + _replace_instance_norm(trainer.G)
    if trainer.cfg["train"]["channels_last"]:
        trainer.D.to(memory_format=torch.channels_last)
        trainer.G.to(memory_format=torch.channels_last)
    o = trainer.cfg["optim"]
    betas = (o["beta1"], o["beta2"])
    trainer.opt_d = torch.optim.Adam(trainer.D.parameters(), lr=o["lr_d"], betas=betas, weight_decay=o["weight_decay"])
    trainer.opt_g = torch.optim.Adam(trainer.G.parameters(), lr=o["lr_g"], betas=betas, weight_decay=o["weight_decay"])
    return f"{n} InstanceNorm2d -> GroupNorm(C, C)"


M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc <malloc.h>


def variant_mallopt(trainer) -> str:
    """Keep large CPU tensors on glibc's heap: no mmap per allocation, no trimming (process-wide).

    glibc serves every allocation above its mmap threshold (at most 32 MiB on 64-bit) with a fresh
    ``mmap`` and returns it with ``munmap`` when freed, so each such tensor costs a page fault (and the
    kernel zeroing the page) per 4 KiB, on every allocation. The ResNet's fp32 activations at 32x32,
    width 128, batch 64 are 64*128*32*32*4 B = 32 MiB, which with the allocator's header is just above
    that limit (bf16 activations, 16 MiB, are below it). The same effect
    without code: ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647`` in the environment
    (mallopt takes a C int, hence the 2 GiB trim threshold).
    """
    import ctypes
    import ctypes.util
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1
    if not ok:
        raise RuntimeError("mallopt failed (not glibc?)")
    return "glibc mallopt(M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB - 1)"


#: name -> function(trainer) applied after the Trainer is built; returns a description
VARIANTS = {"baseline": None, "groupnorm": variant_groupnorm, "mallopt": variant_mallopt}


# ----------------------------------------------------------------------------- set-up
def synthetic_loader(channels: int, size: int, n: int):
    """A replacement for ``load_training_data``: ``n`` random uint8 images ``(channels, size, size)``."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
    ds = TensorImageDataset(images, name="synthetic", split="train", source="random uint8 (bench_train.py)")

    def load(cfg):
        return ds
    return load


def build_trainer(preset_key: str, precision: str, reg: str, every: int, batch: int, run_dir: Path,
                  variant: str = "baseline"):
    """A Trainer for ``preset_key`` on synthetic data (fresh weights from seed 0)."""
    preset, channels, size = PRESETS[preset_key]
    overrides = precision_overrides(preset_key, precision) + [
        f"reg.name={reg}", f"reg.every={every}", f"train.batch_size={batch}", f"train.threads={THREADS}",
        "train.device=cpu", "optim.d_steps=1", "log.tensorboard=false", "log.progress=false",
    ]
    cfg = resolve(preset, overrides)
    loop.load_training_data = synthetic_loader(channels, size, 4 * batch)
    tr = loop.Trainer(cfg, run_dir, resume=False)
    fn = VARIANTS[variant]
    if fn is not None:
        fn(tr)
    return tr


def timed_iteration(tr) -> tuple[float, float, float, float]:
    """One training iteration as in ``Trainer.fit``; returns (d wall, iteration wall, d cpu, iteration cpu)."""
    w0, c0 = time.perf_counter(), time.process_time()
    tr._set_lr()
    d = tr.d_step()
    w1, c1 = time.perf_counter(), time.process_time()
    g = tr.g_step()
    tr.step += 1
    tr._update_ema()
    w2, c2 = time.perf_counter(), time.process_time()
    for v in (d["loss_d"], g["loss_g"]):
        if not torch.isfinite(v):
            raise RuntimeError("a loss became non-finite during the benchmark")
    return w1 - w0, w2 - w0, c1 - c0, c2 - c0


_PROBE: list = []


def probe() -> float:
    """Seconds for a fixed small workload (4 matmuls 384x384, about 10 ms on an idle core pair).

    Taken before and after every measurement: the machine is shared, and while other processes
    compete for the cores this probe slows by up to 5x or more; its spread is reported as an indicator
    of how disturbed the measurements were.
    """
    if not _PROBE:
        _PROBE.append(torch.randn(384, 384, generator=torch.Generator().manual_seed(0)))
    a = _PROBE[0]
    t0 = time.perf_counter()
    for _ in range(4):
        a @ a
    return time.perf_counter() - t0


def other_runnable_threads() -> int | None:
    """Runnable threads of other processes right now (Linux: /proc/stat procs_running minus ours); None elsewhere."""
    try:
        running = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                       if line.startswith("procs_running"))
        own = 0
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/self/task/{task}/stat").read_text()
                own += stat[stat.rindex(")") + 2] == "R"
        return max(0, running - own)
    except (OSError, StopIteration, ValueError):
        return None


class ContentionMonitor:
    """Samples :func:`other_runnable_threads` every ``interval`` s in a background thread.

    ``fraction`` is the share of samples in which another process had a runnable thread, i.e. competed
    with the benchmark's 2 threads for the 2 cores. (With 2 OpenMP threads, one preempted thread
    stalls the other at every parallel region: fine-grained work such as the Adam step then slows
    by 100x, convolutions by 3-10x.)
    """

    def __init__(self, interval: float = 0.05):
        self.interval, self.samples, self._stop = interval, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.interval):
            n = other_runnable_threads()
            if n is not None:
                self.samples.append(n)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def fraction(self) -> float:
        return sum(n > 0 for n in self.samples) / len(self.samples) if self.samples else float("nan")


def wait_for_quiet(max_wait: float, settle: int = 5) -> float:
    """Sleep until no other process has a runnable thread for ``settle`` checks 0.1 s apart (at most ``max_wait`` s)."""
    t0, quiet = time.perf_counter(), 0
    while max_wait > 0 and time.perf_counter() - t0 < max_wait and quiet < settle:
        n = other_runnable_threads()
        quiet = quiet + 1 if n == 0 else 0
        time.sleep(0.1)
    return time.perf_counter() - t0


def measure(tr, every: int, quiet_wait: float = 0.0) -> tuple[float, ...]:
    """Mean over ``every`` consecutive iterations (one of which carries the penalty), and disturbance measures.

    Returns (d wall, iteration wall, d cpu, iteration cpu, slower of the two probes, contention fraction).
    """
    wait_for_quiet(quiet_wait)
    before = probe()
    sums = [0.0, 0.0, 0.0, 0.0]
    with ContentionMonitor() as mon:
        for _ in range(every):
            for i, v in enumerate(timed_iteration(tr)):
                sums[i] += v
    after = probe()
    return tuple(s / every for s in sums) + (max(before, after), mon.fraction)


# ----------------------------------------------------------------------------- timing
def run_timing(preset_key: str, precisions: list[str], repeats: int, batch: int, variant: str,
               quiet_wait: float = 0.0, log=print) -> dict:
    """Times every (precision, configuration); returns {(precision, name): {"d": [...], ...}}."""
    results: dict = defaultdict(lambda: defaultdict(list))
    with tempfile.TemporaryDirectory(prefix="bench_train-") as tmp:
        jobs = []
        for prec in precisions:
            for reg, every in CONFIGS:
                name = config_name(reg, every)
                tr = build_trainer(preset_key, prec, reg, every, batch, Path(tmp) / f"{prec}-{reg}-{every}", variant)
                jobs.append((prec, name, every, tr))
        t0 = time.perf_counter()
        for prec, name, every, tr in jobs:
            # Warm-up: one iteration per configuration applied at every step (oneDNN primitives, the
            # allocator's caches and Adam's state are then in place; lazy configurations run the same
            # code and shapes, so they share this warm-up and start at d_iter 0).
            if every == 1:
                timed_iteration(tr)
        log(f"  [{preset_key}] warm-up done in {time.perf_counter() - t0:.0f} s")
        for r in range(repeats):
            t0 = time.perf_counter()
            shift = (r * len(jobs)) // max(repeats, 1)
            order = jobs[shift:] + jobs[:shift]
            for prec, name, every, tr in order:
                dw, iw, dc, ic, pr, busy = measure(tr, every, quiet_wait)
                res = results[(prec, name)]
                res["d"].append(dw)
                res["it"].append(iw)
                res["d_cpu"].append(dc)
                res["it_cpu"].append(ic)
                res["probe"].append(pr)
                res["busy"].append(busy)
                res["round"].append(r)
            log(f"  [{preset_key}] round {r + 1}/{repeats} done in {time.perf_counter() - t0:.0f} s "
                f"(load {os.getloadavg()[0]:.2f})")
    return results


def med(xs) -> float:
    return statistics.median(xs)


def ratio_stats(results, a, b, key: str) -> tuple[float, float, float]:
    """(median(a) / median(b), min and max over rounds of a_r / b_r)."""
    ra, rb = results[a][key], results[b][key]
    per_round = [x / y for x, y in zip(ra, rb)]
    return med(ra) / med(rb), min(per_round), max(per_round)


# ----------------------------------------------------------------------------- profile
class PhaseClock:
    """Accumulates wall time per labelled phase; nested phases count towards the outermost one."""

    def __init__(self):
        self.acc: dict = defaultdict(float)
        self.depth = 0

    @contextlib.contextmanager
    def phase(self, label: str):
        if self.depth:
            yield
            return
        self.depth += 1
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.depth -= 1
            self.acc[label] += time.perf_counter() - t0


PHASES = ["G forward (fake batch, no grad)", "D forward: fake", "D forward: real",
          "input-gradient backward (attack / gp)", "D forward: penalty input (x+v or x_hat)",
          "final backward (loss + penalty)", "optimiser step", "other"]


@contextlib.contextmanager
def instrumented(tr, clock: PhaseClock):
    """Wrap G.forward, D.features, torch.autograd.grad, Tensor.backward and opt_d.step with timers."""
    calls = {"features": 0}
    g_forward, d_features, opt_step = tr.G.forward, tr.D.features, tr.opt_d.step
    autograd_grad, tensor_backward = torch.autograd.grad, torch.Tensor.backward
    d_labels = ["D forward: fake", "D forward: real", "D forward: penalty input (x+v or x_hat)"]

    def G_forward(*a, **k):
        with clock.phase(PHASES[0]):
            return g_forward(*a, **k)

    def D_features(*a, **k):
        label = d_labels[min(calls["features"], 2)]
        calls["features"] += 1
        with clock.phase(label):
            return d_features(*a, **k)

    def grad(*a, **k):
        with clock.phase(PHASES[3]):
            return autograd_grad(*a, **k)

    def backward(self, *a, **k):
        with clock.phase(PHASES[5]):
            return tensor_backward(self, *a, **k)

    def step(*a, **k):
        with clock.phase(PHASES[6]):
            return opt_step(*a, **k)

    tr.G.forward, tr.D.features, tr.opt_d.step = G_forward, D_features, step
    torch.autograd.grad, torch.Tensor.backward = grad, backward
    try:
        yield calls
    finally:
        for obj, attr in ((tr.G, "forward"), (tr.D, "features"), (tr.opt_d, "step")):
            del obj.__dict__[attr]
        torch.autograd.grad, torch.Tensor.backward = autograd_grad, tensor_backward


def profile_phases(preset_key: str, precision: str, regs: list[str], batch: int, steps: int, variant: str,
                   log=print) -> dict:
    """{reg: {phase: median seconds}} for one D step (reg every step), plus 'total'."""
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench_train-prof-") as tmp:
        trainers = {reg: build_trainer(preset_key, precision, reg, 1, batch, Path(tmp) / reg, variant) for reg in regs}
        for tr in trainers.values():
            tr.d_step()  # warm-up
        samples: dict = {reg: defaultdict(list) for reg in regs}
        for _ in range(steps):  # round-robin over regularisers
            for reg, tr in trainers.items():
                clock = PhaseClock()
                with instrumented(tr, clock) as calls:
                    t0 = time.perf_counter()
                    tr.d_step()
                    total = time.perf_counter() - t0
                calls["features"] = 0
                for p in PHASES[:-1]:
                    samples[reg][p].append(clock.acc.get(p, 0.0))
                samples[reg]["other"].append(total - sum(clock.acc.values()))
                samples[reg]["total"].append(total)
        for reg in regs:
            out[reg] = {k: med(v) for k, v in samples[reg].items()}
        log(f"  [{preset_key}] phase profile done")
        out["_ops"] = {reg: op_counts(trainers[reg]) for reg in regs}
    return out


#: operator / autograd-node names counted in one D step
OP_ROWS = [
    ("aten::convolution", "conv forward calls (aten::convolution)"),
    ("autograd::engine::evaluate_function: ConvolutionBackward0", "conv backward nodes (ConvolutionBackward0)"),
    ("autograd::engine::evaluate_function: ConvolutionBackwardBackward0", "conv double-backward nodes"),
    ("autograd::engine::evaluate_function: NativeBatchNormBackward0", "instance-norm backward nodes (as batch norm)"),
    ("autograd::engine::evaluate_function: NativeBatchNormBackwardBackward0", "instance-norm double-backward nodes"),
    ("autograd::engine::evaluate_function: NativeGroupNormBackward0", "group-norm backward nodes"),
    ("autograd::engine::evaluate_function: NativeGroupNormBackwardBackward0", "group-norm double-backward nodes"),
]


def op_counts(tr) -> dict:
    """Counts and total CPU ms of selected operators in one D step (torch.profiler), plus the top 8 by self time."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        tr.d_step()
    events = prof.key_averages()
    by_name = {e.key: e for e in events}
    counts = {}
    for key, _ in OP_ROWS:
        e = by_name.get(key)
        counts[key] = (e.count, e.cpu_time_total / 1000.0) if e is not None else (0, 0.0)
    total_self = sum(e.self_cpu_time_total for e in events) / 1000.0
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
    counts["_top"] = [(e.key, e.count, e.self_cpu_time_total / 1000.0) for e in top]
    counts["_total_self_ms"] = total_self
    return counts


# ----------------------------------------------------------------------------- FLOPs
class _ConvFlops(TorchDispatchMode):
    """Counts matmul/convolution FLOPs (forward and backward, any order) with torch's flop formulas."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def count_flops(preset_key: str, batch: int, variant: str, small_batch: int = 8) -> dict:
    """GFLOP (convolutions and matmuls) per D step and per iteration, for every configuration.

    Counted once on fp32 trainers at ``small_batch`` and scaled by ``batch / small_batch`` (these FLOPs
    are linear in the batch; autocast and the memory format do not change them). Lazy configurations:
    the mean over 4 consecutive steps. Returns {name: (d GFLOP, iteration GFLOP)}.
    """
    out = {}
    scale = batch / small_batch / 1e9
    with tempfile.TemporaryDirectory(prefix="bench_train-flops-") as tmp:
        for reg, every in CONFIGS:
            tr = build_trainer(preset_key, "fp32", reg, every, small_batch, Path(tmp) / f"{reg}-{every}", variant)
            d = it = 0
            for _ in range(every):
                with _ConvFlops() as fd:
                    tr.d_step()
                with _ConvFlops() as fg:
                    tr.g_step()
                d += fd.total
                it += fd.total + fg.total
            out[config_name(reg, every)] = (d * scale / every, it * scale / every)
    return out


# ----------------------------------------------------------------------------- report
def machine_description() -> str:
    m = describe_machine()
    return (f"{m['cpu']}, {m['cores_available']} cores available, cpu capability {m['cpu_capability']}, native bf16 "
            f"{'yes' if m['cpu_native_bf16'] else 'no'} ({m['cpu_bf16_reason']}); Python {platform.python_version()}, "
            f"torch {m['torch']}, torch threads {torch.get_num_threads()}")


def fmt(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.2f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def preset_report(preset_key: str, results: dict, flops: dict | None, precisions: list[str],
                  repeats: int) -> list[str]:
    preset, channels, size = PRESETS[preset_key]
    probes = sorted(p for r in results.values() for p in r["probe"])
    busy = [b for r in results.values() for b in r["busy"] if b == b]
    lines = [f"### {preset_key}: preset `{preset}` ({size}x{size}x{channels}), {repeats} rounds", "",
             "Wall-clock seconds over the rounds: median and minimum. ar/4 and rfm/4: mean over 4 consecutive "
             "steps, one of which carries the penalty (scaled by 4). Iteration = D step + G step + EMA update. "
             "Machine-noise indicator: a fixed probe workload timed before and after every sample took "
             f"{probes[0] * 1000:.1f} ms at best, {med(probes) * 1000:.1f} ms median, {probes[-1] * 1000:.1f} ms "
             "at worst" + (f"; another process had a runnable thread during {100 * med(busy):.0f}% of a sample's "
                          f"time (median over samples; {100 * min(busy):.0f}% to {100 * max(busy):.0f}%)"
                          if busy else "") + ".", ""]
    for p in precisions:
        lines += [f"{PRECISION_LABELS[p]}:", "",
                  "| configuration | D step median | D step min | D step / none (median; min) "
                  "| iteration median | iteration min | GFLOP per D step (ratio to none) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        n = results[(p, "none")]
        for reg, every in CONFIGS:
            name = config_name(reg, every)
            r = results[(p, name)]
            fl = f"{flops[name][0]:.1f} ({flops[name][0] / flops['none'][0]:.3f})" if flops else ""
            lines.append(f"| {name} | {fmt(med(r['d']))} | {fmt(min(r['d']))} | "
                         f"{med(r['d']) / med(n['d']):.2f}; {min(r['d']) / min(n['d']):.2f} | "
                         f"{fmt(med(r['it']))} | {fmt(min(r['it']))} | {fl} |")
        lines.append("")
    if "fp32" in precisions and "bf16cl" in precisions:
        lines += ["Speed-up of bf16 + channels_last over fp32 (fp32 time / bf16cl time; from medians, and from "
                  "minimums):", "",
                  "| configuration | D step (median; min) | iteration (median; min) |", "|---|---:|---:|"]
        for reg, every in CONFIGS:
            name = config_name(reg, every)
            a, b = results[("fp32", name)], results[("bf16cl", name)]
            lines.append(f"| {name} | {med(a['d']) / med(b['d']):.2f}; {min(a['d']) / min(b['d']):.2f} | "
                         f"{med(a['it']) / med(b['it']):.2f}; {min(a['it']) / min(b['it']):.2f} |")
        lines.append("")
    lines += ["Process CPU seconds (both threads together; median over rounds), a cross-check:", "",
              "| configuration |" + "".join(f" D step, {p} | iteration, {p} |" for p in precisions),
              "|---|" + "---:|---:|" * len(precisions)]
    for reg, every in CONFIGS:
        name = config_name(reg, every)
        lines.append(f"| {name} |" + "".join(
            f" {fmt(med(results[(p, name)]['d_cpu']))} | {fmt(med(results[(p, name)]['it_cpu']))} |"
            for p in precisions))
    lines.append("")
    return lines


def _pair(results, a, b, key):
    """Ratios of a over b: (of medians, of minimums, and the min and max of the per-round ratios)."""
    ra, rb = results[a][key], results[b][key]
    per_round = [x / y for x, y in zip(ra, rb)]
    return med(ra) / med(rb), min(ra) / min(rb), (min(per_round), max(per_round))


def targets_report(preset_key: str, results: dict, flops: dict | None, precisions: list[str]):
    """The issue's targets, per precision; returns (lines, rows of (label, precision, med, min, ok_med, ok_min))."""
    rows = []  # (label, precision, (r_med, r_min, (lo, hi)), flop ratio, limit, at_most)
    for prec in precisions:
        for reg in ("ar", "rfm"):
            rows.append((f"{reg} D step <= 1.6x none", prec, _pair(results, (prec, reg), (prec, "none"), "d"),
                         flops[reg][0] / flops["none"][0] if flops else None, 1.6, True))
        for reg in ("ar", "rfm"):
            rows.append((f"{reg}/4 D step (mean of 4) <= 1.2x none", prec,
                         _pair(results, (prec, f"{reg}/4"), (prec, "none"), "d"),
                         flops[f"{reg}/4"][0] / flops["none"][0] if flops else None, 1.2, True))
        rows.append(("gp D step / rfm D step >= 1.4", prec, _pair(results, (prec, "gp"), (prec, "rfm"), "d"),
                     flops["gp"][0] / flops["rfm"][0] if flops else None, 1.4, False))
    if "fp32" in precisions and "bf16cl" in precisions:
        for name in ("rfm", "none"):
            for key, what in (("it", "iteration"), ("d", "D step")):
                rows.append((f"fp32 / bf16cl, {name} {what} >= 1.8", "both",
                             _pair(results, ("fp32", name), ("bf16cl", name), key), None, 1.8, False))
    lines = [f"#### Targets: {preset_key}", "",
             "| target | precision | ratio of medians | verdict | ratio of minimums | verdict | per-round ratios "
             "(range) | FLOP ratio |", "|---|---|---:|---|---:|---|---:|---:|"]
    out = []
    for label, prec, (r_med, r_min, (lo, hi)), r_flop, limit, at_most in rows:
        ok_med = r_med <= limit if at_most else r_med >= limit
        ok_min = r_min <= limit if at_most else r_min >= limit
        fl = "" if r_flop is None else f"{r_flop:.3f}"
        rq = f"{lo:.2f}-{hi:.2f}"
        lines.append(f"| {label} | {prec} | {r_med:.2f} | {verdict(ok_med)} | {r_min:.2f} | {verdict(ok_min)} | "
                     f"{rq} | {fl} |")
        out.append((label, prec, r_med, r_min, ok_med, ok_min))
    lines.append("")
    return lines, out


def profile_report(preset_key: str, prof: dict, precision: str, steps: int) -> list[str]:
    regs = [r for r in prof if not r.startswith("_")]
    lines = [f"### Phase profile of one D step: {preset_key}, {PRECISION_LABELS[precision]} "
             f"(median of {steps} steps, wall ms)", "",
             "| phase |" + "".join(f" {r} |" for r in regs), "|---|" + "---:|" * len(regs)]
    for p in PHASES + ["total"]:
        lines.append(f"| {p} |" + "".join(f" {prof[r].get(p, 0.0) * 1000:.0f} |" for r in regs))
    lines.append("| total / none |" + "".join(f" {prof[r]['total'] / prof['none']['total']:.2f} |" for r in regs))
    lines += ["", "Operator counts in one D step (torch.profiler; count, and inclusive CPU ms):", "",
              "| operator |" + "".join(f" {r} |" for r in regs), "|---|" + "---|" * len(regs)]
    ops = prof["_ops"]
    for key, label in OP_ROWS:
        if all(ops[r][key][0] == 0 for r in regs):
            continue
        lines.append(f"| {label} |" + "".join(f" {ops[r][key][0]} ({ops[r][key][1]:.0f} ms) |" for r in regs))
    lines.append("| total self CPU ms (profiled step) |" + "".join(f" {ops[r]['_total_self_ms']:.0f} |" for r in regs))
    lines += ["", "Top operators by self CPU time in the profiled D step:", ""]
    for r in regs:
        top = ", ".join(f"`{k.replace('autograd::engine::evaluate_function: ', '')}` x{c} {ms:.0f} ms"
                        for k, c, ms in ops[r]["_top"])
        lines.append(f"- {r}: {top}")
    lines.append("")
    return lines


def write_report(out: Path, body: list[str]) -> None:
    block = BEGIN + "\n" + "\n".join(body).rstrip() + "\n" + END
    if out.exists():
        text = out.read_text()
        if BEGIN in text and END in text:
            pre, rest = text.split(BEGIN, 1)
            post = rest.split(END, 1)[1]
            out.write_text(pre + block + post)
            return
        out.write_text(text.rstrip() + "\n\n" + block + "\n")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# Training speed\n\n" + block + "\n")


# ----------------------------------------------------------------------------- main
#: timed rounds per preset when --repeats is not given (a ResNet round takes minutes on 2 cores)
DEFAULT_REPEATS = {"dcgan": 7, "resnet": 3}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="dcgan,resnet", help="comma list of: " + ", ".join(PRESETS))
    p.add_argument("--repeats", type=int, default=None,
                   help="timed rounds per preset (default: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_REPEATS.items()) + ")")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--precisions", default="fp32,bf16cl", help="comma list of: " + ", ".join(PRECISIONS))
    p.add_argument("--profile", action="store_true", help="add the phase profile of one D step")
    p.add_argument("--profile-presets", default=None, help="presets to profile (default: --presets)")
    p.add_argument("--profile-precisions", default="fp32", help="precisions to profile (default fp32)")
    p.add_argument("--profile-steps", type=int, default=2, help="profiled D steps per regulariser (default 2)")
    p.add_argument("--no-timing", action="store_true", help="skip the timing rounds (profile only)")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    p.add_argument("--quiet-wait", type=float, default=0.0,
                   help="before each sample, wait up to this many seconds for no other runnable process (default 0)")
    p.add_argument("--variant", default="baseline", choices=sorted(VARIANTS),
                   help="monkeypatched library change to time (default baseline: the library as is)")
    p.add_argument("--out", default="docs/benchmarks/training.md", help="Markdown report ('-': print only)")
    p.add_argument("--quick", action="store_true",
                   help="check the script: dcgan, 1 round, precision auto, no FLOP count, print only")
    args = p.parse_args(argv)
    if args.quick:
        args.presets, args.repeats, args.precisions, args.no_flops, args.out = "dcgan", 1, "auto", True, "-"

    def names(text, valid, what):
        out = [t.strip() for t in text.split(",") if t.strip()]
        for t in out:
            if t not in valid:
                p.error(f"unknown {what} {t!r}; choose from {', '.join(valid)}")
        return out

    args.presets = names(args.presets, PRESETS, "preset")
    args.precisions = names(args.precisions, PRECISIONS, "precision")
    args.profile_presets = names(args.profile_presets, PRESETS, "preset") if args.profile_presets else args.presets
    args.profile_precisions = names(args.profile_precisions, PRECISIONS, "precision")
    if (args.repeats is not None and args.repeats < 1) or args.batch < 1 or args.profile_steps < 1:
        p.error("--repeats, --batch and --profile-steps must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(THREADS)
    original_loader = loop.load_training_data
    started = _dt.datetime.now().astimezone()
    load_start = os.getloadavg()
    t_start = time.perf_counter()
    command = "python benchmarks/bench_train.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"{command}\n{machine_description()}\nload average at start: {load_start}", flush=True)
    for key in args.presets:
        print(f"precision auto for {key}: {' '.join(auto_precision(key)[0])} ({auto_precision(key)[1]})", flush=True)
    sections: list[str] = []
    summary: list[tuple] = []
    loads = []
    try:
        if not args.no_timing:
            for key in args.presets:
                repeats = args.repeats or DEFAULT_REPEATS[key]
                flops = None
                if not args.no_flops:
                    print(f"counting FLOPs {key} ...", flush=True)
                    flops = count_flops(key, args.batch, args.variant)
                print(f"timing {key} ({repeats} rounds) ...", flush=True)
                t0, l0 = time.perf_counter(), os.getloadavg()[0]
                res = run_timing(key, args.precisions, repeats, args.batch, args.variant, args.quiet_wait)
                loads.append(f"{key}: load {l0:.2f} -> {os.getloadavg()[0]:.2f}, {(time.perf_counter() - t0) / 60:.1f} min")
                sections += preset_report(key, res, flops, args.precisions, repeats)
                lines, rows = targets_report(key, res, flops, args.precisions)
                sections += lines
                summary += [(key,) + r for r in rows]
        if args.profile:
            for key in args.profile_presets:
                for prec in args.profile_precisions:
                    print(f"profiling {key} {prec} ...", flush=True)
                    prof = profile_phases(key, prec, ["none", "gp", "ar", "rfm"], args.batch, args.profile_steps,
                                          args.variant)
                    sections += profile_report(key, prof, prec, args.profile_steps)
    finally:
        loop.load_training_data = original_loader
    load_end = os.getloadavg()
    elapsed = time.perf_counter() - t_start
    body = [f"Generated by `{command}` on {started:%Y-%m-%d %H:%M %Z} in {elapsed / 60:.1f} min.", "",
            f"- Machine: {machine_description()}.",
            *[f"- Precision `auto` for {key}: {' '.join(auto_precision(key)[0])} ({auto_precision(key)[1]})."
              for key in args.presets],
            f"- Load average (1, 5, 15 min) at start: {', '.join(f'{x:.2f}' for x in load_start)}; at end: "
            f"{', '.join(f'{x:.2f}' for x in load_end)}. Other processes share these 2 cores"
            + (f" ({'; '.join(loads)})." if loads else "."),
            f"- Batch {args.batch}; torch threads {THREADS}; variant `{args.variant}`"
            + ("" if args.variant == "baseline" else " (monkeypatched; see the script)") + ".", ""]
    if summary:
        body += ["Targets (wall-clock; ratio of medians, and of minimums in brackets):", ""]
        for key, label, prec, r_med, r_min, ok_med, ok_min in summary:
            body.append(f"- {key}, {prec}: {label}: {r_med:.2f} ({r_min:.2f}): "
                        f"{verdict(ok_med)} ({verdict(ok_min)})")
        body.append("")
    body += sections
    print("\n".join(body), flush=True)
    if args.out != "-":
        write_report(Path(args.out), body)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
