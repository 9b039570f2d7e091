"""Reading and writing the IDX format used by MNIST and Fashion-MNIST (optionally gzipped).

An IDX file is a 4-byte magic number ``0 0 <type code> <ndim>``, then ``ndim`` big-endian uint32
sizes, then the values in C order (big-endian for multi-byte types). MNIST images are
``idx3`` uint8 arrays (N, 28, 28); labels are ``idx1`` uint8 arrays (N,).
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

#: IDX type code -> numpy dtype as stored (big-endian)
_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
           0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
#: native dtype kind/size -> IDX type code (for writing)
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
          np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


class IDXError(ValueError):
    """A file is not valid IDX (corrupt or truncated). The message names the file and what to do."""


def _open(path):
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file into a numpy array of its stored shape and type (native byte order).

    Files whose name ends in ``.gz`` are decompressed. A missing file raises FileNotFoundError;
    a corrupt or truncated file (bad gzip stream, bad magic number, short data) raises
    :class:`IDXError` with a one-line message naming the file.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with _open(path) as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        # gzip.BadGzipFile is an OSError; a truncated stream is EOFError; a damaged one zlib.error
        raise IDXError(f"{path}: cannot read ({exc}); the file is corrupt or truncated, "
                       "delete it and download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise IDXError(f"{path}: not an IDX file (bad magic number); delete it and download it again")
    dtype = _DTYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{path}: truncated IDX header; delete it and download it again")
    shape = struct.unpack(">" + "I" * ndim, raw[4:header])
    count = int(np.prod(shape, dtype=np.int64)) if ndim else 1
    need = header + count * dtype.itemsize
    if len(raw) < need:
        raise IDXError(f"{path}: truncated IDX data ({len(raw)} of {need} bytes); "
                       "delete it and download it again")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape).astype(
        dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzipped if ``path`` ends in ``.gz``.

    Supported dtypes: uint8, int8, int16, int32, float32, float64 (stored big-endian, as the
    format requires). Raises ValueError for any other dtype.
    """
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"write_idx supports uint8, int8, int16, int32, float32 and float64 arrays, "
                         f"not {array.dtype}")
    data = np.ascontiguousarray(array, dtype=_DTYPES[code])
    header = bytes([0, 0, code, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as fh:
        fh.write(header + data.tobytes())
