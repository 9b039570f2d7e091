"""Reference statistics are keyed on the data's content and on the extractor's weights."""
import numpy as np
import pytest
import torch

from robustgan.data.idx import write_idx
from robustgan.metrics import evaluate, features, reference
from robustgan.metrics.frechet import feature_statistics


class LinearFeatures(torch.nn.Module):
    """A fixed random projection of the flattened image (any side, resized to 8x8 first)."""

    def __init__(self, dim=6):
        super().__init__()
        self.proj = torch.nn.Linear(64, dim)

    def features(self, x):
        return self.proj(torch.nn.functional.interpolate(x, size=(8, 8), mode="area").flatten(1))


def linear_extractor(scale=1.0):
    torch.manual_seed(0)
    ext = features.ClassifierExtractor(model=LinearFeatures())
    with torch.no_grad():
        ext.model.proj.weight.mul_(scale)
    return ext


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTGAN_CACHE", str(tmp_path / "cache"))


def write_pngs(folder, images):
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img[0].numpy(), mode="L").save(folder / f"{i:03d}.png")


def test_replacing_a_folders_images_gives_new_statistics(tmp_path):
    ext = linear_extractor()
    folder = tmp_path / "imgs"
    a = torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8)
    write_pngs(folder, a)
    s1 = reference.reference_stats("folder", root=str(folder), extractor=ext, channels=1)
    again = reference.reference_stats("folder", root=str(folder), extractor=ext, channels=1)
    assert again["path"] == s1["path"] and again["data_fingerprint"] == s1["data_fingerprint"]
    np.testing.assert_allclose(s1["mu"], feature_statistics(ext(a))[0], atol=1e-5)
    # same file names, new pixels (written at once: the same size and possibly the same mtime tick)
    b = 255 - a
    write_pngs(folder, b)
    s2 = reference.reference_stats("folder", root=str(folder), extractor=ext, channels=1)
    assert s2["path"] != s1["path"]
    np.testing.assert_allclose(s2["mu"], feature_statistics(ext(b))[0], atol=1e-5)
    assert not np.allclose(s2["mu"], s1["mu"])


def test_inverted_copy_of_a_named_data_set_gets_its_own_statistics(tmp_path):
    ext = linear_extractor()
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=30).astype(np.uint8)
    for root, pixels in ((tmp_path / "orig", imgs), (tmp_path / "inverted", 255 - imgs)):
        root.mkdir()
        write_idx(root / "t10k-images-idx3-ubyte.gz", pixels)
        write_idx(root / "t10k-labels-idx1-ubyte.gz", labels)
    s1 = reference.reference_stats("fashion-mnist", split="test", root=str(tmp_path / "orig"), extractor=ext)
    s2 = reference.reference_stats("fashion-mnist", split="test", root=str(tmp_path / "inverted"), extractor=ext)
    assert s1["path"] != s2["path"]
    x = torch.from_numpy(imgs).unsqueeze(1)
    np.testing.assert_allclose(s1["mu"], feature_statistics(ext(x))[0], atol=1e-5)
    np.testing.assert_allclose(s2["mu"], feature_statistics(ext(255 - x))[0], atol=1e-5)
    assert str(s2["source"]).endswith("inverted")


def test_stats_file_with_another_fingerprint_is_not_used(tmp_path):
    ext = linear_extractor()
    imgs = torch.randint(0, 256, (20, 1, 8, 8), dtype=torch.uint8)
    folder = tmp_path / "imgs"
    write_pngs(folder, imgs)
    s1 = reference.reference_stats("folder", root=str(folder), extractor=ext, channels=1)
    assert s1["extractor_fingerprint"] == ext.fingerprint()
    # a file under the right name but made with other weights (copied in, or tampered with)
    other = linear_extractor(scale=3.0)
    assert other.fingerprint() != ext.fingerprint()
    forged = reference.stats_from_features(other(imgs), extractor="classifier",
                                           extractor_fingerprint=other.fingerprint(),
                                           data_fingerprint=s1["data_fingerprint"])
    reference.save_stats(s1["path"], forged)
    with pytest.warns(RuntimeWarning, match="other classifier weights"):
        s2 = reference.reference_stats("folder", root=str(folder), extractor=ext, channels=1)
    np.testing.assert_allclose(s2["mu"], s1["mu"], atol=1e-6)  # recomputed with the right weights
    assert reference.load_stats(s1["path"])["extractor_fingerprint"] == ext.fingerprint()
    # compute_metrics refuses a stats file made with other weights
    path = reference.save_stats(tmp_path / "other.npz", forged)
    with pytest.raises(ValueError, match="other classifier weights"):
        evaluate.compute_metrics(imgs, path, metrics=("fd",), extractor=ext)
    # a corrupt cache file is recomputed, not fatal
    with open(s1["path"], "wb") as fh:
        fh.write(b"not a zip")
    with pytest.warns(RuntimeWarning, match="not using cached statistics"):
        s3 = reference.reference_stats("folder", root=str(folder), extractor=ext, channels=1)
    np.testing.assert_allclose(s3["mu"], s1["mu"], atol=1e-6)


def test_resize_convention_is_part_of_the_fingerprint():
    from robustgan.metrics.inception import FIDInceptionV3
    model = FIDInceptionV3()
    a = features.InceptionExtractor(model=model)
    b = features.InceptionExtractor(model=model, resize="torch-fidelity")
    assert a.fingerprint() != b.fingerprint()
    with pytest.raises(ValueError, match="resize convention"):
        features.InceptionExtractor(model=model, resize="nearest")
