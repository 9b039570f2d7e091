"""Timing of the metrics on this machine; writes docs/benchmarks/metrics.md.

    .venv/bin/python benchmarks/bench_metrics.py            # default sizes (2-3 minutes on 2 cores)
    .venv/bin/python benchmarks/bench_metrics.py --quick    # small sizes, about a minute

Measures:
* Frechet distance at 2048-d: the eigen route (pivoted Cholesky + eigvalsh, the default) against
  scipy.linalg.sqrtm of the product (pytorch-fid's route), full-rank and rank-deficient covariances;
* KID (cubic kernel, float64) and improved precision/recall (k = 3, float32) on N x 2048 features;
* feature extraction throughput: FID Inception-v3 (random weights: the speed does not depend on them)
  at batch 32 from 32x32 uint8 images (resized to 299), and the Fashion-MNIST classifier if present.
Numbers are timings, never asserted anywhere.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from robustgan.metrics.frechet import feature_statistics, frechet_distance, frechet_distance_sqrtm
from robustgan.metrics.kid import kid
from robustgan.metrics.precision_recall import precision_recall

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, repeat=1):
    """(best wall time over ``repeat`` runs, result); see also the ``spread`` attribute (slowest run)."""
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    timed.spread = max(times)
    return min(times), out


def fmt(t, repeat):
    return f"{t:.2f} s" if repeat == 1 else f"{t:.2f} s (best of {repeat}, slowest {timed.spread:.2f} s)"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} CPU cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
            f"numpy {np.__version__}; 1-minute load average at start {load:.1f}")


def bench_frechet(rows, d, n_full, n_deficient, sqrtm_deficient=True):
    rng = np.random.default_rng(0)
    for label, n in (("full rank", n_full), ("rank-deficient", n_deficient)):
        skip_sqrtm = label == "rank-deficient" and not sqrtm_deficient
        mix = rng.normal(size=(d, d)) / np.sqrt(d)
        a = rng.normal(size=(n, d)) @ mix
        b = rng.normal(size=(n, d)) @ mix * 1.1 + 0.05
        mu1, s1 = feature_statistics(a)
        mu2, s2 = feature_statistics(b)
        t_eig, fd_eig = timed(lambda: frechet_distance(mu1, s1, mu2, s2), repeat=3)
        rows.append((f"Frechet distance, eigen route, {d}-d, {label} (N={n})", fmt(t_eig, 3), f"FD={fd_eig:.6g}"))
        print(rows[-1], flush=True)
        if not skip_sqrtm:
            t_sq, fd_sq = timed(lambda: frechet_distance_sqrtm(mu1, s1, mu2, s2))
            rel = abs(fd_eig - fd_sq) / abs(fd_sq)
            rows.append((f"Frechet distance, scipy sqrtm route, {d}-d, {label} (N={n})", fmt(t_sq, 1),
                         f"FD={fd_sq:.6g}; relative difference {rel:.1e}"))
            print(rows[-1], flush=True)


def bench_kid_pr(rows, n, d, kid_subsets, pr_n):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    y = torch.randn(n, d, generator=g) + 0.05
    t, (m, s) = timed(lambda: kid(x, y, num_subsets=kid_subsets, subset_size=1000))
    rows.append((f"KID, {n} x {d}, {kid_subsets} subsets of 1000, float64", f"{t:.2f} s",
                 f"{t / kid_subsets * 1000:.0f} ms per subset; KID={m:.3g} +- {s:.2g}"))
    print(rows[-1], flush=True)
    t, (p, r) = timed(lambda: precision_recall(x[:pr_n], y[:pr_n]))
    rows.append((f"Precision/recall, {pr_n} x {pr_n} x {d}, k=3, float32", f"{t:.2f} s", f"P={p:.3f}, R={r:.3f}"))
    print(rows[-1], flush=True)


def bench_extractors(rows, inception_batches, batch_size=32, thread_counts=(1, None)):
    from robustgan.metrics.features import ClassifierExtractor, InceptionExtractor
    from robustgan.metrics.inception import FIDInceptionV3

    imgs = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ext = InceptionExtractor(model=FIDInceptionV3())
    default_threads = torch.get_num_threads()
    for threads in thread_counts:
        torch.set_num_threads(threads or default_threads)
        ext(imgs[:2])  # warm-up
        t = time.perf_counter()
        for _ in range(inception_batches):
            ext(imgs)
        t = time.perf_counter() - t
        n = inception_batches * batch_size
        rows.append((f"Inception pool3 features, batch {batch_size}, 32x32 -> 299x299, float32, "
                     f"{torch.get_num_threads()} thread(s)", f"{n / t:.1f} images/s", f"{n} images in {t:.1f} s"))
        print(rows[-1], flush=True)
    torch.set_num_threads(default_threads)
    try:
        cls, note = ClassifierExtractor(), "shipped weights"
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        # the speed does not depend on the weights: fall back to the architecture with random ones
        from robustgan.metrics.classifier import SmallCNN
        cls = ClassifierExtractor(model=SmallCNN())
        note = f"random weights (shipped ones did not load: {type(exc).__name__})"
    gray = torch.randint(0, 256, (500, 1, 28, 28), dtype=torch.uint8)
    cls(gray[:10])
    t, _ = timed(lambda: cls(gray), repeat=3)
    rows.append(("Classifier features (Fashion-MNIST CNN), batch 500, 28x28", f"{500 / t:.0f} images/s",
                 f"{t * 1000:.0f} ms per batch; {note}"))
    print(rows[-1], flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "metrics.md"))
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    rows: list[tuple[str, str, str]] = []
    desc = machine()
    print(desc, flush=True)
    if args.quick:
        bench_frechet(rows, 512, 2048, 256)
        bench_kid_pr(rows, 2000, 2048, kid_subsets=5, pr_n=2000)
        bench_extractors(rows, inception_batches=1, batch_size=8)
    else:  # about 2-3 minutes on 2 shared cores
        bench_frechet(rows, 2048, 10000, 1000, sqrtm_deficient=False)
        bench_kid_pr(rows, 10000, 2048, kid_subsets=10, pr_n=5000)
        bench_extractors(rows, inception_batches=1)
    if args.no_write:
        return 0
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip() or "uncommitted"
    except OSError:
        commit = "unknown"
    lines = [
        "# Metric timings",
        "",
        "Measured by `benchmarks/bench_metrics.py`" + (" --quick" if args.quick else "") +
        f" (one run, git {commit}, {time.strftime('%Y-%m-%d')}).",
        "",
        f"Machine: {desc}. The machine was shared with other jobs (load above the core count), so single "
        "timings vary by up to 3x between runs; the Frechet eigen route is timed 3 times and the best is shown.",
        "",
        "| what | time / throughput | notes |",
        "|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += ["", "KID time grows linearly with the number of subsets (default 100): multiply the per-subset time.",
              "Inception throughput uses random weights (same cost as the real ones).", ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
