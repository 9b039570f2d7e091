"""Downloading data sets: resumable, verified, atomic. Uses only the standard library (urllib).

:func:`download_file` fetches one URL into ``dest + ".part"`` (continuing a partial file with an
HTTP Range request when the server supports it, restarting when it does not), verifies the MD5
and/or SHA-256, fsyncs and renames the file into place. Every failure is a
:class:`DownloadError` with a one-line message.

:func:`download_dataset` fetches, verifies and (for archives) safely extracts a registered data
set. The registry :data:`SOURCES` holds the canonical URLs and checksums; ``ROBUSTGAN_MIRROR``
(an environment variable holding a base URL) or the ``base_url`` argument replace the mirrors,
e.g. for a local copy of the files.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: seconds to wait on the network (connect, and each read) before giving up
TIMEOUT_S = 60.0
#: bytes read per chunk
CHUNK = 1 << 20
USER_AGENT = "robustgan-downloader/0.1 (urllib)"


class DownloadError(RuntimeError):
    """A download failed (network, HTTP status, checksum, archive). The message is one line."""


# --------------------------------------------------------------------------------------------
# one file
# --------------------------------------------------------------------------------------------
def _file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _checksum_problem(path: Path, md5: str | None, sha256: str | None) -> str | None:
    """None if ``path`` matches every given checksum, else a description of the mismatch."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected:
            got = _file_digest(path, algorithm)
            if got.lower() != expected.lower():
                return f"{algorithm} {got}, expected {expected}"
    return None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"timed out after {TIMEOUT_S:g} s"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _open(url: str, start: int):
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if start > 0:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)


def download_file(url: str, dest: str | Path, *, md5: str | None = None, sha256: str | None = None,
                  resume: bool = True, quiet: bool = False) -> Path:
    """Download ``url`` to ``dest`` and return ``Path(dest)``.

    - If ``dest`` exists and matches the given checksums (or none are given) nothing is fetched.
    - Bytes go to ``dest + ".part"``. With ``resume`` (default True) an existing ``.part`` file is
      continued with an HTTP ``Range: bytes=<size>-`` request; a server that ignores Range (answers
      200 with the whole file) or answers 416 makes the download restart from byte 0.
    - When complete, the file is checked against ``md5`` / ``sha256`` (hex strings, either or both,
      optional), fsynced and renamed onto ``dest`` with ``os.replace`` (atomic on one file system).
      A mismatch deletes the ``.part`` file and raises.
    - Progress is shown with tqdm on stderr unless ``quiet``. Network reads time out after
      :data:`TIMEOUT_S` seconds.

    Raises :class:`DownloadError` (one line) on network failure, HTTP errors, a short read (the
    ``.part`` file is kept so the next call resumes) and checksum mismatch; ValueError for a URL
    that is not http(s).
    """
    scheme = url.split(":", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"can only download http:// or https:// URLs, not {url!r}")
    dest = Path(dest)
    if dest.is_file() and _checksum_problem(dest, md5, sha256) is None:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    by_hand = f"download it by hand and put it at {dest}"

    start = part.stat().st_size if (resume and part.is_file()) else 0
    for attempt in range(2):  # the second pass restarts from 0 after a 416 on a stale .part
        try:
            response = _open(url, start)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and start > 0:
                # The .part may already be complete (a crash between the last write and the rename).
                if _checksum_problem(part, md5, sha256) is None and (md5 or sha256):
                    return _finish(part, dest)
                part.unlink(missing_ok=True)
                start = 0
                continue
            raise DownloadError(f"could not download {url} ({_reason(exc)}); {by_hand}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise DownloadError(f"could not download {url} ({_reason(exc)}); {by_hand}") from None
        break
    else:  # pragma: no cover - the loop always breaks or returns on its second pass
        raise DownloadError(f"could not download {url} (server refused the range request); {by_hand}")

    with response:
        status = getattr(response, "status", 200)
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        mode = "wb"
        if start > 0 and status == 206:
            m = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if m and int(m.group(1)) == start:
                mode = "ab"
                if total is not None:
                    total += start
            else:  # a partial answer we cannot line up with our file: start over
                response.close()
                return _restart(url, dest, part, md5, sha256, quiet)
        else:
            start = 0  # 200: the server sent the whole file (it ignored Range, or there was none)
        received = start
        try:
            with open(part, mode) as fh, _progress(dest.name, total, start, quiet) as bar:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    fh.write(block)
                    received += len(block)
                    bar.update(len(block))
                fh.flush()
                os.fsync(fh.fileno())
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise DownloadError(f"could not download {url} ({_reason(exc)} after {received} bytes; "
                                f"run again to resume); {by_hand}") from None
    if total is not None and received < total:
        raise DownloadError(f"could not download {url} (connection closed after {received} of {total} "
                            f"bytes; run again to resume); {by_hand}")
    problem = _checksum_problem(part, md5, sha256)
    if problem is not None:
        part.unlink(missing_ok=True)
        raise DownloadError(f"checksum mismatch for {url} ({problem}); the partial file was deleted: "
                            f"run again, or {by_hand}")
    return _finish(part, dest)


def _restart(url, dest, part, md5, sha256, quiet) -> Path:
    part.unlink(missing_ok=True)
    return download_file(url, dest, md5=md5, sha256=sha256, resume=False, quiet=quiet)


def _finish(part: Path, dest: Path) -> Path:
    os.replace(part, dest)
    _fsync_dir(dest.parent)
    return dest


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass


def _progress(name: str, total: int | None, initial: int, quiet: bool):
    if quiet:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency, but progress is optional
        return _NoBar()
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=name, leave=False, dynamic_ncols=True)


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set: its name under each mirror and its checksums."""

    filename: str
    md5: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class DatasetSource:
    """Where a data set comes from.

    ``mirrors`` are base URLs (ending in "/") tried in order; each file's URL is
    ``mirror + filename``. ``extract`` lists archives to unpack after download; ``provides`` are
    paths (relative to the data set folder) that exist once the set is ready.
    """

    name: str
    mirrors: tuple[str, ...]
    files: tuple[RemoteFile, ...]
    provides: tuple[str, ...]
    extract: tuple[str, ...] = ()
    homepage: str = ""


_IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

#: name -> DatasetSource. The checksums are the published ones (MNIST: as used by torchvision and
#: others for these mirror files; Fashion-MNIST: zalandoresearch/fashion-mnist README; CIFAR-10:
#: the md5 published on the CIFAR page).
SOURCES: dict[str, DatasetSource] = {
    "mnist": DatasetSource(
        name="mnist",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        files=(RemoteFile(_IDX_NAMES[0], md5="f68b3c2dcbeaaa9fbdd348bbdeb94873"),
               RemoteFile(_IDX_NAMES[1], md5="d53e105ee54ea40749a09fcbcd1e9432"),
               RemoteFile(_IDX_NAMES[2], md5="9fb629c4189551a2d022fa330f9573f3"),
               RemoteFile(_IDX_NAMES[3], md5="ec29112dd5afa0611ce80d1b7f02629c")),
        provides=_IDX_NAMES,
        homepage="http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": DatasetSource(
        name="fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                 "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
        files=(RemoteFile(_IDX_NAMES[0], md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
               RemoteFile(_IDX_NAMES[1], md5="25c81989df183df01b3e8a0aad5dffbe"),
               RemoteFile(_IDX_NAMES[2], md5="bef4ecab320f06d8554ea6380940ec79"),
               RemoteFile(_IDX_NAMES[3], md5="bb300cfdad3c16e7a12a480ee83cd310")),
        provides=_IDX_NAMES,
        homepage="https://github.com/zalandoresearch/fashion-mnist",
    ),
    "cifar10": DatasetSource(
        name="cifar10",
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        files=(RemoteFile("cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a"),),
        provides=tuple(f"cifar-10-batches-py/{b}" for b in
                       ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                        "test_batch")),
        extract=("cifar-10-python.tar.gz",),
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
}


def default_data_dir(name: str) -> Path:
    """Where a data set is downloaded when no root is given: ``$ROBUSTGAN_DATA/<name>`` if set,
    else ``~/.cache/robustgan/data/<name>``."""
    env = os.environ.get("ROBUSTGAN_DATA")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "robustgan" / "data"
    return base / name


def download_dataset(name: str, root: str | Path | None = None, *, quiet: bool = False,
                     base_url: str | None = None) -> Path:
    """Fetch, verify and extract the registered data set ``name`` into ``root``; return ``root``.

    ``root`` defaults to :func:`default_data_dir` (``$ROBUSTGAN_DATA/<name>`` or
    ``~/.cache/robustgan/data/<name>``). Files already present with the right checksum are not
    fetched again; if every file in ``provides`` is present nothing happens at all. Mirrors are
    tried in order; ``base_url`` (or the ``ROBUSTGAN_MIRROR`` environment variable) replaces them.
    Archives are unpacked with :func:`safe_extract_tar`.

    Raises ValueError for an unknown name and :class:`DownloadError` (one line) when every mirror fails.
    """
    key = str(name).lower()
    if key not in SOURCES:
        raise ValueError(f"no download source for data set {name!r}; downloadable: {', '.join(SOURCES)}")
    source = SOURCES[key]
    root = Path(root).expanduser() if root is not None else default_data_dir(key)
    if all((root / p).is_file() for p in source.provides):
        return root
    base_url = base_url or os.environ.get("ROBUSTGAN_MIRROR") or None
    mirrors = (base_url if base_url.endswith("/") else base_url + "/",) if base_url else source.mirrors
    for rf in source.files:
        errors = []
        for mirror in mirrors:
            try:
                download_file(mirror + rf.filename, root / rf.filename, md5=rf.md5, sha256=rf.sha256,
                              quiet=quiet)
                break
            except DownloadError as exc:
                errors.append(str(exc))
        else:
            detail = errors[-1] if len(errors) == 1 else f"{len(errors)} mirrors failed, last: {errors[-1]}"
            raise DownloadError(detail)
    for archive in source.extract:
        safe_extract_tar(root / archive, root)
    missing = [p for p in source.provides if not (root / p).is_file()]
    if missing:
        raise DownloadError(f"{source.name}: downloaded and extracted into {root}, but {missing[0]} is "
                            f"missing; delete {root} and try again")
    return root


# --------------------------------------------------------------------------------------------
# archives
# --------------------------------------------------------------------------------------------
def _inside(base: Path, target: Path) -> bool:
    try:
        target.relative_to(base)
        return True
    except ValueError:
        return False


def safe_extract_tar(archive: str | Path, dest: str | Path) -> list[str]:
    """Extract a (possibly compressed) tar archive into ``dest``; return the member names.

    Refuses, before writing anything, archives with absolute member paths, ``..`` components,
    links whose target lies outside ``dest``, and device or FIFO members. Raises
    :class:`DownloadError` (one line) for an unsafe or unreadable archive.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    base = dest.resolve()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                problem = _unsafe_member(m, base)
                if problem:
                    raise DownloadError(f"refusing to extract {archive}: member {m.name!r} {problem}; "
                                        "the archive is damaged or not the expected file, delete it")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(base, members=members, filter="data")
            else:  # pragma: no cover - Python without tar filters; members were checked above
                tar.extractall(base, members=members)
    except DownloadError:
        raise
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DownloadError(f"cannot extract {archive} ({type(exc).__name__}: {exc}); the archive is "
                            "corrupt or truncated, delete it and download it again") from None
    return [m.name for m in members]


def _unsafe_member(m: tarfile.TarInfo, base: Path) -> str | None:
    name = m.name
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or re.match(r"^[A-Za-z]:", name):
        return "has an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "contains '..'"
    target = (base / name).resolve()
    if not _inside(base, target):
        return "would be written outside the destination"
    if m.issym() or m.islnk():
        if PurePosixPath(m.linkname).is_absolute():
            return f"links to the absolute path {m.linkname!r}"
        # a symlink's target is relative to its own folder, a hard link's to the archive root
        resolved = ((target.parent if m.issym() else base) / m.linkname).resolve()
        if not _inside(base, resolved):
            return f"links to {m.linkname!r} outside the destination"
    if m.ischr() or m.isblk() or m.isfifo():
        return "is a device or FIFO"
    return None


# --------------------------------------------------------------------------------------------
# optional command line: `robustgan download NAME` (if the lead registers it)
# --------------------------------------------------------------------------------------------
def add_arguments(parser) -> None:
    """Arguments for a ``download`` subcommand: NAME, --root, --quiet, --base-url."""
    parser.add_argument("name", choices=sorted(SOURCES), help="data set to download")
    parser.add_argument("--root", default=None,
                        help="folder for the files (default $ROBUSTGAN_DATA/NAME or ~/.cache/robustgan/data/NAME)")
    parser.add_argument("--base-url", default=None, help="fetch from this mirror instead of the registry's")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    """Download the data set named in ``args``; print where it went. Returns 0."""
    try:
        root = download_dataset(args.name, args.root, quiet=args.quiet, base_url=args.base_url)
    except DownloadError as exc:  # the CLI prints ValueError as one line
        raise ValueError(str(exc)) from None
    print(root)
    return 0


__all__ = ["DownloadError", "download_file", "download_dataset", "safe_extract_tar", "SOURCES",
           "DatasetSource", "RemoteFile", "default_data_dir", "TIMEOUT_S"]
