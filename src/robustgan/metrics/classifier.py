"""A small CNN classifier whose penultimate layer is the feature space for 28x28 grayscale data.

Inception-v3 features (the FID standard) are a poor fit for MNIST-like data: the images must be
upsampled from 28x28 to 299x299 and replicated to three channels, far from anything ImageNet
taught the network, and the Inception weights cannot be downloaded on an offline machine. Following
common practice for MNIST-like GAN evaluation, we instead train a small classifier on the data set
itself and measure distances (Frechet distance, KID, precision/recall) in its 128-d penultimate
layer. Numbers in this space are comparable only with numbers computed with the same weights file.

Architecture (:class:`SmallCNN`, ~0.24 M parameters, ~1 MB of float32 weights)::

    input (B, 1, 28, 28) in [0, 1] -> (x - mean) / std
    conv3x3(32)  + BN + ReLU -> maxpool 2   (14x14)
    conv3x3(64)  + BN + ReLU -> maxpool 2   (7x7)
    conv3x3(128) + BN + ReLU                (7x7)
    adaptive average pool to 3x3, flatten -> 1152   (keeps the coarse layout: sleeves, collars, heels)
    Linear(1152, 128) + ReLU                <- features(x): (B, 128), the penultimate activations
    Dropout(0.3) -> Linear(128, 10)         <- forward(x): (B, 10) logits

The shipped weights (``weights/fashion-mnist-classifier.safetensors``) were trained with
``scripts/train_classifier.py``; see docs/classifier.md for the command and the test accuracy.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

#: directory holding the shipped weight files
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: classifier name -> weights file name inside WEIGHTS_DIR
CLASSIFIERS = {
    "fashion-mnist": "fashion-mnist-classifier.safetensors",
    "mnist": "mnist-classifier.safetensors",
}

#: the image size the network was trained on
IMAGE_SIZE = 28
#: dimension of the feature space returned by ``features``
FEATURE_DIM = 128
NUM_CLASSES = 10


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """The classifier network.

    Args:
        num_classes: number of output logits (default 10).
        feature_dim: width of the penultimate layer (default 128).
        dropout: dropout probability before the last layer (default 0.3, active in train mode only).

    Inputs to :meth:`forward` and :meth:`features` are images (B, 1, H, W), either float in [0, 1]
    or uint8 in [0, 255] (divided by 255). Images whose size is not 28x28 are resized to 28x28
    (bilinear with antialiasing). The input is standardised with the ``input_mean`` / ``input_std``
    buffers, which are stored with the weights (the training set's pixel mean and std).
    """

    def __init__(self, num_classes: int = NUM_CLASSES, feature_dim: int = FEATURE_DIM, dropout: float = 0.3):
        super().__init__()
        self.register_buffer("input_mean", torch.tensor(0.5))
        self.register_buffer("input_std", torch.tensor(0.5))
        self.body = nn.Sequential(
            _conv_block(1, 32), nn.MaxPool2d(2),
            _conv_block(32, 64), nn.MaxPool2d(2),
            _conv_block(64, 128),
        )
        self.pool = nn.AdaptiveAvgPool2d(3)
        self.fc = nn.Linear(128 * 3 * 3, feature_dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim
        #: metadata of the weights file (dataset, test accuracy, ...), filled by load_classifier
        self.metadata: dict[str, str] = {}

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, H, W), uint8 in [0, 255] or float in [0, 1] -> float (B, 1, 28, 28) in [0, 1].

        A 3-D tensor (1, H, W) is taken as one image. Raises ValueError for other shapes or a
        channel count other than 1.
        """
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(
                f"the classifier expects grayscale images of shape (B, 1, H, W), got {tuple(x.shape)}; "
                "convert colour images to one channel first")
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        elif not torch.is_floating_point(x):
            raise ValueError(f"the classifier expects uint8 or float images, got dtype {x.dtype}")
        x = x.to(device=self.input_mean.device, dtype=torch.float32)
        if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False,
                              antialias=True)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations: images (B, 1, H, W) -> (B, 128) float32, non-negative (after ReLU)."""
        x = self.prepare(x)
        h = self.body((x - self.input_mean) / self.input_std)
        h = self.pool(h).flatten(1)
        return F.relu(self.fc(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits: images (B, 1, H, W) -> (B, 10) float32."""
        return self.head(self.dropout(self.features(x)))


def available_classifiers() -> list[str]:
    """Names accepted by :func:`load_classifier` (whether or not their weights file is present)."""
    return sorted(CLASSIFIERS)


def weights_path(name: str) -> Path:
    """Path of the shipped weights file for classifier ``name`` (may not exist for "mnist")."""
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; available: {', '.join(available_classifiers())}")
    return WEIGHTS_DIR / CLASSIFIERS[name]


def save_classifier(model: SmallCNN, path: str | Path, metadata: dict | None = None) -> Path:
    """Write ``model``'s state dict to a safetensors file, with ``metadata`` (values stringified).

    The file is written to a temporary name and renamed, so a reader never sees half a file.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {str(k): (v if isinstance(v, str) else json.dumps(v)) for k, v in (metadata or {}).items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.chmod(0o644)  # a shipped package file: readable by everyone
    tmp.replace(path)
    return path


def load_classifier(name: str = "fashion-mnist", device: str | torch.device = "cpu", *,
                    path: str | Path | None = None) -> SmallCNN:
    """Load a trained classifier in eval mode.

    Args:
        name: "fashion-mnist" (shipped) or "mnist" (only if ``mnist-classifier.safetensors`` was
            trained with scripts/train_classifier.py and placed in the weights directory).
        device: torch device for the model (default "cpu").
        path: optional explicit weights file (safetensors) overriding the shipped one.

    Returns:
        A :class:`SmallCNN` in eval mode with ``.features(x) -> (B, 128)`` and ``forward(x) -> (B, 10)``
        logits, for x of shape (B, 1, H, W) float in [0, 1] or uint8; ``.metadata`` holds the file's
        metadata (e.g. "dataset", "test_accuracy").

    Raises:
        ValueError: unknown name.
        FileNotFoundError: the weights file is missing (with the command that creates it).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    file = Path(path) if path is not None else weights_path(name)
    if not file.is_file():
        if path is not None:
            raise FileNotFoundError(f"classifier weights {file} not found")
        raise FileNotFoundError(
            f"no weights for the {name!r} classifier ({file}); train them with "
            f"`python scripts/train_classifier.py --dataset {name} --root DIR --out {file}`")
    state = load_file(str(file), device="cpu")
    with safe_open(str(file), framework="pt") as fh:
        metadata = dict(fh.metadata() or {})
    model = SmallCNN()
    model.load_state_dict(state, strict=True)
    model.metadata = metadata
    return model.to(device).eval()
