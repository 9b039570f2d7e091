"""Tests for robustgan.data: IDX files, MNIST-like / CIFAR-10 / CelebA / folder loaders, toy sets.

Every data file is written by the test in the real format into tmp_path (except the optional
check of the real Fashion-MNIST files at the Debian path).
"""
from __future__ import annotations

import io
import math
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustgan.data import (CorruptDataError, IDXError, ImageDataset, UnsafePickleError, get_toy,
                            load_dataset, read_idx, write_idx)
from robustgan.data import images as images_mod
from robustgan.data.images import pad_images, resize_images, restricted_load
from robustgan.data.toy import TOY_DATASETS

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated_data_dirs(tmp_path, monkeypatch):
    """No test sees the user's data folders: HOME and ROBUSTGAN_DATA point into tmp_path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ROBUSTGAN_DATA", raising=False)
    torch.manual_seed(0)


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    return msg


# ------------------------------------------------------------------------------------------
# IDX
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    rng = np.random.default_rng(1)
    a = (rng.normal(size=(3, 4, 5)) * 100).astype(dtype)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, a)
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_idx_header_is_the_published_layout(tmp_path):
    # magic 0x00000803 then big-endian sizes, then the bytes: an independent check of write_idx
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x", a)
    raw = (tmp_path / "x").read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert raw[4:16] == (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + (4).to_bytes(4, "big")
    assert raw[16:] == a.tobytes()
    # and int32 values are stored big-endian
    write_idx(tmp_path / "y", np.array([1, 256], dtype=np.int32))
    assert (tmp_path / "y").read_bytes()[8:] == b"\x00\x00\x00\x01\x00\x00\x01\x00"


def test_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="supports"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.uint16))


def _write_gz_idx(path, array):
    write_idx(path, array)
    return path.read_bytes()


def test_truncated_gz_gives_clear_error(tmp_path):
    raw = _write_gz_idx(tmp_path / "t.gz", np.random.default_rng(0).integers(0, 255, (50, 28, 28), dtype=np.uint8))
    (tmp_path / "t.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(IDXError) as e:
        read_idx(tmp_path / "t.gz")
    msg = one_line(e)
    assert str(tmp_path / "t.gz") in msg and "download it again" in msg


def test_corrupt_gz_gives_clear_error(tmp_path):
    raw = bytearray(_write_gz_idx(tmp_path / "c.gz",
                                  np.random.default_rng(0).integers(0, 255, (50, 28, 28), dtype=np.uint8)))
    for i in range(30, len(raw) - 30, 7):  # damage the deflate stream but keep the gzip header
        raw[i] ^= 0x5A
    (tmp_path / "c.gz").write_bytes(bytes(raw))
    with pytest.raises(IDXError) as e:
        read_idx(tmp_path / "c.gz")
    assert str(tmp_path / "c.gz") in one_line(e)


def test_truncated_and_bad_magic_idx(tmp_path):
    write_idx(tmp_path / "a", np.zeros((10, 28, 28), np.uint8))
    raw = (tmp_path / "a").read_bytes()
    (tmp_path / "a").write_bytes(raw[:-100])
    with pytest.raises(IDXError, match="truncated IDX data"):
        read_idx(tmp_path / "a")
    (tmp_path / "a").write_bytes(raw[:10])
    with pytest.raises(IDXError, match="truncated IDX header"):
        read_idx(tmp_path / "a")
    (tmp_path / "a").write_bytes(b"\x1f\x8b" + raw[2:])
    with pytest.raises(IDXError, match="bad magic"):
        read_idx(tmp_path / "a")


# ------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST layout
# ------------------------------------------------------------------------------------------
def make_mnist_files(folder: Path, n_train=20, n_test=7, gz=True, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n).astype(np.uint8)
        ext = ".gz" if gz else ""
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", y)
        out[prefix] = (x, y)
    return out


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_layout_loads_with_labels(tmp_path, gz):
    ref = make_mnist_files(tmp_path / "mnist", gz=gz)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        # the root may be the folder itself or its parent
        for root in (tmp_path / "mnist", tmp_path):
            ds = load_dataset("mnist", root=str(root), split=split)
            x, y = ref[prefix]
            assert isinstance(ds, ImageDataset) and len(ds) == len(x)
            assert ds.channels == 1 and ds.img_size == 28 and ds.split == split
            assert ds[3].dtype == torch.uint8 and ds[3].shape == (1, 28, 28)
            np.testing.assert_array_equal(ds.images[:, 0].numpy(), x)
            np.testing.assert_array_equal(ds.labels.numpy(), y.astype(np.int64))
            assert ds.labels.dtype == torch.long and ds.num_classes == 10


def test_environment_variable_is_searched(tmp_path, monkeypatch):
    make_mnist_files(tmp_path / "store" / "fashion-mnist", n_train=5)
    monkeypatch.setenv("ROBUSTGAN_DATA", str(tmp_path / "store"))
    assert len(load_dataset("fashion-mnist")) == 5
    # and the user cache folder when the variable is not set
    monkeypatch.delenv("ROBUSTGAN_DATA")
    make_mnist_files(tmp_path / "home" / ".cache" / "robustgan" / "data" / "mnist", n_train=4)
    assert len(load_dataset("mnist")) == 4


def test_mnist_resize_to_32_matches_pillow(tmp_path):
    ref = make_mnist_files(tmp_path, n_train=6)
    ds = load_dataset("mnist", root=str(tmp_path), img_size=32)
    assert ds.img_size == 32 and ds[0].shape == (1, 32, 32)
    for i in range(6):  # an independent bilinear implementation: Pillow
        pil = np.asarray(Image.fromarray(ref["train"][0][i]).resize((32, 32), Image.BILINEAR)).astype(int)
        assert np.abs(ds.images[i, 0].numpy().astype(int) - pil).max() <= 1


def test_mnist_pad_mode_is_exact(tmp_path):
    ref = make_mnist_files(tmp_path, n_train=6)
    ds = load_dataset("mnist", root=str(tmp_path), img_size=32, resize_mode="pad")
    x = ds.images[:, 0].numpy()
    np.testing.assert_array_equal(x[:, 2:30, 2:30], ref["train"][0])
    assert x[:, :2].sum() == 0 and x[:, 30:].sum() == 0 and x[:, :, :2].sum() == 0 and x[:, :, 30:].sum() == 0
    with pytest.raises(ValueError, match="cannot shrink"):
        load_dataset("mnist", root=str(tmp_path), img_size=16, resize_mode="pad")


def test_resize_invariants():
    const = torch.full((2, 3, 32, 32), 77, dtype=torch.uint8)
    for s in (8, 16, 48, 64):
        assert torch.equal(resize_images(const, s), torch.full((2, 3, s, s), 77, dtype=torch.uint8))
    # antialiased 2x downsampling of a checkerboard gives its mean 127.5 away from the border (the
    # triangle filter is symmetric there); without antialiasing it would alias to 0 or 255
    board = (torch.arange(32).view(-1, 1) + torch.arange(32).view(1, -1)) % 2 * 255
    small = resize_images(board.to(torch.uint8).view(1, 1, 32, 32), 16)
    assert (small[..., 1:-1, 1:-1].int() - 127.5).abs().max() <= 0.5
    assert pad_images(torch.ones(1, 1, 28, 28, dtype=torch.uint8), 31).shape == (1, 1, 31, 31)


def test_channels_conversion(tmp_path):
    make_mnist_files(tmp_path, n_train=3)
    gray = load_dataset("mnist", root=str(tmp_path))
    rgb = load_dataset("mnist", root=str(tmp_path), channels=3)
    assert rgb.channels == 3 and torch.equal(rgb.images, gray.images.repeat(1, 3, 1, 1))


def test_truncated_mnist_file_gives_one_line_error(tmp_path):
    make_mnist_files(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(ValueError) as e:
        load_dataset("mnist", root=str(tmp_path))
    assert str(p) in one_line(e)


def test_mismatched_label_file(tmp_path):
    make_mnist_files(tmp_path, n_train=20)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    with pytest.raises(CorruptDataError, match="do not belong together"):
        load_dataset("mnist", root=str(tmp_path))


def test_missing_mnist_message_names_paths_and_files(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTGAN_DATA", str(tmp_path / "envdata"))
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("mnist", split="test")
    msg = one_line(e)
    assert str(tmp_path / "envdata" / "mnist") in msg
    assert str(tmp_path / "home" / ".cache" / "robustgan" / "data" / "mnist") in msg
    assert "t10k-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert "download=True" in msg and "data.download=true" in msg and "robustgan download mnist" in msg
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("mnist", root=str(tmp_path / "given"))
    msg = one_line(e)
    assert str(tmp_path / "given") in msg and "train-images-idx3-ubyte.gz" in msg


def test_fashion_mnist_search_includes_system_folder(tmp_path, monkeypatch):
    monkeypatch.setitem(images_mod.SYSTEM_DIRS, "fashion-mnist", [tmp_path / "system"])
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("fashion-mnist")
    assert str(tmp_path / "system") in one_line(e)
    make_mnist_files(tmp_path / "system", n_train=9)
    ds = load_dataset("fashion_mnist")  # alias spelling
    assert len(ds) == 9 and ds.source == str(tmp_path / "system")


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="no split"):
        load_dataset("mnist", split="valid")
    with pytest.raises(ValueError, match="img_size"):
        load_dataset("mnist", img_size=0)
    with pytest.raises(ValueError, match="resize_mode"):
        load_dataset("mnist", resize_mode="stretch")
    with pytest.raises(ValueError, match="root"):
        load_dataset("folder")


@pytest.mark.skipif(not (DEBIAN_FMNIST / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_debian_path():
    train = load_dataset("fashion-mnist")
    test = load_dataset("fashion-mnist", split="test")
    assert len(train) == 60000 and len(test) == 10000
    assert train.source == str(DEBIAN_FMNIST)
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert torch.equal(train.labels.bincount(), torch.full((10,), 6000))
    assert torch.equal(test.labels.bincount(), torch.full((10,), 1000))
    assert train.num_classes == 10
    # real images use the whole grey range and are mostly black background
    assert int(train.images[:1000].max()) == 255 and 0.2 < float(train.images[:1000].float().mean() / 255) < 0.4


# ------------------------------------------------------------------------------------------
# CIFAR-10
# ------------------------------------------------------------------------------------------
def make_cifar_batches(folder: Path, n=4, seed=0, protocol=4):
    """Write the six batches in the real layout: dict with b'data' uint8 (N, 3072) and b'labels' list."""
    d = folder / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        batch = {b"batch_label": b"training batch", b"labels": labels, b"data": data,
                 b"filenames": [b"x.png"] * n}
        with open(d / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=protocol)
        out[name] = (data, labels)
    return out


@pytest.mark.parametrize("protocol", [3, 4])
def test_cifar_batches_load_in_chw_layout(tmp_path, protocol):
    ref = make_cifar_batches(tmp_path, n=4, protocol=protocol)
    ds = load_dataset("cifar10", root=str(tmp_path))
    assert len(ds) == 20 and ds.channels == 3 and ds.img_size == 32
    assert ds[0].shape == (3, 32, 32) and ds[0].dtype == torch.uint8
    # a known pixel: row 5, column 7 of the green plane of the first image in data_batch_2
    data, labels = ref["data_batch_2"]
    c, r, col = 1, 5, 7
    assert int(ds[4][c, r, col]) == int(data[0, c * 1024 + r * 32 + col])
    # the whole layout, the red plane of the last image of data_batch_5
    np.testing.assert_array_equal(ds[19][0].numpy(), ref["data_batch_5"][0][3, :1024].reshape(32, 32))
    expected = sum((ref[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert ds.labels.tolist() == expected
    test = load_dataset("cifar10", root=str(tmp_path / "cifar-10-batches-py"), split="test")
    assert len(test) == 4 and test.labels.tolist() == ref["test_batch"][1]


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (SHORT_BINSTRING / BINSTRING opcodes), as in the real CIFAR files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def test_cifar_python2_style_batch(tmp_path):
    # The published batches are Python 2 cPickle protocol 2: str keys and array data, and
    # numpy.core.multiarray._reconstruct. Rebuild one such file byte for byte in that style.
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    data = np.random.default_rng(7).integers(0, 256, (3, 3072), dtype=np.uint8)
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump({b"batch_label": b"testing batch 1 of 1", b"labels": [4, 0, 9],
                                       b"data": data, b"filenames": [b"a.png", b"b.png", b"c.png"]})
    raw = buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in raw
    (d / "test_batch").write_bytes(raw)
    ds = load_dataset("cifar10", root=str(tmp_path), split="test")
    assert ds.labels.tolist() == [4, 0, 9]
    np.testing.assert_array_equal(ds.images.reshape(3, 3072).numpy(), data)


def test_cifar_planes_are_not_interleaved(tmp_path):
    # a batch where image 0 is pure red: data[0, :1024] = 255, green/blue 0
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    data = np.zeros((1, 3072), np.uint8)
    data[0, :1024] = 255
    for name in ["test_batch"]:
        with open(d / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": [3]}, fh, protocol=4)
    img = load_dataset("cifar10", root=str(tmp_path), split="test")[0]
    assert bool((img[0] == 255).all()) and int(img[1:].sum()) == 0


def test_cifar_resize(tmp_path):
    make_cifar_batches(tmp_path, n=2)
    ds = load_dataset("cifar10", root=str(tmp_path), split="test", img_size=16)
    assert ds.images.shape == (2, 3, 16, 16)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_pickle_is_refused(tmp_path, monkeypatch):
    make_cifar_batches(tmp_path, n=2)
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as fh:
        pickle.dump({b"data": _Evil(), b"labels": [1]}, fh, protocol=4)
    with pytest.raises(UnsafePickleError) as e:
        load_dataset("cifar10", root=str(tmp_path), split="test")
    msg = one_line(e)
    assert "refusing" in msg and "system" in msg and "test_batch" in msg
    assert not (tmp_path / "pwned").exists()
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb") as fh:
        with pytest.raises(UnsafePickleError):
            restricted_load(fh)


def test_pickle_of_arbitrary_class_is_refused(tmp_path):
    blob = pickle.dumps({"data": Path("/etc")})
    with pytest.raises(UnsafePickleError, match="pathlib"):
        restricted_load(io.BytesIO(blob))


def test_corrupt_cifar_batch(tmp_path):
    make_cifar_batches(tmp_path, n=2)
    p = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(CorruptDataError) as e:
        load_dataset("cifar10", root=str(tmp_path))
    assert str(p) in one_line(e) and "corrupt" in str(e.value)


def test_missing_cifar_message(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("cifar10", root=str(tmp_path))
    msg = one_line(e)
    assert "cifar-10-batches-py" in msg and "data_batch_1" in msg and str(tmp_path) in msg
    assert "download=True" in msg and "cifar-10-python.tar.gz" in msg


# ------------------------------------------------------------------------------------------
# CelebA
# ------------------------------------------------------------------------------------------
def celeba_like_image(seed: int, inner=(200, 30, 30), outer=(20, 40, 220)) -> Image.Image:
    """A 178x218 image (the aligned CelebA size): the centred 108x108 box in ``inner``, the rest ``outer``."""
    a = np.empty((218, 178, 3), np.uint8)
    a[:] = outer
    a[55:163, 35:143] = inner  # top = (218 - 108) // 2, left = (178 - 108) // 2
    a[0, 0] = seed % 256
    return Image.fromarray(a)


def make_celeba(folder: Path, parts=(0, 0, 0, 1, 1, 2)):
    img_dir = folder / "img_align_celeba"
    img_dir.mkdir(parents=True)
    lines = []
    for i, s in enumerate(parts, 1):
        name = f"{i:06d}.jpg"
        celeba_like_image(i).save(img_dir / name, quality=95)
        lines.append(f"{name} {s}")
    (folder / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return img_dir


def test_celeba_splits_and_size(tmp_path):
    make_celeba(tmp_path / "celeba")
    sizes = {s: len(load_dataset("celeba", root=str(tmp_path), split=s)) for s in ("train", "valid", "test", "all")}
    assert sizes == {"train": 3, "valid": 2, "test": 1, "all": 6}
    ds = load_dataset("celeba", root=str(tmp_path / "celeba"))
    assert ds.img_size == 64 and ds.channels == 3 and ds.labels is None and ds.images is None
    x = ds[1]
    assert x.shape == (3, 64, 64) and x.dtype == torch.uint8
    # the 108x108 centre crop keeps only the inner colour (JPEG's 4:2:0 chroma bleeds into the
    # outermost output pixels, so they are left out of the max check)
    inner = torch.tensor([200, 30, 30]).view(3, 1, 1)
    assert (x.int() - inner).abs().float().mean() < 6
    assert (x[:, 1:-1, 1:-1].int() - inner).abs().max() < 25
    # a larger crop takes in the outer colour: the check above can fail
    wide = load_dataset("celeba", root=str(tmp_path), crop=140)[1]
    assert (wide[:, 0, :].int() - inner).abs().max() > 100
    assert load_dataset("celeba", root=str(tmp_path), img_size=32)[0].shape == (3, 32, 32)


def test_celeba_crop_geometry_is_exact(tmp_path):
    # lossless files with the CelebA size: crop 108 without resizing must equal a[55:163, 35:143]
    img_dir = tmp_path / "img_align_celeba"
    img_dir.mkdir()
    a = np.random.default_rng(0).integers(0, 256, (218, 178, 3), dtype=np.uint8)
    Image.fromarray(a).save(img_dir / "000001.png")
    (tmp_path / "list_eval_partition.txt").write_text("000001.png 0\n")
    x = load_dataset("celeba", root=str(tmp_path), img_size=108)[0]
    np.testing.assert_array_equal(x.permute(1, 2, 0).numpy(), a[55:163, 35:143])
    x64 = load_dataset("celeba", root=str(tmp_path))[0]
    pil = np.asarray(Image.fromarray(a[55:163, 35:143]).resize((64, 64), Image.BILINEAR)).astype(int)
    assert np.abs(x64.permute(1, 2, 0).numpy().astype(int) - pil).max() <= 1


def test_celeba_preload_equals_lazy(tmp_path):
    make_celeba(tmp_path)
    lazy = load_dataset("celeba", root=str(tmp_path), split="all")
    eager = load_dataset("celeba", root=str(tmp_path), split="all", preload=True)
    assert eager.images.shape == (6, 3, 64, 64)
    for i in range(6):
        assert torch.equal(lazy[i], eager[i])


def test_celeba_official_layout_and_errors(tmp_path):
    (tmp_path / "Img").mkdir()
    make_celeba(tmp_path / "Img")
    (tmp_path / "Eval").mkdir()
    (tmp_path / "Img" / "list_eval_partition.txt").rename(tmp_path / "Eval" / "list_eval_partition.txt")
    assert len(load_dataset("celeba", root=str(tmp_path), split="valid")) == 2
    # an image listed in the partition file but missing
    (tmp_path / "Img" / "img_align_celeba" / "000005.jpg").unlink()
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("celeba", root=str(tmp_path), split="valid")
    assert "000005.jpg" in one_line(e) and "1 of 2" in str(e.value)
    # a truncated JPEG: decoding it names the file
    p = tmp_path / "Img" / "img_align_celeba" / "000001.jpg"
    p.write_bytes(p.read_bytes()[:300])
    ds = load_dataset("celeba", root=str(tmp_path), split="train")
    with pytest.raises(CorruptDataError) as e:
        ds[0]
    assert str(p) in one_line(e)
    # a damaged partition file
    (tmp_path / "Eval" / "list_eval_partition.txt").write_text("000001.jpg zero\n")
    with pytest.raises(CorruptDataError, match=":1:"):
        load_dataset("celeba", root=str(tmp_path))


def test_missing_celeba_message(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("celeba", download=True)
    msg = one_line(e)
    assert "img_align_celeba" in msg and "list_eval_partition.txt" in msg
    assert "mmlab.ie.cuhk.edu.hk" in msg and "cannot be downloaded automatically" in msg
    assert str(tmp_path / "home" / ".cache" / "robustgan" / "data" / "celeba") in msg


# ------------------------------------------------------------------------------------------
# folder of images
# ------------------------------------------------------------------------------------------
def test_folder_dataset(tmp_path):
    root = tmp_path / "pics"
    (root / "a" / "b").mkdir(parents=True)
    (root / ".hidden").mkdir()
    # 40x30 images: the centred 30x30 square is green, the 5-pixel strips left and right red
    a = np.zeros((30, 40, 3), np.uint8)
    a[:] = (255, 0, 0)
    a[:, 5:35] = (0, 255, 0)
    Image.fromarray(a).save(root / "one.png")
    Image.fromarray(a).save(root / "a" / "two.PNG")
    Image.fromarray(a).save(root / "a" / "b" / "three.bmp")
    Image.fromarray(a).save(root / "a" / "b" / "four.webp", lossless=True)
    Image.fromarray(a).save(root / ".hidden" / "skip.png")
    (root / "notes.txt").write_text("not an image")
    ds = load_dataset("folder", root=str(root), img_size=16)
    assert len(ds) == 4 and ds.labels is None
    green = torch.tensor([0, 255, 0], dtype=torch.uint8).view(3, 1, 1).expand(3, 16, 16)
    for i in range(4):
        assert ds[i].shape == (3, 16, 16) and torch.equal(ds[i], green)
    gray = load_dataset("folder", root=str(root), img_size=8, channels=1)
    # Pillow's luma of pure green: 0.587 * 255 = 149.7 -> 150
    assert gray[0].shape == (1, 8, 8) and int(gray[0].min()) == int(gray[0].max()) == 150
    native = load_dataset("folder", root=str(root))
    assert native.img_size == 30 and native.preload().images.shape == (4, 3, 30, 30)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("folder", root=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        load_dataset("folder", root=str(tmp_path / "empty"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = load_dataset("folder", root=str(tmp_path / "bad"), img_size=8)
    with pytest.raises(CorruptDataError) as e:
        ds[0]
    assert "x.png" in one_line(e)


def test_rgb_to_gray_matches_pillow(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (1, 3072), dtype=np.uint8)
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    with open(d / "test_batch", "wb") as fh:
        pickle.dump({b"data": a, b"labels": [0]}, fh, protocol=4)
    gray = load_dataset("cifar10", root=str(tmp_path), split="test", channels=1)[0]
    rgb = a.reshape(3, 32, 32).transpose(1, 2, 0)
    pil = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(gray[0].numpy(), pil)


# ------------------------------------------------------------------------------------------
# toy distributions
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(TOY_DATASETS))
def test_toy_shapes_and_reproducibility(name):
    dist = get_toy(name)
    g = torch.Generator().manual_seed(5)
    x = dist.sample(1000, g)
    assert x.shape == (1000, 2) and x.dtype == torch.float32
    assert torch.equal(x, dist.sample(1000, torch.Generator().manual_seed(5)))
    assert not torch.equal(x, dist.sample(1000, torch.Generator().manual_seed(6)))
    assert dist.sample(0).shape == (0, 2)


@pytest.mark.parametrize("name,k,spacing", [("8gaussians", 8, 2 * 2.0 / 1.414 * math.sin(math.pi / 8)),
                                            ("25gaussians", 25, 2.0 / 2.828)])
def test_mixture_geometry_and_clustering(name, k, spacing):
    dist = get_toy(name)
    c = dist.centers
    assert c.shape == (k, 2)
    # WGAN-GP scales: ring of radius 2/1.414, grid spacing 2/2.828 (nearest-neighbour distance)
    d = torch.cdist(c.double(), c.double()) + torch.eye(k, dtype=torch.float64) * 1e9
    assert torch.allclose(d.min(1).values, torch.full((k,), spacing, dtype=torch.float64), atol=1e-5)
    if name == "8gaussians":
        assert torch.allclose(c.norm(dim=1), torch.full((8,), 2 / 1.414), atol=1e-6)
        assert dist.std == pytest.approx(0.02 / 1.414)
    else:
        assert dist.std == pytest.approx(0.05 / 2.828)
    n = 20000
    x, modes = dist.sample_with_modes(n, torch.Generator().manual_seed(0))
    idx, dist_std = dist.nearest_mode(x)
    assert torch.equal(idx, modes)            # modes are far apart compared to std
    assert float(dist_std.max()) < 6.0        # P(|N(0, I_2)| > 6) = exp(-18) ~ 1.5e-8 per point
    # the distance / std is Rayleigh: mean sqrt(pi/2) = 1.2533, sd 0.655 -> tolerance 5 sd / sqrt(n)
    assert abs(float(dist_std.mean()) - math.sqrt(math.pi / 2)) < 5 * 0.655 / math.sqrt(n)
    # per-coordinate residual std equals the documented std (within 5 %)
    resid = x - dist.centers[modes]
    assert torch.allclose(resid.std(0), torch.full((2,), dist.std), rtol=0.05)
    # modes are equally likely: counts within 5 binomial sd of n/k
    counts = modes.bincount(minlength=k).double()
    p = 1 / k
    assert float((counts - n * p).abs().max()) < 5 * math.sqrt(n * p * (1 - p))


def test_swiss_roll_scale():
    dist = get_toy("swiss-roll")
    assert dist.centers is None and dist.std == pytest.approx(0.25 / 7.5)
    x, t = dist.sample_with_t(5000, torch.Generator().manual_seed(1))
    assert float(t.min()) >= 1.5 * math.pi and float(t.max()) <= 4.5 * math.pi
    # the noise-free point is t (cos t, sin t) / 7.5; residuals have the documented std
    clean = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) / 7.5
    assert torch.allclose((x - clean).std(0), torch.full((2,), dist.std), rtol=0.05)
    assert float(x.abs().max()) < 4.5 * math.pi / 7.5 + 6 * dist.std


def test_unknown_toy():
    with pytest.raises(ValueError, match="8gaussians"):
        get_toy("moons")


def test_global_rng_is_used_without_generator():
    dist = get_toy("8gaussians")
    torch.manual_seed(11)
    a = dist.sample(10)
    torch.manual_seed(11)
    assert torch.equal(a, dist.sample(10))
