"""``robustgan fd A B`` and ``robustgan.metrics.compare`` agree with compute_metrics on the same images."""
import json

import numpy as np
import pytest
import torch

from robustgan.cli import main as cli_main
from robustgan.data.idx import write_idx
from robustgan.metrics import compare_sets as compare_mod
from robustgan.metrics import evaluate, features, reference
from robustgan.metrics.inception import FIDInceptionV3, preprocess, resize_tf1


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTGAN_CACHE", str(tmp_path / "cache"))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _classifier_available():
    try:
        from robustgan.metrics.classifier import weights_path
        return weights_path("fashion-mnist").is_file()
    except Exception:
        return False


needs_classifier = pytest.mark.skipif(not _classifier_available(), reason="classifier weights not present")


def blobs(n, seed, c=1, side=28):
    """Smooth random uint8 images (a few Gaussian blobs), so the two sets differ in a structured way."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(side).float(), torch.arange(side).float(), indexing="ij")
    out = torch.zeros(n, c, side, side)
    for _ in range(3):
        cx, cy = torch.rand(n, 1, 1, generator=g) * side, torch.rand(n, 1, 1, generator=g) * side
        r = 2 + 4 * torch.rand(n, 1, 1, generator=g)
        out += torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r ** 2)).unsqueeze(1)
    return (255 * out.clamp(0, 1)).round().to(torch.uint8)


def write_folder(folder, images):
    from PIL import Image
    folder.mkdir(parents=True)
    for i, img in enumerate(images):
        arr = img.permute(1, 2, 0).numpy()
        Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(folder / f"{i:04d}.png")


@needs_classifier
def test_fd_between_two_folders_agrees_with_compute_metrics(tmp_path, capsys):
    a, b = blobs(60, 0), blobs(50, 1)
    write_folder(tmp_path / "a", a)
    write_folder(tmp_path / "b", b)
    opts = ["--kid-subsets", "4", "--kid-subset-size", "30"]
    code = cli_main(["fd", str(tmp_path / "a"), str(tmp_path / "b"), "--metrics", "fd,kid,pr", "--device", "cpu",
                     "--json", str(tmp_path / "out.json"), "--quiet", *opts])
    assert code == 0
    printed = capsys.readouterr().out
    got = json.loads((tmp_path / "out.json").read_text())
    assert got["extractor"] == "classifier"  # auto: both folders are gray
    want = evaluate.compute_metrics(a, b, metrics=("fd", "kid", "pr"), extractor="classifier",
                                    kid_subsets=4, kid_subset_size=30)
    for key in ("fd", "kid_mean", "kid_std"):
        assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-8), key
    assert (got["precision"], got["recall"]) == (want["precision"], want["recall"])
    assert got["n_fake"] == 60 and got["n_ref"] == 50 and "fd: " in printed and "fid" not in got
    # "fid" on gray data in classifier space is refused, not relabelled
    assert cli_main(["fd", str(tmp_path / "a"), str(tmp_path / "b"), "--metrics", "fid",
                     "--extractor", "classifier", "--quiet"]) == 2
    assert "Inception space" in capsys.readouterr().err


@needs_classifier
def test_fd_against_a_named_data_set_uses_its_cached_statistics(tmp_path, capsys, monkeypatch):
    root = tmp_path / "fmnist"
    root.mkdir()
    real = blobs(80, 2)
    write_idx(root / "t10k-images-idx3-ubyte.gz", real[:, 0].numpy())
    write_idx(root / "t10k-labels-idx1-ubyte.gz", np.zeros(80, dtype=np.uint8))
    fake = blobs(40, 3)
    write_folder(tmp_path / "fake", fake)
    ref = reference.reference_stats("fashion-mnist", split="test", root=str(root), extractor="classifier")
    computed = []
    real_extract = features.extract_features
    monkeypatch.setattr(features, "extract_features",
                        lambda ext, images, **k: computed.append(len(images)) or real_extract(ext, images, **k))
    out = compare_mod.compare(str(tmp_path / "fake"), "fashion-mnist:test", metrics=("fd", "kid"),
                              root2=str(root), device="cpu", kid_subsets=3, kid_subset_size=20)
    want = evaluate.compute_metrics(fake, ref, metrics=("fd", "kid"), extractor="classifier", kid_subsets=3,
                                    kid_subset_size=20)
    assert out["fd"] == pytest.approx(want["fd"], rel=1e-5)
    assert out["kid_mean"] == pytest.approx(want["kid_mean"], rel=1e-5, abs=1e-8)
    assert out["n_ref"] == 80
    # only the folder's 40 images were featurised: the named set's statistics came from the cache
    assert computed == [40]
    assert len(list((tmp_path / "cache" / "stats").glob("fashion-mnist-test-*.npz"))) == 1
    # the same through the command line, with the data set spelled NAME:SPLIT
    assert cli_main(["fd", str(tmp_path / "fake"), "fashion-mnist:test", "--root2", str(root), "--device", "cpu",
                     "--quiet"]) == 0
    line = [l for l in capsys.readouterr().out.splitlines() if l.startswith("fd: ")][0]
    assert float(line.split()[1]) == pytest.approx(want["fd"], rel=1e-5)
    # bad inputs are one-line errors
    assert cli_main(["fd", str(tmp_path / "nope"), "fashion-mnist:test", "--quiet"]) == 2
    assert cli_main(["fd", str(tmp_path / "fake"), "--metrics", "fd", "--quiet"]) == 2
    assert cli_main(["fd", str(tmp_path / "fake"), "fashion-mnist:test", "--root2", str(root),
                     "--resize", "torch-fidelity", "--extractor", "classifier", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "not a data set name" in err and "second input" in err and "Inception input convention" in err


def test_compare_with_inception_random_weights_matches_compute_metrics():
    torch.manual_seed(0)
    model = FIDInceptionV3()  # random weights: the real ones are not available offline
    ext = features.InceptionExtractor(model=model)
    a, b = blobs(6, 4, c=3, side=16), blobs(5, 5, c=3, side=16)
    out = compare_mod.compare(a, b, metrics=("fid", "is"), extractor=ext, is_splits=2, batch_size=3)
    want = evaluate.compute_metrics(a, b, metrics=("fid", "is"), extractor=ext, is_splits=2, batch_size=3)
    assert set(out) >= {"fid", "is_mean", "is_std"} and "fd" not in out
    assert out["fid"] == pytest.approx(want["fid"], rel=1e-6)
    assert out["is_mean"] == pytest.approx(want["is_mean"], rel=1e-9)


def test_tf1_resize_against_a_direct_formula():
    x = torch.rand(1, 1, 5, 7, dtype=torch.float64) * 255
    out = resize_tf1(x, 12)[0, 0].numpy()
    src = x[0, 0].numpy()
    for i in range(12):
        for j in range(12):
            y, xx = i * 5 / 12, j * 7 / 12  # TF1, align_corners=False: no half-pixel offset
            y0, x0 = int(np.floor(y)), int(np.floor(xx))
            y1, x1 = min(y0 + 1, 4), min(x0 + 1, 6)
            fy, fx = y - y0, xx - x0
            top = src[y0, x0] * (1 - fx) + src[y0, x1] * fx
            bottom = src[y1, x0] * (1 - fx) + src[y1, x1] * fx
            assert out[i, j] == pytest.approx(top * (1 - fy) + bottom * fy, abs=1e-9)
    # identity at the same size; the conventions' scalings: (x - 128) / 128 vs x / 127.5 - 1
    img = torch.tensor([[[[0, 128], [255, 64]]]], dtype=torch.uint8).expand(1, 3, 2, 2)
    big = torch.nn.functional.interpolate(img.float(), size=(299, 299), mode="nearest").to(torch.uint8)
    tf = preprocess(big, torch.float64, "torch-fidelity")
    pf = preprocess(big, torch.float64, "pytorch-fid")
    assert tf[0, 0, 0, 0].item() == -1.0 and tf[0, 0, 0, 298].item() == 0.0
    assert tf[0, 0, 298, 0].item() == pytest.approx(127 / 128)
    assert pf[0, 0, 298, 0].item() == pytest.approx(1.0) and pf[0, 0, 0, 298].item() == pytest.approx(128 / 127.5 - 1)
