"""``robustgan eval RUN [--metrics fd,kid,pr] [--n 10000] [--device auto]``: evaluate a run's checkpoint.

Each evaluation appends one JSON line to ``RUN/eval.jsonl`` (earlier evaluations are kept): the
checkpoint and its step, whether the EMA weights were used, the feature space, the metric
settings, the metrics and the time taken. Samples come from the EMA generator when the run kept
one (``"ema": false`` in the record when it did not, or with ``--no-ema``). Image runs are
compared with the cached reference statistics of their training split, in the feature space of
``--extractor`` (default: the run's ``log.extractor``; "auto" = the Fashion-MNIST classifier for
gray images, Inception otherwise); 2-D runs get mode coverage, high-quality fraction and W1.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

EVAL_LOG = "eval.jsonl"


def add_arguments(parser) -> None:
    parser.add_argument("run", help="run directory")
    parser.add_argument("--metrics", default=None,
                        help="comma-separated: fd, kid, pr, is for images (fid: fd in Inception space); "
                             "modes, w1 for 2-D runs (default: the run's log.metrics)")
    parser.add_argument("--n", type=int, default=10000, help="number of generated samples (default 10000)")
    parser.add_argument("--extractor", default=None, choices=["auto", "classifier", "inception"],
                        help="feature space (default: the run's log.extractor)")
    parser.add_argument("--device", default="auto",
                        help="where the generator and the feature extractor run: auto (cuda if available), cpu, "
                             "cuda, cuda:N (default auto)")
    parser.add_argument("--checkpoint", default=None, help="a specific checkpoint file")
    parser.add_argument("--no-ema", action="store_true", help="evaluate the trained G rather than its EMA copy")
    parser.add_argument("--out", default=None, help=f"JSON-lines file to append the record to (default RUN/{EVAL_LOG})")
    parser.add_argument("--seed", type=int, default=0, help="seeds the samples' noise, KID subsets and PR subsampling")
    parser.add_argument("--weights", default=None,
                        help="Inception weights file (pt_inception-2015-12-05-6726825d.pth); "
                             "default: $ROBUSTGAN_INCEPTION_WEIGHTS, the cache, or a download")
    parser.add_argument("--refresh", action="store_true", help="recompute the cached reference statistics")
    parser.add_argument("--kid-subsets", type=int, default=100, help="KID subsets (default 100)")
    parser.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size (default 1000)")
    parser.add_argument("--pr-k", type=int, default=3, help="k of precision/recall (default 3)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def format_metrics(result: dict) -> str:
    """``key=value`` for every entry: floats with 4 significant digits, anything else as is."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items())


def append_record(path: str | os.PathLike, record: dict) -> Path:
    """Append ``record`` as one JSON line to ``path`` (created if missing) with a single write,
    flushed to disk, so a crash leaves at most a torn last line (which :func:`read_records` skips)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        # a torn line left by an earlier crash must not swallow this record
        if os.fstat(fd).st_size and not _ends_with_newline(path):
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def read_records(path: str | os.PathLike) -> list[dict]:
    """The records of an eval.jsonl file, oldest first ([] if missing); torn lines are skipped."""
    from .fileio import read_jsonl
    return read_jsonl(path)


def run(args) -> int:
    from .data.toy import TOY_DATASETS
    from .train.checkpoint import load_checkpoint
    from .train.evaluation import evaluate_samples, resolve_extractor
    from .train.sample import load_generator
    from .hardware import parse_device
    from .metrics.registry import get_metric
    from .metrics.sampling import generate_samples

    if args.n < 2:
        raise ValueError("--n must be at least 2")
    device = parse_device(args.device)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    for m in metrics or ():
        get_metric(m)  # unknown names fail before the checkpoint is loaded
    G, cfg, path = load_generator(args.run, args.checkpoint, ema=not args.no_ema, device=str(device))
    state = load_checkpoint(path)
    ema_used = not args.no_ema and state.get("G_ema") is not None
    step = state.get("step")
    if step is None:
        match = re.search(r"(\d+)", Path(path).stem)
        step = int(match.group(1)) if match else None
    toy = cfg["data"]["name"] in TOY_DATASETS
    if metrics is not None:
        wrong = [m for m in metrics if (get_metric(m).needs == "points") != toy]
        if wrong:
            kind = "2-D" if toy else "image"
            raise ValueError(f"metrics {wrong} do not apply to this {kind} run; choose from "
                             + ("modes, w1" if toy else "fd (fid), kid, pr, is"))
    if args.extractor:
        cfg["log"]["extractor"] = args.extractor
    t0 = time.perf_counter()
    samples = generate_samples(G, args.n, device, seed=2024 + args.seed)
    settings = {"metrics": metrics or list(cfg["log"]["metrics"]), "seed": args.seed, "device": str(device)}
    options = {}
    extractor = None
    if not toy:
        options = {"kid_subsets": args.kid_subsets, "kid_subset_size": args.kid_subset_size, "pr_k": args.pr_k}
        settings.update(options)
        extractor = resolve_extractor(cfg["log"]["extractor"], samples.shape[1])
    result = evaluate_samples(samples, cfg, metrics=metrics, seed=args.seed, weights=args.weights,
                              refresh=args.refresh, device=device, progress=not args.quiet, **options)
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "run": str(args.run), "checkpoint": str(path),
              "step": step, "n": args.n, "ema": ema_used, "extractor": extractor, "settings": settings,
              "metrics": result, "seconds": round(time.perf_counter() - t0, 2)}
    out = append_record(Path(args.out) if args.out else Path(args.run) / EVAL_LOG, record)
    print(f"step {step} ({'EMA' if ema_used else 'trained G'}, {args.n} samples"
          + (f", {extractor} features" if extractor else "") + f"): {format_metrics(result)}")
    print(f"appended to {out}", file=sys.stderr if args.quiet else sys.stdout)
    return 0
