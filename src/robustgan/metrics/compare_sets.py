"""Metrics between any two image sets, in one call (the Python side of ``robustgan fd A B``).

    compare("samples/", "cifar10:test", metrics=("fd", "kid"), extractor="inception", device="cuda")

Each input is one of:

* a folder of images (png, jpg, jpeg, bmp, webp; recursive; each centre-cropped to a square and
  read at the first image's size, as ``data.name=folder``),
* a named data set ``NAME[:SPLIT]`` ("fashion-mnist", "mnist:test", "cifar10:train", "celeba:valid";
  split default "train"), found where the trainer looks (or under ``root1`` / ``root2``),
* a statistics ``.npz`` written by :mod:`robustgan.metrics.reference` (Frechet distance only: it
  holds a feature subset, not the images),
* a uint8 tensor (N, C, H, W).

Folders and named data sets go through :func:`robustgan.metrics.reference.reference_stats`, so their
statistics are cached, keyed on the content (replacing the images recomputes them) and on the
extractor's weights and resize convention. ``input1`` plays the part of the generated set (the
Inception Score is computed on it, precision is the fraction of ``input1`` inside ``input2``'s
manifold). KID and precision/recall use at most ``max_features`` (10,000) rows of each input.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from robustgan.metrics.evaluate import FeatureSet, metrics_from_features, resolve_metrics
from robustgan.metrics.features import FeatureExtractor, extract_features, get_extractor
from robustgan.metrics.reference import (DEFAULT_MAX_FEATURES, check_fingerprint, load_stats, reference_stats,
                                         stats_from_features)

__all__ = ["compare", "parse_input", "RESIZE_CHOICES"]

RESIZE_CHOICES = ("pytorch-fid", "torch-fidelity")
_GRAY_SETS = ("mnist", "fashion-mnist")


def parse_input(spec, root=None) -> dict:
    """What an input names: {"kind": "tensor" | "folder" | "stats" | "dataset", ...}.

    A string is a folder if such a directory exists, a stats file if it ends in .npz, else a data
    set name ``NAME[:SPLIT]``; anything else is a ValueError saying what is accepted.
    """
    from robustgan.data.images import _ALIASES, DATASET_NAMES

    if isinstance(spec, torch.Tensor):
        if spec.dtype != torch.uint8 or spec.ndim != 4:
            raise ValueError("an image tensor input must be uint8 (N, C, H, W); convert with "
                             "robustgan.ranges.range_to_uint8")
        return {"kind": "tensor", "images": spec, "label": f"tensor {tuple(spec.shape)}"}
    if not isinstance(spec, (str, os.PathLike)):
        raise ValueError(f"an input must be a folder, a data set name, a .npz file or a uint8 tensor, not {type(spec)}")
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        return {"kind": "folder", "dataset": "folder", "split": "train", "root": str(path), "label": text}
    if text.endswith(".npz"):
        if not path.is_file():
            raise FileNotFoundError(f"statistics file {path} does not exist")
        return {"kind": "stats", "path": str(path), "label": text}
    name, _, split = text.partition(":")
    key = _ALIASES.get(name.lower().replace("_", "").replace("-", ""))
    known = [d for d in DATASET_NAMES if d != "folder"]
    if key not in known:
        hint = f"no folder {path} exists, and " if ("/" in text or text.startswith(".")) else ""
        raise ValueError(f"input {text!r}: {hint}it is not a data set name; give a folder of images, a .npz "
                         f"statistics file or one of {', '.join(known)} (NAME[:SPLIT], e.g. fashion-mnist:test)")
    return {"kind": "dataset", "dataset": key, "split": split or "train", "root": root, "label": text}


def _is_gray(src: dict) -> bool | None:
    if src["kind"] == "tensor":
        return src["images"].shape[1] == 1
    if src["kind"] == "dataset":
        return src["dataset"] in _GRAY_SETS
    if src["kind"] == "folder":
        from PIL import Image

        from robustgan.data.images import list_images
        files = list_images(src["root"])
        if not files:
            raise FileNotFoundError(f"no images found under {src['root']}")
        with Image.open(files[0]) as im:
            return im.mode in ("1", "L", "LA", "I", "I;16", "F")
    return None


def _resolve_extractor(extractor, sources) -> str:
    if extractor != "auto":
        return extractor
    for src in sources:
        if src["kind"] == "stats":
            name = load_stats(src["path"]).get("extractor")
            if name:
                return str(name)
    gray = [_is_gray(s) for s in sources]
    return "classifier" if all(g is not False for g in gray) and any(gray) else "inception"


def _images(src: dict, n, seed):
    """The images of a source for features with logits (the Inception Score): tensor or data set."""
    if src["kind"] == "tensor":
        return src["images"]
    if src["kind"] == "stats":
        raise ValueError(f"{src['label']}: a statistics file holds no images; the Inception Score needs images")
    from robustgan.data import load_dataset
    ds = load_dataset(src["dataset"], root=src["root"], split=src["split"])
    if n is not None:
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        return torch.utils.data.Subset(ds, idx.tolist())
    return ds


def _stats(src: dict, ext, *, n, seed, batch_size, max_features, cache, refresh, progress, download) -> dict:
    if src["kind"] == "tensor":
        images = src["images"]
        if n is not None:
            images = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n].sort().values]
        feats = extract_features(ext, images, batch_size=batch_size, progress=progress)
        return stats_from_features(feats, max_features=max_features, seed=seed, extractor=ext.name,
                                   extractor_fingerprint=ext.fingerprint())
    if src["kind"] == "stats":
        stats = load_stats(src["path"])
        check_fingerprint(stats, ext, where=src["path"])
        return stats
    return reference_stats(src["dataset"], split=src["split"], extractor=ext, n=n, root=src["root"],
                           batch_size=batch_size, max_features=max_features, seed=seed, download=download,
                           cache=cache, refresh=refresh, progress=progress)


def compare(input1, input2=None, metrics=("fd",), extractor: str = "auto", device="cpu",
            resize: str = "pytorch-fid", batch_size: int = 100, seed: int = 0, n: int | None = None,
            root1: str | None = None, root2: str | None = None, weights: str | None = None,
            max_features: int = DEFAULT_MAX_FEATURES, cache: bool = True, refresh: bool = False,
            download: bool = False, progress: bool = False, **options) -> dict:
    """Metrics between two image sets (see the module docstring for what an input may be).

    Args:
        input1, input2: the two sets; ``input2`` may be None when only "is" is requested.
        metrics: registry names: "fd" (key "fid" in Inception space, "fd" otherwise; "fid" asks for
            Inception explicitly), "kid", "pr", "is" (``input1`` only, Inception only).
        extractor: "classifier", "inception", or "auto" (the classifier when both sets are gray,
            Inception otherwise; a stats file's own extractor when one is given), or a
            FeatureExtractor instance (used as it is, with its own device and resize convention).
        device: where the extractor runs ("cpu", "cuda", torch.device).
        resize: Inception input convention: "pytorch-fid" (bilinear, x / 127.5 - 1; default) or
            "torch-fidelity" (TF1-exact resize, (x - 128) / 128). See docs/metrics.md.
        n: use a seeded random subset of n images of each input (None: all).
        root1, root2: where the named data sets' files are (None: the usual places).
        weights: Inception weights file. max_features: rows kept per set for KID / PR.
        cache, refresh, download: statistics cache use, recomputation, data download.
        progress: print what is computed and show tqdm bars (stderr).
        options: metric options (kid_subsets, kid_subset_size, pr_k, max_pr, is_splits).

    Returns:
        dict: the metrics (Python floats), n_fake / n_ref (images behind each set's statistics),
        and "extractor" (the feature space's name).
    """
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    if resize not in RESIZE_CHOICES:
        raise ValueError(f"unknown resize convention {resize!r}; choose one of {', '.join(RESIZE_CHOICES)}")
    resolve_metrics(metrics)  # unknown names fail before any data is read
    src1 = parse_input(input1, root1)
    src2 = None if input2 is None else parse_input(input2, root2)
    if isinstance(extractor, FeatureExtractor):
        ext = extractor
    else:
        name = _resolve_extractor(extractor, [s for s in (src1, src2) if s is not None])
        kw = {}
        if name == "inception":
            kw["resize"] = resize
            if weights:
                kw["weights"] = weights
        elif resize != "pytorch-fid":
            raise ValueError(f"resize={resize!r} is an Inception input convention; the {name} extractor has its own")
        ext = get_extractor(name, device=device, **kw)
    chosen = resolve_metrics(metrics, ext.name)
    needs_ref = [m for m, metric in chosen if metric.needs_reference]
    if needs_ref and src2 is None:
        raise ValueError(f"metrics {needs_ref} compare two sets; give a second input")
    common = dict(n=n, seed=seed, batch_size=batch_size, max_features=max_features, cache=cache,
                  refresh=refresh, progress=progress, download=download)
    logits = None
    if any(metric.needs == "logits" for _, metric in chosen):
        feats, logits = extract_features(ext, _images(src1, n, seed), batch_size=batch_size, with_logits=True,
                                         progress=progress)
        stats1 = stats_from_features(feats, max_features=max_features, seed=seed, extractor=ext.name,
                                     extractor_fingerprint=ext.fingerprint())
    else:
        stats1 = _stats(src1, ext, **common)
    stats2 = _stats(src2, ext, **common) if needs_ref else None
    fake = FeatureSet.from_stats(stats1)
    result = metrics_from_features(fake, stats2, metrics, ext.name, logits=logits, seed=seed, **options)
    result["extractor"] = ext.name
    return result
