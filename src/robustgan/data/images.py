"""Image data sets: MNIST, Fashion-MNIST, CIFAR-10, CelebA and any folder of images.

Every data set is an :class:`ImageDataset`: ``ds[i]`` is a uint8 tensor (C, H, W) with H = W =
``ds.img_size``; ``ds.labels`` is a LongTensor (N,) or None. Sets held in memory (MNIST,
Fashion-MNIST, CIFAR-10, and CelebA / folders after ``preload``) also have ``ds.images``, a uint8
tensor (N, C, H, W). The trainer converts to the model's pixel range (``robustgan.ranges``).

Preprocessing (see docs/data.md):

- Resizing is bilinear with antialiasing (``torch.nn.functional.interpolate(mode="bilinear",
  antialias=True, align_corners=False)``, within 1 grey level of Pillow's BILINEAR), rounded to
  uint8. For MNIST-like sets ``resize_mode="pad"`` zero-pads instead (28 -> 32 adds 2 pixels on
  each side, the LeNet convention), keeping the digits' pixels exact.
- CelebA: the aligned 178x218 images are centre-cropped to 108x108 (top 55, left 35; the crop of
  DCGAN-era CelebA code), then resized to ``img_size`` (default 64).
- Folders: each image is centre-cropped to a square of its shorter side, then resized.
"""
from __future__ import annotations

import operator
import os
import pickle
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .download import SOURCES, default_data_dir, download_dataset
from .idx import read_idx

#: names accepted by :func:`load_dataset`
DATASET_NAMES = ("mnist", "fashion-mnist", "cifar10", "celeba", "folder")
#: native side length (img_size=None keeps it)
NATIVE_SIZE = {"mnist": 28, "fashion-mnist": 28, "cifar10": 32, "celeba": 64}
#: centre crop applied to the 178x218 aligned CelebA images before resizing
CELEBA_CROP = 108
CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
#: file name endings read by the folder data set (case-insensitive)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
#: folders searched last, when no root is given (Debian's dataset-fashion-mnist package)
SYSTEM_DIRS: dict[str, list[Path]] = {"fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")]}
RESIZE_MODES = ("resize", "pad")

#: accepted spellings, after lower-casing and removing "-" and "_"
_ALIASES = {"mnist": "mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
            "cifar10": "cifar10", "cifar": "cifar10", "celeba": "celeba", "folder": "folder",
            "imagefolder": "folder"}


class CorruptDataError(ValueError):
    """A data file exists but cannot be read (corrupt, truncated, or not what it claims to be)."""


class UnsafePickleError(CorruptDataError):
    """A pickle asked for something other than the few numpy types a CIFAR-10 batch contains."""


# ---------------------------------------------------------------------------------------------
# data set classes
# ---------------------------------------------------------------------------------------------
class ImageDataset(Dataset):
    """Base class of all image data sets: ``ds[i]`` -> uint8 tensor (C, img_size, img_size).

    Attributes: ``name`` (e.g. "cifar10"), ``split`` ("train", "test", ...), ``channels`` (1 or 3),
    ``img_size`` (side length), ``labels`` (LongTensor (N,) or None), ``num_classes`` (10 for
    MNIST-like sets and CIFAR-10, None without labels), ``source`` (the folder it was read from),
    ``images`` (uint8 (N, C, H, W) for sets held in memory, else None), ``options``
    (preprocessing settings, also in ``config``).
    """

    images: torch.Tensor | None = None

    def __init__(self, *, name: str, split: str, channels: int, img_size: int,
                 labels: torch.Tensor | None = None, source: str = "", options: dict | None = None,
                 num_classes: int | None = None):
        self.name = name
        self.split = split
        self.channels = int(channels)
        self.img_size = int(img_size)
        self.labels = None if labels is None else torch.as_tensor(labels, dtype=torch.long)
        if num_classes is None and self.labels is not None and len(self.labels):
            num_classes = int(self.labels.max()) + 1
        self.num_classes = num_classes
        self.source = str(source)
        self.options = dict(options or {})

    @property
    def config(self) -> dict:
        """What identifies this data set's pixels (for logs and for caching metric statistics)."""
        return {"name": self.name, "split": self.split, "n": len(self), "channels": self.channels,
                "img_size": self.img_size, **self.options}

    def __repr__(self) -> str:
        where = "memory" if self.images is not None else "lazy"
        return (f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"channels={self.channels}, img_size={self.img_size}, {where}, source={self.source!r})")


class TensorImageDataset(ImageDataset):
    """An image data set held in memory: ``images`` uint8 (N, C, H, W) with H == W, ``labels`` (N,) or None."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None, *, name: str,
                 split: str, source: str = "", options: dict | None = None, num_classes: int | None = None):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[2] != images.shape[3]:
            raise ValueError(f"images must be a uint8 tensor (N, C, H, H), got {images.dtype} {tuple(images.shape)}")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        super().__init__(name=name, split=split, channels=images.shape[1], img_size=images.shape[2],
                         labels=labels, source=source, options=options, num_classes=num_classes)
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i) -> torch.Tensor:
        return self.images[i]


class ImageFileDataset(ImageDataset):
    """Images decoded from files on ``__getitem__`` (Pillow), centre-cropped and resized.

    ``crop``: "square" (the largest centred square) or an int side length (a centred
    crop x crop box; images smaller than that are an error). ``preload()`` decodes everything
    into ``images`` (uint8 (N, C, S, S); about N * C * S * S bytes) and serves from memory after.
    """

    def __init__(self, files: Sequence[str | os.PathLike], *, img_size: int, channels: int = 3,
                 crop: str | int = "square", name: str, split: str, source: str = "",
                 labels: torch.Tensor | None = None, options: dict | None = None):
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        super().__init__(name=name, split=split, channels=channels, img_size=img_size, labels=labels,
                         source=source, options=options)
        self.files = [str(f) for f in files]
        self.crop = crop
        self.images = None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i) -> torch.Tensor:
        if self.images is not None:
            return self.images[i]
        return load_image(self.files[operator.index(i)], self.img_size, channels=self.channels, crop=self.crop)

    def preload(self, progress: bool = False) -> "ImageFileDataset":
        """Decode every image into ``self.images`` (uint8 (N, C, S, S)); returns self."""
        out = torch.empty(len(self.files), self.channels, self.img_size, self.img_size, dtype=torch.uint8)
        indices = range(len(self.files))
        if progress:
            from tqdm import tqdm
            indices = tqdm(indices, desc=f"decoding {self.name}", unit="img", leave=False)
        for i in indices:
            out[i] = load_image(self.files[i], self.img_size, channels=self.channels, crop=self.crop)
        self.images = out
        return self


# ---------------------------------------------------------------------------------------------
# pixels
# ---------------------------------------------------------------------------------------------
def resize_images(x: torch.Tensor, size: int, *, chunk: int = 4096) -> torch.Tensor:
    """Resize uint8 images (N, C, H, W) or (C, H, W) to size x size.

    Bilinear, antialiased when shrinking, half-pixel centres (align_corners=False); rounded and
    clamped to uint8. Matches Pillow's BILINEAR resize within 1 grey level. Processes ``chunk``
    images at a time to bound memory.
    """
    single = x.ndim == 3
    if single:
        x = x.unsqueeze(0)
    if x.shape[-2:] == (size, size):
        return x[0] if single else x
    out = torch.empty(*x.shape[:2], size, size, dtype=torch.uint8)
    for s in range(0, len(x), chunk):
        y = F.interpolate(x[s:s + chunk].float(), size=(size, size), mode="bilinear",
                          align_corners=False, antialias=True)
        out[s:s + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out[0] if single else out


def pad_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad uint8 images (..., H, W) to size x size, centred (the extra pixel, if odd, goes right/bottom)."""
    h, w = x.shape[-2:]
    if size < h or size < w:
        raise ValueError(f"resize_mode='pad' cannot shrink {h}x{w} images to {size}x{size}; use resize_mode='resize'")
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(x, (left, size - w - left, top, size - h - top))


def _to_channels(x: torch.Tensor, channels: int | None) -> torch.Tensor:
    """uint8 (N, C, H, W) -> (N, channels, H, W): gray -> RGB repeats; RGB -> gray uses Pillow's "L" weights."""
    if channels is None or channels == x.shape[1]:
        return x
    if channels == 3 and x.shape[1] == 1:
        return x.repeat(1, 3, 1, 1)
    if channels == 1 and x.shape[1] == 3:
        # ITU-R 601-2 luma in Pillow's fixed point: L = (19595 R + 38470 G + 7471 B + 32768) >> 16
        w = torch.tensor([19595, 38470, 7471], dtype=torch.int32).view(1, 3, 1, 1)
        return ((x.int() * w).sum(1, keepdim=True) + 32768).bitwise_right_shift(16).to(torch.uint8)
    raise ValueError(f"channels must be 1 or 3, got {channels}")


def _fit_size(x: torch.Tensor, img_size: int | None, resize_mode: str) -> torch.Tensor:
    if img_size is None or img_size == x.shape[-1]:
        return x
    if resize_mode == "pad":
        return pad_images(x, img_size)
    return resize_images(x, img_size)


def load_image(path: str | os.PathLike, img_size: int, *, channels: int = 3,
               crop: str | int = "square") -> torch.Tensor:
    """Decode one image file with Pillow -> uint8 tensor (channels, img_size, img_size).

    ``crop`` "square": centred square of the shorter side; an int: centred crop x crop box (top =
    (H - crop) // 2, left = (W - crop) // 2). Then bilinear antialiased resize. A file that
    cannot be decoded raises :class:`CorruptDataError` naming it.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB" if channels == 3 else "L"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image file not found (was it moved or deleted?)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise CorruptDataError(f"{path}: cannot decode image ({exc}); the file is corrupt or truncated, "
                               "replace or delete it") from None
    t = torch.from_numpy(arr.copy())
    t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)
    h, w = t.shape[-2:]
    side = min(h, w) if crop == "square" else int(crop)
    if side > h or side > w:
        raise ValueError(f"{path}: image is {w}x{h}, smaller than the {side}x{side} centre crop")
    top, left = (h - side) // 2, (w - side) // 2
    t = t[:, top:top + side, left:left + side]
    return resize_images(t.contiguous(), img_size)


# ---------------------------------------------------------------------------------------------
# where files are looked for
# ---------------------------------------------------------------------------------------------
def search_dirs(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for data set ``name``, in order.

    With ``root``: ``root`` and ``root/<name>``. Without: ``$ROBUSTGAN_DATA/<name>`` (if the
    variable is set), ``~/.cache/robustgan/data/<name>``, then system folders (for
    fashion-mnist: /usr/share/datasets/fashion-mnist, from Debian's dataset-fashion-mnist).
    """
    if root is not None:
        root = Path(root).expanduser()
        return [root, root / name]
    dirs = []
    env = os.environ.get("ROBUSTGAN_DATA")
    if env:
        dirs.append(Path(env).expanduser() / name)
    dirs.append(Path.home() / ".cache" / "robustgan" / "data" / name)
    dirs.extend(SYSTEM_DIRS.get(name, []))
    return dirs


def _where(dirs: Sequence[Path], root) -> str:
    where = ", ".join(map(str, dirs))
    return where if root is not None else f"{where} (or set ROBUSTGAN_DATA=<dir> to use <dir>/<name>)"


def _download_hint(name: str) -> str:
    return (f"pass download=True (data.download=true for robustgan train, or run robustgan download {name}) "
            "when online") if name in SOURCES else ""


def _check_split(name: str, split: str, allowed: Sequence[str]) -> str:
    if split not in allowed:
        raise ValueError(f"{name} has no split {split!r}; choose one of {', '.join(allowed)}")
    return split


# ---------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST
# ---------------------------------------------------------------------------------------------
def _idx_file(folder: Path, stem: str) -> Path | None:
    # "train-images-idx3-ubyte" -> also the un-gzipped file and the "train-images.idx3-ubyte" spelling
    dotted = stem.replace("-idx", ".idx")
    for candidate in (stem + ".gz", stem, dotted + ".gz", dotted):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def load_mnist_like(name: str = "mnist", root: str | os.PathLike | None = None, split: str = "train",
                    img_size: int | None = None, download: bool = False, *, resize_mode: str = "resize",
                    channels: int | None = None) -> TensorImageDataset:
    """MNIST or Fashion-MNIST from IDX files -> in-memory set of uint8 (1, S, S) images with labels 0..9.

    Files: ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (un-gzipped also read), searched
    in :func:`search_dirs`. ``split`` "train" (60,000) or "test" (10,000). ``img_size`` None keeps
    28; otherwise ``resize_mode`` "resize" (bilinear, default) or "pad" (zero padding, e.g. 2 px
    per side for 32). ``channels`` 3 repeats the grey channel.
    """
    _check_split(name, split, ("train", "test"))
    prefix = "train" if split == "train" else "t10k"
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    dirs = search_dirs(name, root)

    def find():
        for d in dirs:
            paths = [_idx_file(d, s) for s in stems]
            if all(paths):
                return d, paths
        return None, None

    folder, paths = find()
    if folder is None and download:
        target = Path(root).expanduser() if root is not None else default_data_dir(name)
        download_dataset(name, target)
        dirs = [target]
        folder, paths = find()
    if folder is None:
        hint = _download_hint(name)
        raise FileNotFoundError(
            f"{name} ({split} split) not found: need {stems[0]}.gz and {stems[1]}.gz (un-gzipped also "
            f"accepted) in one of: {_where(dirs, root)}; put the files there"
            + (f", or {hint}" if hint else ""))
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise CorruptDataError(f"{paths[0]}: expected uint8 images of shape (N, H, W), got {images.dtype} "
                               f"{images.shape}; this is not an {name} image file")
    if labels.ndim != 1 or len(labels) != len(images):
        raise CorruptDataError(f"{paths[1]}: {labels.shape} labels for {len(images)} images in {paths[0]}; "
                               "the files do not belong together, delete both and download them again")
    x = torch.from_numpy(images).unsqueeze(1)
    x = _fit_size(_to_channels(x, channels), img_size, resize_mode)
    return TensorImageDataset(x, torch.from_numpy(labels.astype(np.int64)), name=name, split=split,
                              source=str(folder), options={"resize_mode": resize_mode}, num_classes=10)


# ---------------------------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------------------------
def _numpy_reconstruct():
    core = getattr(np, "_core", None)
    if core is None:  # numpy < 2
        core = np.core
    return core.multiarray._reconstruct


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` as a Python-3 protocol-2 pickle uses it: bytes stored as a latin-1 string."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _array_from_buffer(buf, dtype, shape, order="C"):
    """numpy's ``_frombuffer`` as a protocol-5 pickle uses it, for plain (non-object) dtypes only."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError(f"refusing an array of dtype {dtype!r}")
    if not isinstance(shape, tuple) or not all(isinstance(n, int) for n in shape) or order not in ("C", "F"):
        raise UnsafePickleError("refusing an array with a malformed shape or order")
    return np.frombuffer(memoryview(buf), dtype=dtype).reshape(shape, order=order).copy()


#: the only globals a CIFAR-10 batch may name: numpy array and dtype reconstruction, and the two
#: helpers Python 3 writes for array data (``_codecs.encode`` in protocol 2, ``_frombuffer`` in
#: protocol 5), each replaced by a version that accepts only what an array needs
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
    ("numpy.core.numeric", "_frombuffer"): lambda: _array_from_buffer,
    ("numpy._core.numeric", "_frombuffer"): lambda: _array_from_buffer,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy's ndarray / dtype reconstruction; everything else is refused."""

    def find_class(self, module, name):
        get = _PICKLE_ALLOWED.get((module, name))
        if get is None:
            raise UnsafePickleError(f"refusing to unpickle {module}.{name}")
        return get()

    def persistent_load(self, pid):
        raise UnsafePickleError("refusing to unpickle a persistent id")


def restricted_load(fh) -> object:
    """Unpickle from the binary file ``fh`` allowing only dicts, lists, str/bytes, numbers and numpy arrays.

    Python-2 strings are decoded as latin-1 (as the CIFAR-10 batches need). Any other global
    (a function, a class) raises :class:`UnsafePickleError`.
    """
    return _RestrictedUnpickler(fh, encoding="latin1").load()


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            batch = restricted_load(fh)
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}; this is not a genuine CIFAR-10 batch (a pickle can run "
                                "code), delete it and download the data again") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError, OSError) as exc:
        raise CorruptDataError(f"{path}: cannot read CIFAR-10 batch ({type(exc).__name__}: {exc}); the file "
                               "is corrupt or truncated, delete it and download the data again") from None
    if not isinstance(batch, dict):
        raise CorruptDataError(f"{path}: not a CIFAR-10 batch (a {type(batch).__name__}, not a dict)")
    batch = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise CorruptDataError(f"{path}: 'data' is not a uint8 array of shape (N, 3072); not a CIFAR-10 batch")
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise CorruptDataError(f"{path}: 'labels' is not a list of integers; not a CIFAR-10 batch") from None
    if len(labels) != len(data):
        raise CorruptDataError(f"{path}: {len(data)} images but {len(labels)} labels; the file is damaged")
    return data, labels


def load_cifar10(root: str | os.PathLike | None = None, split: str = "train", img_size: int | None = None,
                 download: bool = False, *, channels: int | None = None) -> TensorImageDataset:
    """CIFAR-10 from the python batches -> in-memory set of uint8 (3, 32, 32) images, labels 0..9.

    Looks for ``cifar-10-batches-py/{data_batch_1..5, test_batch}`` in :func:`search_dirs`
    (a folder may also be the ``cifar-10-batches-py`` folder itself). Batches are read with a
    restricted unpickler. ``split`` "train" (50,000) or "test" (10,000). ``img_size`` None keeps
    32, else bilinear antialiased resize. ``channels`` 1 converts to grey (Pillow's weights).
    """
    _check_split("cifar10", split, ("train", "test"))
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    dirs = search_dirs("cifar10", root)

    def find():
        for d in dirs:
            for folder in (d / "cifar-10-batches-py", d):
                if all((folder / n).is_file() for n in names):
                    return folder
        return None

    folder = find()
    if folder is None and download:
        target = Path(root).expanduser() if root is not None else default_data_dir("cifar10")
        download_dataset("cifar10", target)
        dirs = [target]
        folder = find()
    if folder is None:
        raise FileNotFoundError(
            f"cifar10 ({split} split) not found: need cifar-10-batches-py/{{{','.join(names)}}} under one of: "
            f"{_where(dirs, root)}; download cifar-10-python.tar.gz from {CIFAR10_URL} and extract it "
            f"there, or {_download_hint('cifar10')}")
    parts = [_read_cifar_batch(folder / n) for n in names]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    # each row: 1024 red, then 1024 green, then 1024 blue values, each a 32x32 image in row-major order
    x = torch.from_numpy(data).view(-1, 3, 32, 32)
    x = _fit_size(_to_channels(x, channels), img_size, "resize")
    return TensorImageDataset(x.contiguous(), torch.from_numpy(labels), name="cifar10", split=split,
                              source=str(folder), options={"resize_mode": "resize"}, num_classes=10)


# ---------------------------------------------------------------------------------------------
# CelebA
# ---------------------------------------------------------------------------------------------
_CELEBA_SPLITS = {"train": 0, "valid": 1, "val": 1, "validation": 1, "test": 2}


def _celeba_paths(base: Path) -> tuple[Path | None, Path | None]:
    img_dir = None
    for d in (base / "img_align_celeba", base / "Img" / "img_align_celeba"):
        if d.is_dir():
            # unzipping into a folder of the same name nests it once more
            img_dir = d / "img_align_celeba" if (d / "img_align_celeba").is_dir() else d
            break
    partition = None
    for p in (base / "list_eval_partition.txt", base / "Eval" / "list_eval_partition.txt"):
        if p.is_file():
            partition = p
            break
    return img_dir, partition


def _read_partition(path: Path) -> list[tuple[str, int]]:
    rows = []
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptDataError(f"{path}: cannot read ({exc}); download list_eval_partition.txt again") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise CorruptDataError(f"{path}:{lineno}: expected '<file>.jpg <0|1|2>', got {line.strip()!r}; "
                                   "download list_eval_partition.txt again")
        rows.append((fields[0], int(fields[1])))
    if not rows:
        raise CorruptDataError(f"{path}: empty partition file; download list_eval_partition.txt again")
    return rows


def load_celeba(root: str | os.PathLike | None = None, split: str = "train", img_size: int | None = None,
                download: bool = False, *, crop: int = CELEBA_CROP, preload: bool = False,
                channels: int = 3) -> ImageFileDataset:
    """CelebA (aligned) -> lazily decoded uint8 (3, S, S) images, S = img_size (default 64); no labels.

    Expects ``img_align_celeba/*.jpg`` and ``list_eval_partition.txt`` (also accepted: the
    official Google-Drive layout ``Img/img_align_celeba`` and ``Eval/list_eval_partition.txt``)
    in :func:`search_dirs`. ``split``: "train" (partition 0, 162,770 images), "valid" (1, 19,867),
    "test" (2, 19,962) or "all". Each 178x218 image is centre-cropped to ``crop`` x ``crop``
    (default 108) and resized with bilinear antialiasing. ``preload`` decodes everything into
    memory first (12 KiB per 64x64 image).
    """
    _check_split("celeba", split, tuple(_CELEBA_SPLITS) + ("all",))
    dirs = search_dirs("celeba", root)
    img_dir = partition = base = None
    for d in dirs:
        img_dir, partition = _celeba_paths(d)
        if img_dir is not None and (partition is not None or split == "all"):
            base = d
            break
    if base is None:
        how = ("CelebA cannot be downloaded automatically (it is on Google Drive); " if download else "")
        raise FileNotFoundError(
            f"celeba not found: need img_align_celeba/*.jpg and list_eval_partition.txt in one of: "
            f"{_where(dirs, root)}; {how}get img_align_celeba.zip and Eval/list_eval_partition.txt "
            f"from {CELEBA_URL} and unzip so that <folder>/img_align_celeba/000001.jpg exists")
    present = {e.name for e in os.scandir(img_dir) if e.name.lower().endswith((".jpg", ".jpeg", ".png"))}
    if partition is not None:
        rows = _read_partition(partition)
        wanted = [f for f, s in rows if split == "all" or s == _CELEBA_SPLITS[split]]
        missing = [f for f in wanted if f not in present]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of {len(wanted)} CelebA {split} images listed in {partition} are missing from "
                f"{img_dir} (first: {missing[0]}); the extraction is incomplete, unzip img_align_celeba.zip again")
    else:
        wanted = sorted(present)
    if not wanted:
        raise FileNotFoundError(f"no CelebA {split} images found in {img_dir}; unzip img_align_celeba.zip there")
    size = NATIVE_SIZE["celeba"] if img_size is None else _check_size(img_size)
    ds = ImageFileDataset([img_dir / f for f in wanted], img_size=size, channels=channels, crop=int(crop),
                          name="celeba", split=split, source=str(base),
                          options={"crop": int(crop), "resize": "bilinear-antialias"})
    return ds.preload(progress=True) if preload else ds


# ---------------------------------------------------------------------------------------------
# any folder of images
# ---------------------------------------------------------------------------------------------
def list_images(root: str | os.PathLike) -> list[Path]:
    """Image files (png, jpg, jpeg, bmp, webp; any case) under ``root``, recursively, sorted; hidden files skipped."""
    root = Path(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / f for f in filenames
                   if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))
    return sorted(out)


def load_folder(root: str | os.PathLike | None, split: str = "train", img_size: int | None = None, *,
                channels: int = 3, preload: bool = False) -> ImageFileDataset:
    """Every image under ``root`` (recursive) -> lazily decoded uint8 (channels, S, S) images, no labels.

    Each image is centre-cropped to a square of its shorter side and resized (bilinear,
    antialiased) to ``img_size``; None uses the shorter side of the first image (sorted by path).
    ``channels`` 3 (RGB, default) or 1 (grayscale). ``split`` "train" or "all" (the same: the
    whole folder).
    """
    if root is None:
        raise ValueError("the folder data set needs root=<folder of images> (data.root=<folder> for robustgan train)")
    _check_split("folder", split, ("train", "all"))
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    files = list_images(root)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {root}")
    if img_size is None:
        from PIL import Image
        try:
            with Image.open(files[0]) as im:
                img_size = min(im.size)
        except (OSError, ValueError, SyntaxError) as exc:
            raise CorruptDataError(f"{files[0]}: cannot decode image ({exc}); replace or delete it") from None
    ds = ImageFileDataset(files, img_size=_check_size(img_size), channels=channels, crop="square",
                          name="folder", split=split, source=str(root),
                          options={"crop": "square", "resize": "bilinear-antialias"})
    return ds.preload(progress=True) if preload else ds


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------
def _check_size(img_size) -> int:
    if isinstance(img_size, bool) or not isinstance(img_size, (int, np.integer)) or img_size < 1:
        raise ValueError(f"img_size must be a positive integer or None, got {img_size!r}")
    return int(img_size)


def load_dataset(name: str, root: str | None = None, split: str = "train", img_size: int | None = None,
                 download: bool = False, *, resize_mode: str = "resize", channels: int | None = None,
                 preload: bool = False, crop: int = CELEBA_CROP) -> ImageDataset:
    """Load an image data set by name -> :class:`ImageDataset` (``ds[i]``: uint8 (C, S, S)).

    ``name``: "mnist", "fashion-mnist", "cifar10", "celeba" or "folder" (then ``root`` is the
    folder). ``root`` None searches ``$ROBUSTGAN_DATA/<name>``, ``~/.cache/robustgan/data/<name>``
    and (Fashion-MNIST) /usr/share/datasets/fashion-mnist. ``split``: "train" / "test" (CelebA
    also "valid" and "all"). ``img_size`` None keeps the native size (28 MNIST-like, 32 CIFAR-10,
    64 CelebA, the first image's shorter side for folders); otherwise bilinear antialiased
    resize, or for MNIST-like sets ``resize_mode="pad"`` zero padding. ``download`` fetches
    MNIST, Fashion-MNIST or CIFAR-10 if missing. ``channels`` converts (1 <-> 3; default: the
    set's own, 3 for folders). ``preload`` decodes CelebA/folder images into memory up front.
    ``crop``: CelebA's centre crop side (default 108).

    Missing files raise FileNotFoundError saying where to put them; corrupt files raise
    :class:`CorruptDataError` (a ValueError) naming the file.
    """
    key = _ALIASES.get(str(name).lower().replace("_", "").replace("-", ""))
    if key is None:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    if img_size is not None:
        img_size = _check_size(img_size)
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {', '.join(RESIZE_MODES)}, got {resize_mode!r}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
    if resize_mode == "pad" and key not in ("mnist", "fashion-mnist"):
        raise ValueError(f"resize_mode='pad' is for MNIST-like sets; {key} is always resized")
    if key in ("mnist", "fashion-mnist"):
        return load_mnist_like(key, root, split, img_size, download, resize_mode=resize_mode, channels=channels)
    if key == "cifar10":
        return load_cifar10(root, split, img_size, download, channels=channels)
    if key == "celeba":
        return load_celeba(root, split, img_size, download, crop=crop, preload=preload, channels=channels or 3)
    return load_folder(root, split, img_size, channels=channels or 3, preload=preload)
