"""Data: image data sets (uint8 (C, H, W) per item), 2-D toy distributions, IDX files, downloads.

Main entry points:

- :func:`load_dataset` (``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``, ``"celeba"``, ``"folder"``)
  -> :class:`ImageDataset`;
- :func:`get_toy` (``"8gaussians"``, ``"25gaussians"``, ``"swissroll"``) -> an object with
  ``sample(n, generator)``, ``centers`` and ``std``;
- :func:`download_file` / :func:`download_dataset` (resumable, verified) raising :class:`DownloadError`.

See docs/data.md for where files go and how images are preprocessed.
"""
from .download import SOURCES, DownloadError, download_dataset, download_file
from .idx import IDXError, read_idx, write_idx
from .images import (DATASET_NAMES, NATIVE_SIZE, CorruptDataError, ImageDataset, ImageFileDataset,
                     TensorImageDataset, UnsafePickleError, load_dataset, resize_images, search_dirs)
from .toy import TOY_DATASETS, ToyDistribution, get_toy

__all__ = [
    "load_dataset", "ImageDataset", "TensorImageDataset", "ImageFileDataset", "DATASET_NAMES", "NATIVE_SIZE",
    "CorruptDataError", "UnsafePickleError", "resize_images", "search_dirs",
    "get_toy", "TOY_DATASETS", "ToyDistribution",
    "download_file", "download_dataset", "DownloadError", "SOURCES",
    "read_idx", "write_idx", "IDXError",
]
