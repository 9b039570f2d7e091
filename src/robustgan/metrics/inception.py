"""The FID Inception-v3: the TensorFlow 2015-12-05 Inception graph used by the original FID code.

Module names and parameter shapes follow pytorch-fid, so its weights file
``pt_inception-2015-12-05-6726825d.pth`` (a port of the TensorFlow graph) loads unchanged with
``strict=True``. The network differs from torchvision's Inception-v3 in ways that matter for FID:

* 1008 output classes (the TF graph's softmax), no auxiliary classifier;
* the average pools inside the A, C and first E blocks do not count zero padding
  (``count_include_pad=False``), as TensorFlow's pooling does;
* the last block (Mixed_7c) pools its branch with a *max* pool, a quirk of the TF graph.

Input handling (:func:`preprocess`) follows one of two published conventions; grayscale images
are repeated to 3 channels in both:

* ``"pytorch-fid"`` (default; what pytorch-fid computes, and so the numbers it reproduces): uint8
  -> x / 255 -> PyTorch bilinear resize to 299x299 (``align_corners=False``, half-pixel centres)
  -> 2x - 1, i.e. x / 127.5 - 1.
* ``"torch-fidelity"`` (what torch-fidelity computes, which re-implements the original TensorFlow
  FID/IS code): uint8 as float -> TensorFlow 1.x ``resize_bilinear`` (source pixel = output pixel
  * in / out, no half-pixel offset) -> (x - 128) / 128.

The two give different features (docs/metrics.md gives measured sizes), so compare only FIDs
computed with the same convention.

FID numbers are comparable with published ones only with these weights; never substitute
torchvision's ImageNet weights. Get them with :func:`load_inception` (see its docstring for offline use).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "FID_WEIGHTS_URL", "FID_WEIGHTS_NAME", "FID_WEIGHTS_SHA256_PREFIX", "FIDInceptionV3",
    "cache_root", "find_inception_weights", "load_inception", "preprocess", "resize_tf1", "CONVENTIONS",
]

FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_SHA256_PREFIX = "6726825d"
WEIGHTS_ENV = "ROBUSTGAN_INCEPTION_WEIGHTS"
CACHE_ENV = "ROBUSTGAN_CACHE"
INPUT_SIZE = 299
#: input conventions of :func:`preprocess`
CONVENTIONS = ("pytorch-fid", "torch-fidelity")


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, as TF) -> ReLU. Keys: conv.weight, bn.*."""

    def __init__(self, in_channels: int, out_channels: int, **conv_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_tf(x):
    # TensorFlow's SAME-padded average pool divides by the number of real (unpadded) inputs
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1  -> 224 + pool_features channels."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x):
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_avg_pool_tf(x))
        return torch.cat([a, b, c, d], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2  -> 480 + in_channels channels."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        c = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([a, b, c], 1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions -> 768 channels."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x):
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            c = layer(c)
        d = self.branch_pool(_avg_pool_tf(x))
        return torch.cat([a, b, c, d], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2 -> 512 + in_channels channels."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        c = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([a, b, c], 1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3 / 3x1 outputs -> 2048 channels.

    ``pool="avg"`` (Mixed_7b: TF average pool without padding) or ``pool="max"`` (Mixed_7c: the TF graph
    uses a max pool here).
    """

    def __init__(self, in_channels: int, pool: str):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x):
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], 1)
        if self.pool == "avg":
            pooled = _avg_pool_tf(x)
        else:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        d = self.branch_pool(pooled)
        return torch.cat([a, b, c, d], 1)


def resize_tf1(x: torch.Tensor, size: int) -> torch.Tensor:
    """TensorFlow 1.x ``tf.image.resize_bilinear(align_corners=False)`` of float (B, C, H, W) to
    (B, C, size, size): output pixel i samples the input at i * in / out (no half-pixel offset),
    interpolating between floor and floor + 1 (clamped to the last pixel)."""
    def axis(n_in: int):
        src = torch.arange(size, dtype=torch.float64, device=x.device) * (n_in / size)
        lo = src.floor().long().clamp_max(n_in - 1)
        hi = (lo + 1).clamp_max(n_in - 1)
        return lo, hi, (src - lo).to(x.dtype)

    ylo, yhi, dy = axis(x.shape[-2])
    xlo, xhi, dx = axis(x.shape[-1])
    top, bottom = x[..., ylo, :], x[..., yhi, :]
    rows = top + (bottom - top) * dy.view(-1, 1)
    left, right = rows[..., xlo], rows[..., xhi]
    return left + (right - left) * dx


def preprocess(images: torch.Tensor, dtype: torch.dtype = torch.float32,
               convention: str = "pytorch-fid") -> torch.Tensor:
    """uint8 (B, 1 or 3, H, W) -> (B, 3, 299, 299) in [-1, 1] as pytorch-fid or torch-fidelity does.

    ``convention``: "pytorch-fid" (bilinear, x / 127.5 - 1; default) or "torch-fidelity" (TF1
    resize, (x - 128) / 128; uint8 input only). Float input is accepted for "pytorch-fid" if
    already in [0, 1] (e.g. from a generator); it is not rescaled by 255.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown input convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (B, 1 or 3, H, W), got {tuple(images.shape)}")
    if convention == "torch-fidelity":
        if images.dtype != torch.uint8:
            raise ValueError(f"the torch-fidelity convention expects uint8 images, got dtype {images.dtype}")
        x = images.to(dtype)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = resize_tf1(x, INPUT_SIZE)
        return (x - 128.0) / 128.0
    if images.dtype == torch.uint8:
        x = images.to(dtype) / 255.0
    elif images.is_floating_point():
        x = images.to(dtype)
    else:
        raise ValueError(f"expected uint8 images (or float in [0, 1]), got dtype {images.dtype}")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return 2.0 * x - 1.0


class FIDInceptionV3(nn.Module):
    """Inception-v3 with the FID (TF 2015-12-05) structure; eval mode, no gradients needed.

    ``forward(images)`` takes uint8 images (B, 1 or 3, H, W) and returns the 2048-d pool3 features
    (B, 2048) in the model's dtype; ``convention`` chooses the input handling (:func:`preprocess`). ``forward(images, return_logits=True)`` returns
    ``(features, logits)`` where logits (B, 1008) = features @ fc.weight^T *without* the bias: that is
    what the original Inception Score code computed ("softmax/logits/MatMul") and what torch-fidelity
    calls ``logits_unbiased``. The full classifier output is ``model.fc(features)``.
    """

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, 1008)
        self.eval()
        self.requires_grad_(False)

    def pool3(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed input (B, 3, 299, 299) in [-1, 1] -> pool3 features (B, 2048)."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))

    def forward(self, images: torch.Tensor, return_logits: bool = False, convention: str = "pytorch-fid"):
        dtype = self.fc.weight.dtype
        x = preprocess(images.to(self.fc.weight.device), dtype, convention)
        feats = self.pool3(x)
        if return_logits:
            return feats, feats @ self.fc.weight.T
        return feats


# ---------------------------------------------------------------- weights

def cache_root() -> Path:
    """Root of robustgan's cache: $ROBUSTGAN_CACHE if set, else ~/.cache/robustgan."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "robustgan"


def _how_to_get_weights() -> str:
    return (f"download {FID_WEIGHTS_URL} and either put it at {cache_root() / FID_WEIGHTS_NAME}, "
            f"set ${WEIGHTS_ENV} to its path, or pass its path explicitly")


def find_inception_weights(weights: str | os.PathLike | None = None) -> Path | None:
    """The FID weights file to use, or None if none is found locally.

    Order: the explicit ``weights`` path (must exist), $ROBUSTGAN_INCEPTION_WEIGHTS (must exist),
    <cache_root()>/pt_inception-2015-12-05-6726825d.pth.
    """
    if weights is not None:
        p = Path(weights).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"Inception weights not found at {p}; {_how_to_get_weights()}")
        return p
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"${WEIGHTS_ENV}={env} does not exist; {_how_to_get_weights()}")
        return p
    p = cache_root() / FID_WEIGHTS_NAME
    return p if p.is_file() else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download_weights(url: str | None = None) -> Path:
    url = url or FID_WEIGHTS_URL
    dest = cache_root() / FID_WEIGHTS_NAME
    try:
        from robustgan.data.download import download_file
        dest.parent.mkdir(parents=True, exist_ok=True)
        path = Path(download_file(url, dest))  # resumable, atomic rename; DownloadError is a RuntimeError
    except (ImportError, OSError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FileNotFoundError(
            f"FID Inception weights not available offline ({reason}); {_how_to_get_weights()}") from None
    digest = _sha256(path)
    if not digest.startswith(FID_WEIGHTS_SHA256_PREFIX):
        path.unlink(missing_ok=True)
        raise RuntimeError(f"downloaded {url} has sha256 {digest[:16]}..., expected prefix "
                           f"{FID_WEIGHTS_SHA256_PREFIX}; deleted it, try again")
    return path


def load_inception(weights: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                   download: bool = True, check_hash: bool = True,
                   dtype: torch.dtype = torch.float32) -> FIDInceptionV3:
    """The FID Inception-v3 with pytorch-fid's ported TF weights, in eval mode.

    Args:
        weights: path of ``pt_inception-2015-12-05-6726825d.pth``. If None: $ROBUSTGAN_INCEPTION_WEIGHTS,
            then <cache>/pt_inception-2015-12-05-6726825d.pth (cache = $ROBUSTGAN_CACHE or
            ~/.cache/robustgan), else (``download=True``) it is downloaded there from FID_WEIGHTS_URL.
        device, dtype: where and in which precision the model runs (default cpu, float32).
        download: allow the download. check_hash: check that the file's sha256 starts with 6726825d.

    Raises:
        FileNotFoundError with a one-line explanation (URL, cache path, env var) when no weights can be
        found or downloaded; ValueError if the file's hash or keys do not match.
    """
    path = find_inception_weights(weights)
    if path is None:
        if not download:
            raise FileNotFoundError(f"FID Inception weights not found; {_how_to_get_weights()}")
        path = _download_weights()
    elif check_hash:
        digest = _sha256(path)
        if not digest.startswith(FID_WEIGHTS_SHA256_PREFIX):
            raise ValueError(f"{path} has sha256 {digest[:16]}..., not the FID weights (prefix "
                             f"{FID_WEIGHTS_SHA256_PREFIX}); pass check_hash=False to use it anyway")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = FIDInceptionV3()
    # files written before BatchNorm tracked its batch count lack these buffers (never used in eval)
    for key in [k for k in model.state_dict() if k.endswith("num_batches_tracked") and k not in state]:
        state[key] = torch.zeros((), dtype=torch.long)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path} is not a pytorch-fid FID Inception state dict: {str(exc).splitlines()[0]}") from None
    return model.to(device=device, dtype=dtype).eval()
