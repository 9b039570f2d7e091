"""``robustgan fd A B [--metrics fd,kid,pr,is] [--extractor auto|classifier|inception] [--device auto]``.

Metrics between two image sets, each a folder of images, a named data set ``NAME[:SPLIT]``
(e.g. ``fashion-mnist:test``) or a statistics ``.npz`` (see :func:`robustgan.metrics.compare.compare`).
Statistics of folders and named data sets are cached, keyed on their content. Prints one
``key: value`` line per result; ``--json FILE`` also writes them as JSON.
"""
from __future__ import annotations

import json
import sys


def add_arguments(parser) -> None:
    parser.add_argument("input1", help="folder of images, data set NAME[:SPLIT], or stats .npz (the 'generated' set)")
    parser.add_argument("input2", nargs="?", default=None,
                        help="the set to compare with (the 'real' set; may be omitted for --metrics is)")
    parser.add_argument("--metrics", default="fd",
                        help="comma-separated: fd, kid, pr, is (fid: fd that must be in Inception space; default fd)")
    parser.add_argument("--extractor", default="auto", choices=["auto", "classifier", "inception"],
                        help="feature space (auto: classifier when both sets are gray, Inception otherwise)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N (default auto)")
    parser.add_argument("--resize", default="pytorch-fid", choices=["pytorch-fid", "torch-fidelity"],
                        help="Inception input convention: pytorch-fid (bilinear, x/127.5-1; default) or "
                             "torch-fidelity (TF1-exact resize, (x-128)/128); see docs/metrics.md")
    parser.add_argument("--n", type=int, default=None, help="a seeded random subset of N images of each input")
    parser.add_argument("--root1", default=None, help="where input1's data set files are (named data sets)")
    parser.add_argument("--root2", default=None, help="where input2's data set files are (named data sets)")
    parser.add_argument("--batch-size", type=int, default=100, help="images per forward pass (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seeds subsets (default 0)")
    parser.add_argument("--weights", default=None, help="Inception weights file (pt_inception-2015-12-05-6726825d.pth)")
    parser.add_argument("--kid-subsets", type=int, default=100, help="KID subsets (default 100)")
    parser.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size (default 1000)")
    parser.add_argument("--pr-k", type=int, default=3, help="k of precision/recall (default 3)")
    parser.add_argument("--is-splits", type=int, default=10, help="Inception Score splits (default 10)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write cached statistics")
    parser.add_argument("--refresh", action="store_true", help="recompute cached statistics")
    parser.add_argument("--download", action="store_true", help="download a missing named data set")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run(args) -> int:
    from ..fileio import atomic_open
    from ..hardware import parse_device
    from .compare_sets import compare

    if args.n is not None and args.n < 2:
        raise ValueError("--n must be at least 2")
    device = parse_device(args.device)
    result = compare(args.input1, args.input2, metrics=args.metrics, extractor=args.extractor, device=device,
                     resize=args.resize, batch_size=args.batch_size, seed=args.seed, n=args.n, root1=args.root1,
                     root2=args.root2, weights=args.weights, cache=not args.no_cache, refresh=args.refresh,
                     download=args.download, progress=not args.quiet, kid_subsets=args.kid_subsets,
                     kid_subset_size=args.kid_subset_size, pr_k=args.pr_k, is_splits=args.is_splits)
    for key, value in result.items():
        print(f"{key}: {value:.6g}" if isinstance(value, float) else f"{key}: {value}")
    if args.json:
        record = {"input1": args.input1, "input2": args.input2, "resize": args.resize, "device": str(device),
                  **result}
        with atomic_open(args.json, "w") as fh:
            json.dump(record, fh, indent=1)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
