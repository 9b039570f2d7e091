"""Feature extractors for the metrics, behind one registry.

An extractor maps uint8 images (B, C, H, W) to float32 features (B, F) and has ``.name`` and ``.dim``:

    ========== ====== ===========================================================================
    name       dim    network
    ========== ====== ===========================================================================
    inception  2048   FID Inception-v3 pool3 (pytorch-fid weights; any size, 1 or 3 channels;
                      ``resize="pytorch-fid"`` (default) or ``"torch-fidelity"`` input handling)
    classifier 128    robustgan's small Fashion-MNIST classifier, penultimate layer (grayscale;
                      3-channel input is converted with ITU-R BT.601 luma weights)
    ========== ====== ===========================================================================

Features are computed once per image set and shared by every metric (:func:`extract_features`).
Register more with :func:`register_extractor`.
"""
from __future__ import annotations

import hashlib
from typing import Callable

import torch

__all__ = ["FeatureExtractor", "InceptionExtractor", "ClassifierExtractor", "register_extractor",
           "get_extractor", "available_extractors", "extract_features", "to_grayscale"]

_REGISTRY: dict[str, Callable[..., "FeatureExtractor"]] = {}
# extractors built with default options, kept so that evaluating every few epochs does not reload weights
_CACHE: dict[tuple[str, str], "FeatureExtractor"] = {}


def to_grayscale(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) with luma weights 0.299 R + 0.587 G + 0.114 B (dtype kept for floats;
    uint8 input is rounded back to uint8). 1-channel input is returned unchanged."""
    if images.shape[1] == 1:
        return images
    if images.shape[1] != 3:
        raise ValueError(f"expected 1 or 3 channels, got {images.shape[1]}")
    w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    y = (images.float() * w).sum(1, keepdim=True)
    if images.dtype == torch.uint8:
        return y.round().clamp(0, 255).to(torch.uint8)
    return y.to(images.dtype)


class FeatureExtractor:
    """Base class: ``extractor(images_uint8) -> float32 (B, dim)``; subclasses implement ``_features``."""

    name: str = ""
    dim: int = 0
    channels: tuple[int, ...] = (1, 3)
    has_logits: bool = False
    #: how images are prepared for the network; part of the fingerprint
    preprocessing: str = ""

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)

    def _check(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            raise ValueError(f"{self.name} extractor expects a (B, C, H, W) tensor, got "
                             f"{getattr(images, 'shape', type(images))}")
        if images.dtype != torch.uint8:
            raise ValueError(f"{self.name} extractor expects uint8 images in [0, 255], got {images.dtype}; "
                             "convert with robustgan.ranges.range_to_uint8")
        if images.shape[1] not in self.channels:
            raise ValueError(f"{self.name} extractor expects {self.channels} channels, got {images.shape[1]}")
        return images

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self._features(self._check(images)).float().cpu()

    def _features(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def fingerprint(self) -> str:
        """12 hex digits identifying the weights and the input handling (sha256 of the name, the
        preprocessing convention and the state dict's names, dtypes and bytes); part of the
        reference-statistics cache key and stored in each stats file, so new weights or another
        resize convention never reuse old statistics."""
        if getattr(self, "_fingerprint", None) is None:
            h = hashlib.sha256(self.name.encode())
            if self.preprocessing:
                h.update(f"|{self.preprocessing}".encode())
            model = getattr(self, "model", None)
            if model is not None:
                for k, v in model.state_dict().items():
                    h.update(k.encode())
                    h.update(str(v.dtype).encode())
                    h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
            self._fingerprint = h.hexdigest()[:12]
        return self._fingerprint

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, device={str(self.device)!r})"


class InceptionExtractor(FeatureExtractor):
    """FID Inception-v3 pool3 features (2048-d). kw: weights (path), model (a ready FIDInceptionV3,
    e.g. with random weights for tests), dtype (default float32), download (default True), resize
    ("pytorch-fid", default: bilinear and x / 127.5 - 1; or "torch-fidelity": TF1 resize and
    (x - 128) / 128; see robustgan.metrics.inception.preprocess)."""

    name = "inception"
    dim = 2048
    has_logits = True

    def __init__(self, device="cpu", weights=None, model=None, dtype: torch.dtype = torch.float32,
                 download: bool = True, resize: str = "pytorch-fid"):
        super().__init__(device)
        from robustgan.metrics.inception import CONVENTIONS, load_inception
        if resize not in CONVENTIONS:
            raise ValueError(f"unknown resize convention {resize!r}; choose one of {', '.join(CONVENTIONS)}")
        self.preprocessing = resize
        if model is None:
            model = load_inception(weights, device=self.device, dtype=dtype, download=download)
        self.model = model.to(self.device).eval()

    def _features(self, images):
        return self.model(images.to(self.device), convention=self.preprocessing)

    @torch.no_grad()
    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (B, C, H, W) -> (features (B, 2048), bias-free logits (B, 1008)) float32, one pass."""
        f, logits = self.model(self._check(images).to(self.device), return_logits=True,
                               convention=self.preprocessing)
        return f.float().cpu(), logits.float().cpu()


class ClassifierExtractor(FeatureExtractor):
    """Penultimate 128-d features of robustgan's Fashion-MNIST classifier (metrics/classifier.py).
    kw: classifier (name, default "fashion-mnist"), path (explicit weights file), model (a ready module
    with .features)."""

    name = "classifier"
    dim = 128

    def __init__(self, device="cpu", classifier: str = "fashion-mnist", path=None, model=None):
        super().__init__(device)
        if model is None:
            from robustgan.metrics.classifier import load_classifier
            model = load_classifier(classifier, device=self.device, path=path)
        self.model = model.to(self.device).eval()

    def _features(self, images):
        x = to_grayscale(images.to(self.device)).float() / 255.0
        return self.model.features(x)


def register_extractor(name: str, factory: Callable[..., FeatureExtractor]) -> None:
    """Register ``factory(device=..., **kw) -> FeatureExtractor`` under ``name`` (replaces an existing one)."""
    _REGISTRY[name] = factory
    for key in [k for k in _CACHE if k[0] == name]:
        del _CACHE[key]


def available_extractors() -> list[str]:
    """Registered extractor names."""
    return sorted(_REGISTRY)


def get_extractor(name: str, device: str | torch.device = "cpu", cache: bool = True, **kw) -> FeatureExtractor:
    """A feature extractor by name ("inception" -> 2048-d, "classifier" -> 128-d).

    The returned callable maps uint8 images (B, C, H, W) to a float32 CPU tensor (B, dim) and has
    ``.name`` and ``.dim``. Keyword arguments go to the extractor (see :class:`InceptionExtractor`,
    :class:`ClassifierExtractor`). An extractor instance passed as ``name`` is returned as is.
    With ``cache=True`` (default) and options that are plain values (str, numbers, None; e.g.
    ``weights=path, resize="torch-fidelity"``) the instance is kept per (name, device, options) and
    returned again by later calls, so weights are loaded once per process.
    """
    if isinstance(name, FeatureExtractor):
        return name
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown feature extractor {name!r}; choose one of {available_extractors()}") from None
    plain = all(v is None or isinstance(v, (str, int, float, bool)) for v in kw.values())
    key = (name, str(torch.device(device)), *sorted((k, str(v)) for k, v in kw.items() if v is not None))
    if cache and plain and key in _CACHE:
        return _CACHE[key]
    ext = factory(device=device, **kw)
    if cache and plain:
        _CACHE[key] = ext
    return ext


register_extractor("inception", InceptionExtractor)
register_extractor("classifier", ClassifierExtractor)


def _batches(images_or_dataset, batch_size: int):
    if isinstance(images_or_dataset, torch.Tensor):
        for start in range(0, images_or_dataset.shape[0], batch_size):
            yield images_or_dataset[start:start + batch_size]
        return
    images = getattr(images_or_dataset, "images", None)
    if isinstance(images, torch.Tensor):
        yield from _batches(images, batch_size)
        return
    n = len(images_or_dataset)
    for start in range(0, n, batch_size):
        items = [images_or_dataset[i] for i in range(start, min(start + batch_size, n))]
        # datasets may return (image, label) pairs
        yield torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items])


def extract_features(extractor, images_or_dataset, batch_size: int = 100, with_logits: bool = False,
                     progress: bool = False):
    """Features of a whole image set, computed in batches.

    Args:
        extractor: a FeatureExtractor (or a registered name).
        images_or_dataset: uint8 tensor (N, C, H, W), or a dataset whose items are uint8 (C, H, W)
            tensors (or (image, label) pairs); in-memory datasets with ``.images`` are sliced directly.
        batch_size: images per forward pass (default 100). Results do not depend on it beyond
            float round-off.
        with_logits: also return the Inception bias-free logits (inception extractor only).
        progress: show a tqdm bar.

    Returns:
        float32 tensor (N, dim), or (features, logits) with logits (N, 1008) if ``with_logits``.
    """
    extractor = get_extractor(extractor)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if with_logits and not getattr(extractor, "has_logits", False):
        raise ValueError(f"the {extractor.name} extractor has no Inception logits; use extractor='inception'")
    batches = _batches(images_or_dataset, batch_size)
    if progress:
        from tqdm import tqdm
        try:
            total = -(-len(images_or_dataset) // batch_size)
        except TypeError:
            total = None
        batches = tqdm(batches, desc=f"{extractor.name} features", unit="batch", total=total)
    feats, logits = [], []
    for batch in batches:
        if with_logits:
            f, lg = extractor.features_and_logits(batch)
            logits.append(lg)
        else:
            f = extractor(batch)
        feats.append(f)
    if not feats:
        raise ValueError("no images to extract features from")
    out = torch.cat(feats)
    return (out, torch.cat(logits)) if with_logits else out
