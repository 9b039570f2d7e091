#!/usr/bin/env python
"""Train the small CNN whose features define robustgan's feature space for 28x28 grayscale data.

Example (the command that produced the shipped weights; see docs/classifier.md):

    python scripts/train_classifier.py --dataset fashion-mnist --root /usr/share/datasets/fashion-mnist \
        --out src/robustgan/metrics/weights/fashion-mnist-classifier.safetensors --epochs 5 --seed 0

Deterministic for a given seed and thread count (fixed seeds for initialisation, shuffling,
augmentation and dropout). Adam, batch 128, learning rate 2e-3 decayed linearly to 0 (derived from the
step), light augmentation: random horizontal flips for Fashion-MNIST only (flipped digits are not
digits), and optionally random shifts of up to ``--shift`` pixels (off by default: in a few epochs
they slow convergence more than they help). The test accuracy is printed and stored in the safetensors
metadata and in a JSON file next to the weights.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from robustgan.metrics.classifier import SmallCNN, save_classifier

DEFAULT_ROOTS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist", "mnist": None}
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def _read_idx_split(root: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Read ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` from ``root``."""
    from robustgan.data.idx import read_idx

    prefix = _SPLIT_PREFIX[split]
    found = {}
    for kind in ("images-idx3", "labels-idx1"):
        for suffix in (".gz", ""):
            p = Path(root) / f"{prefix}-{kind}-ubyte{suffix}"
            if p.is_file():
                found[kind] = p
                break
        else:
            raise FileNotFoundError(f"{root}: no {prefix}-{kind}-ubyte[.gz]; pass --root DIR holding the IDX files")
    images = torch.from_numpy(read_idx(found["images-idx3"]).copy()).unsqueeze(1)
    labels = torch.from_numpy(read_idx(found["labels-idx1"]).astype(np.int64))
    return images, labels


def load_split(dataset: str, root: str | None, split: str,
               download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 1, 28, 28) and int64 labels (N,) of one split ("train" or "test").

    Uses ``robustgan.data.load_dataset`` when available (it knows the default locations and can
    download), otherwise reads the IDX files in ``root`` directly.
    """
    try:
        from robustgan.data import load_dataset
    except ImportError:
        load_dataset = None
    if load_dataset is not None:
        ds = load_dataset(dataset, root=root, split=split, download=download)
        images = getattr(ds, "images", None)
        if images is None:
            images = torch.stack([ds[i] for i in range(len(ds))])
        if ds.labels is None:
            raise ValueError(f"{dataset} {split} split has no labels")
        return images, ds.labels.long()
    if root is None:
        raise FileNotFoundError(f"no default location for {dataset}; pass --root DIR holding the IDX files")
    return _read_idx_split(root, split)


def augment(x: torch.Tensor, generator: torch.Generator, flip: bool, shift: int = 0) -> torch.Tensor:
    """Random shifts of up to ``shift`` pixels (zero padding) and optional horizontal flips (p = 0.5).

    x: float (B, 1, H, W) in [0, 1] -> same shape.
    """
    b, _, h, w = x.shape
    if shift == 0:
        if not flip:
            return x
        mask = torch.rand(b, generator=generator) < 0.5
        return torch.where(mask[:, None, None, None], x.flip(-1), x)
    padded = F.pad(x, (shift, shift, shift, shift))
    dy = torch.randint(0, 2 * shift + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * shift + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])  # (B, H)
    cols = (dx[:, None] + torch.arange(w)[None, :])  # (B, W)
    idx_b = torch.arange(b)[:, None, None]
    out = padded[:, 0][idx_b, rows[:, :, None], cols[:, None, :]].unsqueeze(1)
    if flip:
        mask = torch.rand(b, generator=generator) < 0.5
        out = torch.where(mask[:, None, None, None], out.flip(-1), out)
    return out


@torch.no_grad()
def evaluate(model: SmallCNN, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on uint8 images (N, 1, 28, 28)."""
    model.eval()
    correct = 0
    for i in range(0, len(images), batch):
        correct += (model(images[i:i + batch]).argmax(1) == labels[i:i + batch]).sum().item()
    return correct / len(images)


def train(x_train: torch.Tensor, y_train: torch.Tensor, *, epochs: int = 5, batch_size: int = 128,
          lr: float = 2e-3, seed: int = 0, flip: bool = True, shift: int = 0,
          test: tuple[torch.Tensor, torch.Tensor] | None = None) -> SmallCNN:
    """Train a :class:`SmallCNN` from scratch; returns it in eval mode.

    x_train: uint8 (N, 1, 28, 28); y_train: int64 (N,) in [0, 10). Seeds the global torch RNG
    (initialisation, dropout) and a private generator (shuffling, augmentation) with ``seed``, so
    two calls with the same arguments and thread count give identical weights. If ``test`` =
    (images, labels) is given, the test accuracy is printed after every epoch.
    """
    torch.manual_seed(seed)
    model = SmallCNN()
    x01 = x_train.float() / 255.0
    model.input_mean.fill_(x01.mean().item())
    model.input_std.fill_(x01.std().item())
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = (len(x_train) + batch_size - 1) // batch_size
    total = steps_per_epoch * epochs
    gen = torch.Generator().manual_seed(seed)

    step = 0
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x_train), generator=gen)
        running = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            xb, yb = x01[idx], y_train[idx]
            if flip or shift:
                xb = augment(xb, gen, flip, shift)
            for group in opt.param_groups:  # linear decay to 0, a function of the step only
                group["lr"] = lr * (1.0 - step / total)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += loss.item()
            step += 1
        msg = f"epoch {epoch + 1}/{epochs}: loss {running / steps_per_epoch:.4f}"
        if test is not None:
            msg += f", test accuracy {evaluate(model, *test):.4f}"
        print(f"{msg} ({time.time() - t0:.0f} s)", flush=True)
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["fashion-mnist", "mnist"], default="fashion-mnist")
    parser.add_argument("--root", default=None,
                        help="directory with the IDX files (default: /usr/share/datasets/fashion-mnist "
                             "for fashion-mnist; the data module's default for mnist)")
    parser.add_argument("--download", action="store_true", help="download the data set if missing (needs internet)")
    parser.add_argument("--out", default=None,
                        help="output .safetensors (default: the package's weights/<dataset>-classifier.safetensors)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--shift", type=int, default=0, help="random shifts of up to N pixels (default 0)")
    parser.add_argument("--no-augment", action="store_true", help="disable flips and shifts")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0 or args.shift < 0:
        parser.error("--epochs and --batch-size must be >= 1, --lr > 0 and --shift >= 0")

    torch.set_num_threads(args.threads)
    root = args.root if args.root is not None else DEFAULT_ROOTS[args.dataset]
    if args.out is None:
        from robustgan.metrics.classifier import weights_path
        out = weights_path(args.dataset)
    else:
        out = Path(args.out)

    try:
        x_train, y_train = load_split(args.dataset, root, "train", args.download)
        x_test, y_test = load_split(args.dataset, root, "test", args.download)
    except (FileNotFoundError, ValueError) as exc:
        print(f"train_classifier: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.dataset}: {len(x_train)} train / {len(x_test)} test images", flush=True)

    flip = args.dataset == "fashion-mnist" and not args.no_augment
    shift = 0 if args.no_augment else args.shift
    model = train(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  seed=args.seed, flip=flip, shift=shift, test=(x_test, y_test))
    acc = evaluate(model, x_test, y_test)
    command = "python scripts/train_classifier.py " + " ".join(sys.argv[1:] if argv is None else argv)
    meta = {"dataset": args.dataset, "test_accuracy": f"{acc:.4f}", "epochs": str(args.epochs),
            "seed": str(args.seed), "batch_size": str(args.batch_size), "lr": str(args.lr),
            "flip": str(flip), "shift": str(shift),
            "architecture": "SmallCNN", "feature_dim": "128",
            "torch": torch.__version__, "command": command}
    save_classifier(model, out, meta)
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"test accuracy {acc:.4f}; wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
