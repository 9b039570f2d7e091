"""What this machine can do fast: native bf16, the faster memory format, how many threads to use.

Every ``resolve_*`` function turns a setting (``"auto"`` or an explicit value) into the value to use
and a one-line reason meant for ``log.txt`` and the run's resolved options, e.g.
``resolve_amp("auto", torch.device("cpu"))`` ->
``(False, "amp auto: fp32 (no native bf16 on this CPU: oneDNN reports no bf16 support; cpu capability AVX2)")``.

Why this matters: bf16 autocast on a CPU without AVX512-BF16 / AMX is emulated by oneDNN and was
measured 17-20x slower than fp32 per convolution (docs/benchmarks/training.md), while on a CPU
with avx512_bf16 it is faster than fp32. A preset tuned on one machine must not be slow on another.

The detection reads torch (``torch.cuda``, ``torch.backends.cpu``, ``torch.ops.mkldnn``) and
``/proc/cpuinfo``; the functions below that take no measurement are pure functions of those answers,
so tests replace :func:`cpu_flags`, :func:`mkldnn_bf16` or :func:`available_cores` to simulate
another machine.
"""
from __future__ import annotations

import functools
import os
import platform
import time
from pathlib import Path

import torch

__all__ = [
    "available_cores",
    "cpu_flags",
    "cpu_model",
    "mkldnn_bf16",
    "native_bf16",
    "bf16_cost",
    "resolve_amp",
    "resolve_channels_last",
    "resolve_threads",
    "describe_machine",
]

#: /proc/cpuinfo flags that give a CPU native bf16 matrix arithmetic
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


# ------------------------------------------------------------------------------------------ detection
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (first processor), or None where it cannot be read."""
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo 'model name', else platform.processor())."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_capability() -> str:
    """The vector instruction set torch's CPU kernels dispatch to: 'AVX2', 'AVX512', 'DEFAULT', ..."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # noqa: BLE001 -- an old torch; only used in messages
        return "unknown"


def mkldnn_bf16() -> bool | None:
    """oneDNN's own answer to "are bf16 kernels native here?" (None: this torch cannot tell).

    This is the answer that decides the speed: oneDNN runs the bf16 convolutions and matmuls, and it
    also honours ``ONEDNN_MAX_CPU_ISA`` (so ``ONEDNN_MAX_CPU_ISA=AVX2`` makes an avx512_bf16 CPU
    behave, and answer, like an AVX2-only one).
    """
    fn = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    if fn is None:
        return None
    try:
        return bool(fn())
    except Exception:  # noqa: BLE001 -- a build without oneDNN
        return None


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; os.cpu_count() where affinity is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _device(device) -> torch.device:
    return device if isinstance(device, torch.device) else torch.device(device)


def native_bf16(device) -> tuple[bool, str]:
    """Whether ``device`` computes bf16 natively (fast), and why.

    CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere and newer). CPU: oneDNN's bf16 support; where
    torch cannot say, the avx512_bf16 / amx_bf16 flags in /proc/cpuinfo.
    """
    dev = _device(device)
    if dev.type == "cuda":
        ok = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        name = torch.cuda.get_device_name(dev) if torch.cuda.is_available() else "no CUDA device"
        return ok, f"{name} {'supports' if ok else 'has no'} native bf16"
    if dev.type != "cpu":
        return False, f"native bf16 unknown for device type {dev.type}"
    flags = cpu_flags()
    have = [f for f in BF16_FLAGS if flags and f in flags]
    cap = cpu_capability()
    onednn = mkldnn_bf16()
    if onednn is not None:
        ok = onednn
        why = f"oneDNN reports {'native' if ok else 'no'} bf16 support"
    else:
        ok = bool(have)
        why = "CPU flags " + (", ".join(have) if have else "lack avx512_bf16 / amx_bf16")
    return ok, f"{why}; cpu capability {cap}" + (f"; flags {', '.join(have)}" if have and onednn is not None else "")


# ------------------------------------------------------------------------------------------ measuring
@functools.lru_cache(maxsize=None)
def _measured_bf16_cost(device_type: str) -> float:
    """bf16-autocast time / fp32 time of a small convolution (forward + backward) on this device.

    A 64-channel 3x3 convolution on 8 images of 16x16, forward and backward, best of 2 after a warm-up:
    about 0.4 s on a 2-core CPU without native bf16 (emulated bf16 being the slow side, 15-30x fp32
    there), a few ms elsewhere; measured once per process.
    """
    dev = torch.device(device_type)
    g = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(dev)
    x = torch.randn(8, 64, 16, 16, generator=g).to(dev).requires_grad_(True)

    def run(bf16: bool, reps: int = 2) -> float:
        best = float("inf")
        for _ in range(reps + 1):  # the first call builds oneDNN's primitives: not timed
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                y = conv(x)
            y.float().sum().backward()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            best = min(best, time.perf_counter() - t0)
        return best

    fp32 = run(False)
    return run(True) / max(fp32, 1e-9)


def bf16_cost(device) -> float:
    """Measured ratio bf16-autocast time / fp32 time on ``device`` (cached; see :func:`_measured_bf16_cost`)."""
    return _measured_bf16_cost(_device(device).type)


# ------------------------------------------------------------------------------------------ resolving
AMP_CHOICES = ("auto", "none", "bf16")


def resolve_amp(requested: str, device) -> tuple[bool, str]:
    """``train.amp`` -> (use bf16 autocast, one-line reason).

    ``auto``: bf16 only where the device has native bf16. ``none``: fp32. ``bf16``: bf16 even without
    native support (the reason is then a warning with the measured slow-down). Raises ValueError for
    any other value.
    """
    if requested not in AMP_CHOICES:
        raise ValueError(f"train.amp={requested!r} is not valid; choose one of {', '.join(AMP_CHOICES)}")
    dev = _device(device)
    if requested == "none":
        return False, "amp none: fp32"
    native, why = native_bf16(dev)
    where = "GPU" if dev.type == "cuda" else "CPU"
    if requested == "auto":
        if native:
            return True, f"amp auto: bf16 autocast ({why})"
        return False, f"amp auto: fp32 (no native bf16 on this {where}: {why})"
    if native:
        return True, f"amp bf16: bf16 autocast ({why})"
    if dev.type == "cuda":
        # torch.autocast itself refuses bf16 on such a GPU; say so before a traceback would
        return True, f"warning: amp bf16 requested but this GPU has no native bf16 ({why}); use train.amp=auto"
    cost = bf16_cost(dev)
    return True, (f"warning: amp bf16 requested but this CPU has no native bf16 ({why}): bf16 is emulated, "
                  f"measured {cost:.0f}x the fp32 time of a convolution here; train.amp=auto uses fp32")


CHANNELS_LAST_CHOICES = ("auto", True, False)


def _as_choice(value):
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        return low
    return value


def resolve_channels_last(requested, device, arch: str, bf16: bool = False) -> tuple[bool, str]:
    """``train.channels_last`` -> (use channels_last memory format, one-line reason).

    ``arch``: ``model.arch`` (``mlp`` has no images: always False). ``bf16``: whether bf16 autocast
    is used (the resolved ``train.amp``). The auto rule follows the measurements in
    docs/benchmarks/training.md ("Memory format", batch 64, one thread):

    * CUDA: channels_last (tensor-core convolutions want NHWC, most of all in bf16);
    * CPU, dcgan: channels_last (fp32: D and G steps 4-6% faster at width 64, equal at width 32;
      native bf16: D 5% faster, G equal);
    * CPU, resnet: contiguous (fp32: channels_last 20% slower at width 32, equal within 4% at 128;
      native bf16, width 32: D 23% and G 43% slower).
    """
    choice = _as_choice(requested)
    if choice not in CHANNELS_LAST_CHOICES:
        raise ValueError(f"train.channels_last={requested!r} is not valid; choose auto, true or false")
    if arch == "mlp":
        return False, "channels_last: off (2-D data, no images)"
    if choice != "auto":
        return bool(choice), f"channels_last {str(bool(choice)).lower()}: as requested"
    dev = _device(device)
    if dev.type == "cuda":
        return True, "channels_last auto: on (CUDA convolutions run fastest in NHWC)"
    precision = "bf16" if bf16 else "fp32"
    if arch == "dcgan":
        return True, f"channels_last auto: on (measured a few per cent faster for the DCGAN on the CPU; {precision})"
    return False, f"channels_last auto: off (contiguous measured as fast or faster for {arch} on the CPU; {precision})"


def resolve_threads(requested, runs_in_parallel: int = 1) -> tuple[int, str]:
    """``train.threads`` -> (torch CPU threads, one-line reason); 0 means "leave torch's default".

    ``auto``: the cores this process may use (``os.sched_getaffinity``) divided by the runs sharing
    them, at least 1 (two runs with as many threads as cores each slow each other down: the
    oversubscription section of docs/benchmarks/training.md). A positive int is taken as is; 0
    keeps torch's default. Raises ValueError for anything else.
    """
    if runs_in_parallel < 1:
        raise ValueError(f"runs_in_parallel must be >= 1, got {runs_in_parallel}")
    if isinstance(requested, str) and requested.strip().lower() == "auto":
        cores = available_cores()
        n = max(1, cores // runs_in_parallel)
        share = f" shared by {runs_in_parallel} runs" if runs_in_parallel > 1 else ""
        return n, f"threads auto: {n} ({cores} cores available{share})"
    try:
        if isinstance(requested, bool) or (isinstance(requested, float) and not requested.is_integer()):
            raise ValueError
        n = int(requested)
    except (TypeError, ValueError):
        raise ValueError(f"train.threads={requested!r} is not valid; use auto, 0 (torch's default) "
                         f"or a positive number of threads") from None
    if n < 0:
        raise ValueError(f"train.threads={n} is not valid; use auto, 0 (torch's default) or a positive number")
    if n == 0:
        return 0, f"threads 0: torch's default ({torch.get_num_threads()})"
    return n, f"threads {n}: as requested"


def describe_machine() -> dict:
    """Facts for logs and benchmark headers: CPU model, capability, cores, native bf16, torch, CUDA device."""
    native, why = native_bf16(torch.device("cpu"))
    cuda = None
    if torch.cuda.is_available():
        cuda = torch.cuda.get_device_name(0)
    return {
        "cpu": cpu_model(),
        "cpu_capability": cpu_capability(),
        "cores_available": available_cores(),
        "cpu_native_bf16": native,
        "cpu_bf16_reason": why,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_device": cuda,
    }


def parse_device(name: str):
    """"auto" -> cuda when available, else cpu; a cuda device without CUDA is a ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} but CUDA is not available; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r}: use auto, cpu, cuda or cuda:N")
    return dev
