"""Tests for robustgan.data.download against a local HTTP server on 127.0.0.1 (never the internet)."""
from __future__ import annotations

import hashlib
import http.server
import io
import socket
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from robustgan.data import download as dl
from robustgan.data import load_dataset, write_idx
from robustgan.data.download import (DatasetSource, DownloadError, RemoteFile, download_dataset, download_file,
                                     safe_extract_tar)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (path -> bytes). Honours ``Range: bytes=N-`` unless ``server.honor_range``
    is False; ``/drop/<path>`` promises the whole file but sends half of it and closes."""

    protocol_version = "HTTP/1.0"

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        drop = self.path.startswith("/drop/")
        path = self.path[len("/drop"):] if drop else self.path
        body = srv.files.get(path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        rng = self.headers.get("Range")
        if rng and srv.honor_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start:])
            srv.bytes_sent += len(body) - start
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        payload = body[: len(body) // 2] if drop else body
        self.wfile.write(payload)
        srv.bytes_sent += len(payload)


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("ROBUSTGAN_MIRROR", raising=False)
    monkeypatch.setattr(dl, "TIMEOUT_S", 10.0)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests, srv.honor_range, srv.bytes_sent = {}, [], True, 0
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _payload(n=300_000, seed=0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    return msg


def test_download_with_checksums(server, tmp_path):
    body = _payload()
    server.files["/f.bin"] = body
    out = download_file(server.url + "/f.bin", tmp_path / "sub" / "f.bin", md5=md5(body), sha256=sha256(body),
                        quiet=True)
    assert out == tmp_path / "sub" / "f.bin" and out.read_bytes() == body
    assert not (tmp_path / "sub" / "f.bin.part").exists()
    # a second call finds the verified file and makes no request
    n = len(server.requests)
    download_file(server.url + "/f.bin", out, md5=md5(body), quiet=True)
    assert len(server.requests) == n
    # a damaged file at dest is fetched again and replaced
    out.write_bytes(b"damaged")
    download_file(server.url + "/f.bin", out, md5=md5(body), quiet=True)
    assert out.read_bytes() == body and len(server.requests) == n + 1


def test_wrong_checksum_leaves_no_file(server, tmp_path):
    server.files["/f.bin"] = _payload()
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError) as e:
        download_file(server.url + "/f.bin", dest, md5="0" * 32, quiet=True)
    msg = one_line(e)
    assert "checksum mismatch" in msg and "expected " + "0" * 32 in msg
    assert not dest.exists() and not Path(str(dest) + ".part").exists()
    with pytest.raises(DownloadError, match="sha256"):
        download_file(server.url + "/f.bin", dest, sha256="f" * 64, quiet=True)
    assert not dest.exists()


def test_resume_uses_range(server, tmp_path):
    body = _payload(500_000, seed=1)
    server.files["/data.gz"] = body
    dest = tmp_path / "data.gz"
    Path(str(dest) + ".part").write_bytes(body[:123_456])
    download_file(server.url + "/data.gz", dest, md5=md5(body), quiet=True)
    assert dest.read_bytes() == body and md5(dest.read_bytes()) == md5(body)
    assert server.requests[-1][1] == "bytes=123456-"
    assert server.bytes_sent == len(body) - 123_456  # only the missing bytes travelled


def test_dropped_connection_then_resume(server, tmp_path):
    body = _payload(400_000, seed=2)
    server.files["/x.bin"] = body
    dest = tmp_path / "x.bin"
    with pytest.raises(DownloadError) as e:
        download_file(server.url + "/drop/x.bin", dest, md5=md5(body), quiet=True)
    msg = one_line(e)
    assert "run again to resume" in msg and str(dest) in msg
    part = Path(str(dest) + ".part")
    assert part.stat().st_size == len(body) // 2 and not dest.exists()
    download_file(server.url + "/x.bin", dest, md5=md5(body), quiet=True)
    assert dest.read_bytes() == body
    assert server.requests[-1][1] == f"bytes={len(body) // 2}-"


def test_server_ignoring_range_restarts(server, tmp_path):
    body = _payload(200_000, seed=3)
    server.files["/y.bin"] = body
    server.honor_range = False
    dest = tmp_path / "y.bin"
    Path(str(dest) + ".part").write_bytes(body[:50_000])
    download_file(server.url + "/y.bin", dest, md5=md5(body), quiet=True)
    assert dest.read_bytes() == body                 # not 50,000 bytes too long
    assert server.requests[-1][1] == "bytes=50000-"  # we asked, it sent everything


def test_stale_part_larger_than_file_restarts(server, tmp_path):
    body = _payload(10_000, seed=4)
    server.files["/z.bin"] = body
    dest = tmp_path / "z.bin"
    Path(str(dest) + ".part").write_bytes(b"x" * 20_000)  # the server answers 416
    download_file(server.url + "/z.bin", dest, md5=md5(body), quiet=True)
    assert dest.read_bytes() == body


def test_resume_false_ignores_part(server, tmp_path):
    body = _payload(10_000, seed=5)
    server.files["/w.bin"] = body
    dest = tmp_path / "w.bin"
    Path(str(dest) + ".part").write_bytes(b"junk")
    download_file(server.url + "/w.bin", dest, md5=md5(body), resume=False, quiet=True)
    assert dest.read_bytes() == body and server.requests[-1][1] is None


def test_unreachable_url_gives_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "TIMEOUT_S", 5.0)
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    url = f"http://127.0.0.1:{port}/mnist.gz"
    dest = tmp_path / "mnist.gz"
    with pytest.raises(DownloadError) as e:
        download_file(url, dest, quiet=True)
    msg = one_line(e)
    assert msg.startswith(f"could not download {url} (")
    assert msg.endswith(f"download it by hand and put it at {dest}")
    assert not dest.exists()


def test_http_error_and_bad_scheme(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(server.url + "/missing", tmp_path / "m", quiet=True)
    with pytest.raises(ValueError, match="http"):
        download_file("ftp://example.invalid/x", tmp_path / "m", quiet=True)


def _mnist_like_files(folder: Path, n_train=12, n_test=5):
    """IDX gz files in the MNIST layout -> ({file name: bytes}, {prefix: (images, labels)})."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files, arrays = {}, {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n).astype(np.uint8)
        arrays[prefix] = (x, y)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            name = f"{prefix}-{kind}-ubyte.gz"
            write_idx(folder / name, arr)
            files[name] = (folder / name).read_bytes()
    return files, arrays


def test_download_dataset_mnist_like_then_load(server, tmp_path, monkeypatch):
    files, arrays = _mnist_like_files(tmp_path / "served")
    for name, body in files.items():
        server.files["/mirror/" + name] = body
    source = DatasetSource(name="mnist", mirrors=(server.url + "/dead/", server.url + "/mirror/"),
                           files=tuple(RemoteFile(n, md5=md5(b)) for n, b in files.items()),
                           provides=tuple(files))
    monkeypatch.setitem(dl.SOURCES, "mnist", source)
    root = tmp_path / "mnist"
    ds = load_dataset("mnist", root=str(root), download=True)
    assert len(ds) == 12 and ds.source == str(root)
    np.testing.assert_array_equal(ds.images[:, 0].numpy(), arrays["train"][0])
    assert torch.equal(ds.labels, torch.from_numpy(arrays["train"][1].astype(np.int64)))
    for name in files:
        assert (root / name).read_bytes() == files[name]
    # the first mirror answered 404 for each file, then the second one served it
    assert sum(p.startswith("/dead/") for p, _ in server.requests) == 4
    # everything present: download_dataset makes no request
    n = len(server.requests)
    assert download_dataset("mnist", root, quiet=True) == root
    assert len(server.requests) == n
    test = load_dataset("mnist", root=str(root), split="test", download=True)
    assert len(test) == 5 and len(server.requests) == n


def test_download_dataset_base_url_and_default_root(server, tmp_path, monkeypatch):
    files, _ = _mnist_like_files(tmp_path / "served", 3, 2)
    for name, body in files.items():
        server.files["/m/" + name] = body
    source = DatasetSource(name="fashion-mnist", mirrors=("http://127.0.0.1:9/never/",),
                           files=tuple(RemoteFile(n, md5=md5(b)) for n, b in files.items()),
                           provides=tuple(files))
    monkeypatch.setitem(dl.SOURCES, "fashion-mnist", source)
    monkeypatch.setenv("ROBUSTGAN_DATA", str(tmp_path / "store"))
    monkeypatch.setenv("ROBUSTGAN_MIRROR", server.url + "/m")
    out = download_dataset("fashion-mnist", quiet=True)
    assert out == tmp_path / "store" / "fashion-mnist"
    assert sorted(p.name for p in out.iterdir()) == sorted(files)


def test_download_dataset_all_mirrors_fail(server, tmp_path, monkeypatch):
    source = DatasetSource(name="mnist", mirrors=(server.url + "/a/", server.url + "/b/"),
                           files=(RemoteFile("train-images-idx3-ubyte.gz", md5="0" * 32),),
                           provides=("train-images-idx3-ubyte.gz",))
    monkeypatch.setitem(dl.SOURCES, "mnist", source)
    with pytest.raises(DownloadError) as e:
        download_dataset("mnist", tmp_path, quiet=True)
    assert "2 mirrors failed" in one_line(e)
    with pytest.raises(ValueError, match="no download source"):
        download_dataset("celeba", tmp_path)


def _tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def test_cifar_download_and_extract(server, tmp_path, monkeypatch):
    import pickle
    rng = np.random.default_rng(0)
    members = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [1, 2]}
        members.append((tarfile.TarInfo(f"cifar-10-batches-py/{name}"), pickle.dumps(batch, protocol=4)))
    archive = _tar_bytes(members)
    server.files["/cifar-10-python.tar.gz"] = archive
    source = DatasetSource(name="cifar10", mirrors=(server.url + "/",),
                           files=(RemoteFile("cifar-10-python.tar.gz", md5=md5(archive)),),
                           provides=dl.SOURCES["cifar10"].provides, extract=("cifar-10-python.tar.gz",))
    monkeypatch.setitem(dl.SOURCES, "cifar10", source)
    ds = load_dataset("cifar10", root=str(tmp_path), download=True)
    assert len(ds) == 10 and ds.labels.tolist() == [1, 2] * 5


@pytest.mark.parametrize("make", ["dotdot", "absolute", "symlink_out", "hardlink_out", "device"])
def test_unsafe_tar_is_refused(tmp_path, make):
    info = tarfile.TarInfo("ok.txt")
    members = [(info, b"fine")]
    if make == "dotdot":
        members.append((tarfile.TarInfo("sub/../../evil.txt"), b"evil"))
    elif make == "absolute":
        members.append((tarfile.TarInfo(str(tmp_path / "abs_evil.txt")), b"evil"))
    elif make in ("symlink_out", "hardlink_out"):
        link = tarfile.TarInfo("link")
        link.type = tarfile.SYMTYPE if make == "symlink_out" else tarfile.LNKTYPE
        link.linkname = "../../etc/passwd"
        members.append((link, None))
    else:
        dev = tarfile.TarInfo("dev")
        dev.type = tarfile.CHRTYPE
        members.append((dev, None))
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar_bytes(members))
    dest = tmp_path / "out"
    with pytest.raises(DownloadError) as e:
        safe_extract_tar(archive, dest)
    assert "refusing to extract" in one_line(e)
    assert not (dest / "ok.txt").exists()  # checked before anything is written
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "abs_evil.txt").exists()


def test_safe_tar_allows_inner_links_and_rejects_corrupt(tmp_path):
    link = tarfile.TarInfo("d/link")
    link.type = tarfile.SYMTYPE
    link.linkname = "../a.txt"
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(_tar_bytes([(tarfile.TarInfo("a.txt"), b"hello"), (link, None)]))
    names = safe_extract_tar(archive, tmp_path / "out")
    assert names == ["a.txt", "d/link"] and (tmp_path / "out" / "d" / "link").read_bytes() == b"hello"
    archive.write_bytes(archive.read_bytes()[:40])
    with pytest.raises(DownloadError, match="corrupt or truncated"):
        safe_extract_tar(archive, tmp_path / "out2")


def test_registry_checksums_are_the_published_ones():
    # the well-known values (torchvision, the Fashion-MNIST README, the CIFAR page)
    got = {(k, f.filename): f.md5 for k, s in dl.SOURCES.items() for f in s.files}
    assert got[("mnist", "train-images-idx3-ubyte.gz")] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert got[("mnist", "t10k-labels-idx1-ubyte.gz")] == "ec29112dd5afa0611ce80d1b7f02629c"
    assert got[("fashion-mnist", "train-images-idx3-ubyte.gz")] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert got[("fashion-mnist", "t10k-labels-idx1-ubyte.gz")] == "bb300cfdad3c16e7a12a480ee83cd310"
    assert got[("cifar10", "cifar-10-python.tar.gz")] == "c58f30108f718f92721af3b95e74349a"
    for s in dl.SOURCES.values():
        assert all(m.endswith("/") for m in s.mirrors)
        assert all(f.md5 and len(f.md5) == 32 for f in s.files)
