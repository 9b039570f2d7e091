"""Reference statistics of real data sets, cached on disk.

The statistics of a real data set in a feature space (mean, covariance, and a random subset of raw
features for KID and precision/recall) are computed once and stored as an .npz file under
``<cache>/stats`` where <cache> is $ROBUSTGAN_CACHE or ~/.cache/robustgan. The file name carries a
hash of everything that produced it: data set, split, image size, number of images, extractor and a
fingerprint of its weights, subset size, seed and a format version; changing any of them computes new statistics. Files are
written atomically (temporary file in the same folder, then os.replace), so a crash or a concurrent
run never leaves a half-written file behind.

A stats dict has keys: mu (F,) float64, sigma (F, F) float64, features (M, F) float32 (M <= max_features
rows drawn at random without replacement), n (images used), and the metadata strings dataset, split,
extractor, img_size (-1 for native).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from robustgan.fileio import atomic_open
from robustgan.metrics.frechet import feature_statistics
from robustgan.metrics.inception import cache_root

__all__ = ["STATS_VERSION", "stats_dir", "reference_key", "stats_from_features", "save_stats", "load_stats",
           "reference_stats"]

#: bump when the way statistics are computed changes, so old cache files are not reused
STATS_VERSION = 1
DEFAULT_MAX_FEATURES = 10000


def stats_dir() -> Path:
    """Folder of cached statistics: <cache_root>/stats ($ROBUSTGAN_CACHE or ~/.cache/robustgan)."""
    return cache_root() / "stats"


def reference_key(dataset: str, split: str, extractor: str, img_size: int | None, n: int | None,
                  max_features: int = DEFAULT_MAX_FEATURES, seed: int = 0, root: str | None = None) -> str:
    """A readable, filesystem-safe file stem ending in a 16-hex-digit hash of all the arguments.

    ``root`` enters the hash only for dataset "folder" (where the folder *is* the data set; for the
    named sets the location does not change the images).
    """
    fields = {"dataset": dataset, "split": split, "extractor": extractor, "img_size": img_size, "n": n,
              "max_features": max_features, "seed": seed, "version": STATS_VERSION}
    if dataset == "folder":
        fields["root"] = str(Path(root).expanduser().resolve()) if root is not None else None
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in f"{dataset}-{split}-{extractor}")
    return f"{safe}-{digest}"


def stats_from_features(features, max_features: int = DEFAULT_MAX_FEATURES, seed: int = 0, **meta) -> dict:
    """Stats dict from a feature matrix (N, F): mu, sigma (float64), a random subset of at most
    ``max_features`` rows (float32, seeded), n, plus any metadata given as keyword arguments."""
    feats = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    mu, sigma = feature_statistics(feats)
    n = feats.shape[0]
    if n > max_features:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=max_features, replace=False))
        subset = feats[idx]
    else:
        subset = feats
    return {"mu": mu, "sigma": sigma, "features": np.ascontiguousarray(subset, dtype=np.float32), "n": n, **meta}


def save_stats(path: str | os.PathLike, stats: dict) -> Path:
    """Write a stats dict to ``path`` (.npz) atomically. Values must be arrays, numbers or strings."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(v) for k, v in stats.items()}
    for k, v in arrays.items():
        if v.dtype == object:
            raise ValueError(f"stats entry {k!r} is not an array, number or string")
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def load_stats(path: str | os.PathLike) -> dict:
    """Read a stats .npz (no pickles). 0-d entries come back as Python scalars / strings."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"statistics file {path} does not exist")
    out = {}
    with np.load(path, allow_pickle=False) as data:
        for k in data.files:
            v = data[k]
            out[k] = v.item() if v.ndim == 0 else v
    for k in ("mu", "sigma"):
        if k not in out:
            raise ValueError(f"{path} is not a statistics file (no {k!r}); delete it and recompute")
    return out


def reference_stats(dataset: str, split: str = "train", extractor="classifier", img_size: int | None = None,
                    n: int | None = None, root: str | None = None, device: str = "cpu", batch_size: int = 100,
                    max_features: int = DEFAULT_MAX_FEATURES, seed: int = 0, download: bool = False,
                    cache: bool = True, refresh: bool = False, progress: bool = False) -> dict:
    """Statistics of a real data set in a feature space, from the cache or computed and cached.

    Args:
        dataset, split, img_size, root, download: passed to robustgan.data.load_dataset ("mnist",
            "fashion-mnist", "cifar10", "celeba", "folder"; img_size None = native size).
        extractor: a name ("classifier", "inception") or a FeatureExtractor.
        n: number of images (a seeded random subset; None = all of the split).
        max_features: rows of raw features kept for KID / precision-recall (default 10000).
        seed: seeds the image subset and the feature subset.
        cache: read and write the cache; refresh: recompute even if cached.

    Returns:
        stats dict (see module docstring), with "path" set to the cache file when cached.
    """
    from robustgan.metrics.features import extract_features, get_extractor

    ext = get_extractor(extractor, device=device)
    # the key names the extractor *and* its weights, so retrained weights never reuse old statistics
    key = reference_key(dataset, split, f"{ext.name}-{ext.fingerprint()}", img_size, n, max_features, seed, root)
    path = stats_dir() / f"{key}.npz"
    if cache and not refresh and path.is_file():
        stats = load_stats(path)
        stats["path"] = str(path)
        return stats

    from robustgan.data import load_dataset
    ds = load_dataset(dataset, root=root, split=split, img_size=img_size, download=download)
    images = ds
    if n is not None:
        if not 2 <= n <= len(ds):
            raise ValueError(f"n must be between 2 and the {len(ds)} images of {dataset}/{split}, got {n}")
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        if isinstance(getattr(ds, "images", None), torch.Tensor):
            images = ds.images[idx]
        else:
            images = torch.utils.data.Subset(ds, idx.tolist())
    feats = extract_features(ext, images, batch_size=batch_size, progress=progress)
    stats = stats_from_features(feats, max_features=max_features, seed=seed, dataset=dataset, split=split,
                                extractor=ext.name, img_size=-1 if img_size is None else int(img_size))
    if cache:
        save_stats(path, stats)
        stats["path"] = str(path)
    return stats
