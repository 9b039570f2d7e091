"""``robustgan eval RUN [--metrics fd,kid,pr] [--n 10000]``: evaluate a run's checkpoint, write RUN/eval.json.

Samples come from the EMA generator when the run kept one. Image runs are compared with the
cached reference statistics of their training split, in the feature space of ``--extractor``
(default: the run's ``log.extractor``; "auto" = the Fashion-MNIST classifier for gray images,
Inception otherwise); 2-D runs get mode coverage, high-quality fraction and W1.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..fileio import atomic_open


def add_arguments(parser) -> None:
    parser.add_argument("run", help="run directory")
    parser.add_argument("--metrics", default=None, help="comma-separated: fd, kid, pr, is (default: the run's log.metrics)")
    parser.add_argument("--n", type=int, default=10000, help="number of generated samples (default 10000)")
    parser.add_argument("--extractor", default=None, choices=["auto", "classifier", "inception"],
                        help="feature space (default: the run's log.extractor)")
    parser.add_argument("--checkpoint", default=None, help="a specific checkpoint file")
    parser.add_argument("--no-ema", action="store_true", help="evaluate the trained G rather than its EMA copy")
    parser.add_argument("--out", default=None, help="output JSON (default RUN/eval.json)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the samples' noise, KID subsets and PR subsampling")
    parser.add_argument("--weights", default=None,
                        help="Inception weights file (pt_inception-2015-12-05-6726825d.pth); "
                             "default: $ROBUSTGAN_INCEPTION_WEIGHTS, the cache, or a download")
    parser.add_argument("--refresh", action="store_true", help="recompute the cached reference statistics")
    parser.add_argument("--kid-subsets", type=int, default=100, help="KID subsets (default 100)")
    parser.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size (default 1000)")
    parser.add_argument("--pr-k", type=int, default=3, help="k of precision/recall (default 3)")


def run(args) -> int:
    from ..train.evaluation import _generate, evaluate_samples
    from ..train.loop import TOY_NAMES
    from ..train.sample import load_generator

    if args.n < 2:
        raise ValueError("--n must be at least 2")
    G, cfg, path = load_generator(args.run, args.checkpoint, ema=not args.no_ema)
    if args.extractor:
        cfg["log"]["extractor"] = args.extractor
    metrics = args.metrics.split(",") if args.metrics else None
    t0 = time.perf_counter()
    samples = _generate(G, args.n, "cpu", seed=2024 + args.seed)
    options = {} if cfg["data"]["name"] in TOY_NAMES else {
        "kid_subsets": args.kid_subsets, "kid_subset_size": args.kid_subset_size, "pr_k": args.pr_k}
    result = evaluate_samples(samples, cfg, metrics=metrics, seed=args.seed, weights=args.weights,
                              refresh=args.refresh, **options)
    record = {"run": str(args.run), "checkpoint": str(path), "n": args.n, "ema": not args.no_ema,
              "extractor": cfg["log"]["extractor"], "metrics": result,
              "seconds": round(time.perf_counter() - t0, 2)}
    out = Path(args.out) if args.out else Path(args.run) / "eval.json"
    with atomic_open(out, "w") as fh:
        json.dump(record, fh, indent=2)
    shown = ", ".join(f"{k}={v:.4g}" for k, v in result.items() if isinstance(v, float))
    print(f"{shown}\nwrote {out}")
    return 0
