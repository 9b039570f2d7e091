"""Users' own training data for :class:`robustgan.train.loop.Trainer`.

The trainer stores image data as uint8 ``(N, C, H, W)`` like every robustgan data set (it turns
them into the model's range on the device). :func:`as_image_dataset` accepts what a PyTorch user
already has:

* a uint8 tensor ``(N, C, H, W)`` (H == W);
* a float tensor ``(N, C, H, W)`` with values in [0, 1], quantised to uint8 (steps of 1/255, the
  precision of the image files such data usually came from);
* any ``torch.utils.data.Dataset`` whose items are an image tensor or an ``(image, label, ...)``
  tuple (torchvision style), uint8 or float in [0, 1]. It is read once into memory.
"""
from __future__ import annotations

import torch

from .images import ImageDataset, TensorImageDataset


def _to_uint8(x: torch.Tensor, what: str) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        raise ValueError(f"{what}: images must be uint8 or float in [0, 1], got {x.dtype}")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"{what}: float images must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}] "
                         f"(for [-1, 1] data pass (x + 1) / 2)")
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def as_image_dataset(data, name: str = "user") -> ImageDataset:
    """``data`` as an in-memory :class:`~robustgan.data.images.TensorImageDataset` (see module doc)."""
    if isinstance(data, ImageDataset):
        return data
    if isinstance(data, torch.Tensor):
        images = _to_uint8(data, "data")
    else:
        if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
            raise ValueError(f"data must be an image tensor or a Dataset with __len__ and __getitem__, "
                             f"got {type(data).__name__}")
        items = []
        for i in range(len(data)):
            item = data[i]
            if isinstance(item, (tuple, list)):
                item = item[0]
            items.append(_to_uint8(torch.as_tensor(item), f"data[{i}]"))
        if not items:
            raise ValueError("data is empty")
        images = torch.stack(items)
    if images.ndim != 4 or images.shape[2] != images.shape[3] or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, C, H, H) with C = 1 or 3, got {tuple(images.shape)}")
    return TensorImageDataset(images.contiguous(), name=name, split="train", source="user data")
