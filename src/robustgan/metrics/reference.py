"""Reference statistics of real data sets, cached on disk.

The statistics of a real data set in a feature space (mean, covariance, and a random subset of raw
features for KID and precision/recall) are computed once and stored as an .npz file under
``<cache>/stats`` where <cache> is $ROBUSTGAN_CACHE or ~/.cache/robustgan. The file name carries a
hash of everything that produced it: data set, split, image size, number of images, extractor and a
fingerprint of its weights and preprocessing, subset size, seed, a format version, and the *content*
of the data (:func:`data_fingerprint`: a sha256 of the pixels for data sets held in memory, of the
file names, sizes and modification times for data sets read from files); changing any of them
computes new statistics. The extractor and data fingerprints are also stored in the file and checked
when it is read, so a file made with other weights is never used. Files are written atomically
(temporary file in the same folder, then os.replace), so a crash or a concurrent run never leaves a
half-written file behind.

A stats dict has keys: mu (F,) float64, sigma (F, F) float64, features (M, F) float32 (M <= max_features
rows drawn at random without replacement), n (images used), and the metadata strings dataset, split,
source, extractor, extractor_fingerprint, data_fingerprint, img_size (-1 for native).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from robustgan.fileio import atomic_open
from robustgan.metrics.frechet import feature_statistics
from robustgan.metrics.inception import cache_root

__all__ = ["STATS_VERSION", "stats_dir", "reference_key", "data_fingerprint", "stats_from_features", "save_stats",
           "load_stats", "check_fingerprint", "reference_stats"]

#: bump when the way statistics are computed changes, so old cache files are not reused
#: (2: content-keyed, with the extractor's fingerprint stored in the file)
STATS_VERSION = 2
DEFAULT_MAX_FEATURES = 10000


def stats_dir() -> Path:
    """Folder of cached statistics: <cache_root>/stats ($ROBUSTGAN_CACHE or ~/.cache/robustgan)."""
    return cache_root() / "stats"


def reference_key(dataset: str, split: str, extractor: str, img_size: int | None, n: int | None,
                  max_features: int = DEFAULT_MAX_FEATURES, seed: int = 0, root: str | None = None,
                  content: str | None = None) -> str:
    """A readable, filesystem-safe file stem ending in a 16-hex-digit hash of all the arguments.

    ``content`` is the data's :func:`data_fingerprint`, so new pixels (replaced files, another copy
    of a data set under another root) give a new key. ``root`` enters the hash for dataset "folder".
    """
    fields = {"dataset": dataset, "split": split, "extractor": extractor, "img_size": img_size, "n": n,
              "max_features": max_features, "seed": seed, "version": STATS_VERSION, "content": content}
    if dataset == "folder":
        fields["root"] = str(Path(root).expanduser().resolve()) if root is not None else None
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in f"{dataset}-{split}-{extractor}")
    return f"{safe}-{digest}"


def data_fingerprint(ds) -> str:
    """16 hex digits identifying a data set's content.

    Data sets read lazily from files (``ds.files``, e.g. folders and CelebA): sha256 of the
    preprocessing options and of each file's name (relative to the source folder) and bytes; no image
    is decoded (reading costs about 1 s per GB from a warm disk). Modification times are not used:
    they can repeat within a clock tick when a file is replaced, and a copy keeps its statistics.
    Data sets held in memory (``ds.images``, e.g. MNIST-like and CIFAR-10): sha256 of the
    shape and bytes of the uint8 pixels (about 0.1 s per 50 MB). Any other data set: sha256 of every
    item's bytes (reads the whole set).
    """
    h = hashlib.sha256()
    files = getattr(ds, "files", None)
    images = getattr(ds, "images", None)
    if files is not None:
        source = str(getattr(ds, "source", "") or "")
        h.update(f"files|{getattr(ds, 'img_size', '')}|{getattr(ds, 'channels', '')}|"
                 f"{json.dumps(getattr(ds, 'options', {}), sort_keys=True, default=str)}".encode())
        for f in files:
            name = os.path.relpath(f, source) if source else os.path.basename(f)
            h.update(f"\n{name}|{os.path.getsize(f)}|".encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    elif isinstance(images, torch.Tensor):
        x = images.detach().cpu().contiguous()
        h.update(f"pixels|{tuple(x.shape)}|{x.dtype}".encode())
        h.update(x.reshape(-1).view(torch.uint8).numpy().tobytes() if x.dtype != torch.uint8 else x.numpy().tobytes())
    else:
        h.update(f"items|{len(ds)}".encode())
        for i in range(len(ds)):
            item = ds[i]
            item = item[0] if isinstance(item, (tuple, list)) else item
            h.update(np.ascontiguousarray(torch.as_tensor(item).cpu().numpy()).tobytes())
    return h.hexdigest()[:16]


def check_fingerprint(stats: dict, extractor, where: str = "these statistics") -> None:
    """Raise ValueError unless ``stats`` were computed with ``extractor`` (same name and, when the
    stats record one, the same weights/preprocessing fingerprint)."""
    name = stats.get("extractor")
    if name is not None and str(name) != extractor.name:
        raise ValueError(f"{where} were computed with the {name!r} extractor, not {extractor.name!r}; "
                         "recompute them or change extractor")
    fp = stats.get("extractor_fingerprint")
    if fp is not None and str(fp) != extractor.fingerprint():
        raise ValueError(f"{where} were computed with other {extractor.name} weights or preprocessing "
                         f"(fingerprint {fp}, this extractor has {extractor.fingerprint()}); recompute them")


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
    try:
        with np.load(path, allow_pickle=False) as data:
            for k in data.files:
                v = data[k]
                out[k] = v.item() if v.ndim == 0 else v
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a readable statistics file ({type(exc).__name__}); delete it "
                         "and recompute") from None
    for k in ("mu", "sigma"):
        if k not in out:
            raise ValueError(f"{path} is not a statistics file (no {k!r}); delete it and recompute")
    return out


def reference_stats(dataset: str, split: str = "train", extractor="classifier", img_size: int | None = None,
                    n: int | None = None, root: str | None = None, device: str = "cpu", batch_size: int = 100,
                    max_features: int = DEFAULT_MAX_FEATURES, seed: int = 0, download: bool = False,
                    cache: bool = True, refresh: bool = False, progress: bool = False,
                    channels: int | None = None) -> dict:
    """Statistics of a real data set in a feature space, from the cache or computed and cached.

    Args:
        dataset, split, img_size, root, download: passed to robustgan.data.load_dataset ("mnist",
            "fashion-mnist", "cifar10", "celeba", "folder"; img_size None = native size).
        extractor: a name ("classifier", "inception") or a FeatureExtractor.
        n: number of images (a seeded random subset; None = all of the split).
        max_features: rows of raw features kept for KID / precision-recall (default 10000).
        seed: seeds the image subset and the feature subset.
        cache: read and write the cache; refresh: recompute even if cached. A cached file whose
            stored extractor or data fingerprint does not match is not used (a RuntimeWarning says
            why) and is recomputed.
        progress: print a line saying what is computed and show a tqdm bar (stderr).
        channels: convert the images to 1 or 3 channels (None: the data set's own; 3 for folders).

    Returns:
        stats dict (see module docstring), with "path" set to the cache file when cached.
    """
    from robustgan.data import load_dataset
    from robustgan.metrics.features import extract_features, get_extractor

    ext = get_extractor(extractor, device=device)
    kw = {} if channels is None else {"channels": channels}
    # the data are loaded (not decoded, for file-based sets) to key the cache on their content
    ds = load_dataset(dataset, root=root, split=split, img_size=img_size, download=download, **kw)
    content = data_fingerprint(ds)
    # the key names the extractor *and* its weights, so retrained weights never reuse old statistics
    key = reference_key(dataset, split, f"{ext.name}-{ext.fingerprint()}", img_size, n, max_features, seed, root,
                        content=content if channels is None else f"{content}-c{channels}")
    path = stats_dir() / f"{key}.npz"
    if cache and not refresh and path.is_file():
        try:
            stats = load_stats(path)
        except ValueError as exc:  # unreadable file: recompute it
            stats = {"data_fingerprint": f"unreadable: {exc}"}
        try:
            check_fingerprint(stats, ext, where=str(path))
            if str(stats.get("data_fingerprint")) != content:
                raise ValueError(f"{path} was computed from other data (fingerprint "
                                 f"{stats.get('data_fingerprint')}, the data now have {content})")
        except ValueError as exc:
            warnings.warn(f"not using cached statistics: {exc}; recomputing", RuntimeWarning, stacklevel=2)
        else:
            stats["path"] = str(path)
            return stats

    images = ds
    if n is not None:
        if not 2 <= n <= len(ds):
            raise ValueError(f"n must be between 2 and the {len(ds)} images of {dataset}/{split}, got {n}")
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        if isinstance(getattr(ds, "images", None), torch.Tensor):
            images = ds.images[idx]
        else:
            images = torch.utils.data.Subset(ds, idx.tolist())
    if progress:
        print(f"computing reference statistics of {dataset}/{split} ({len(images)} images, {ext.name} "
              f"features on {ext.device}); cached for later runs", file=sys.stderr, flush=True)
    feats = extract_features(ext, images, batch_size=batch_size, progress=progress)
    stats = stats_from_features(feats, max_features=max_features, seed=seed, dataset=dataset, split=split,
                                source=str(getattr(ds, "source", "")), extractor=ext.name,
                                extractor_fingerprint=ext.fingerprint(), data_fingerprint=content,
                                img_size=-1 if img_size is None else int(img_size))
    if cache:
        save_stats(path, stats)
        stats["path"] = str(path)
    return stats
