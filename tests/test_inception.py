"""Tests of the FID Inception-v3: pytorch-fid state-dict layout, preprocessing, batch independence,
weights discovery and the offline error. All with random weights: the real file is not needed."""
import hashlib
import socket

import pytest
import torch
import torch.nn.functional as F

from robustgan.metrics import features, inception
from robustgan.metrics.inception import FIDInceptionV3, load_inception, preprocess


# The layout of pytorch-fid's pt_inception-2015-12-05-6726825d.pth, written out from the Inception-v3
# architecture (Szegedy et al. 2016 / the TF graph): every conv is "<name>.conv.weight" (no bias)
# plus a BatchNorm "<name>.bn.{weight,bias,running_mean,running_var,num_batches_tracked}".
def _block_a(name, cin, pool):
    return [(f"{name}.branch1x1", cin, 64, 1, 1), (f"{name}.branch5x5_1", cin, 48, 1, 1),
            (f"{name}.branch5x5_2", 48, 64, 5, 5), (f"{name}.branch3x3dbl_1", cin, 64, 1, 1),
            (f"{name}.branch3x3dbl_2", 64, 96, 3, 3), (f"{name}.branch3x3dbl_3", 96, 96, 3, 3),
            (f"{name}.branch_pool", cin, pool, 1, 1)]


def _block_c(name, c7):
    return [(f"{name}.branch1x1", 768, 192, 1, 1),
            (f"{name}.branch7x7_1", 768, c7, 1, 1), (f"{name}.branch7x7_2", c7, c7, 1, 7),
            (f"{name}.branch7x7_3", c7, 192, 7, 1),
            (f"{name}.branch7x7dbl_1", 768, c7, 1, 1), (f"{name}.branch7x7dbl_2", c7, c7, 7, 1),
            (f"{name}.branch7x7dbl_3", c7, c7, 1, 7), (f"{name}.branch7x7dbl_4", c7, c7, 7, 1),
            (f"{name}.branch7x7dbl_5", c7, 192, 1, 7), (f"{name}.branch_pool", 768, 192, 1, 1)]


def _block_e(name, cin):
    return [(f"{name}.branch1x1", cin, 320, 1, 1), (f"{name}.branch3x3_1", cin, 384, 1, 1),
            (f"{name}.branch3x3_2a", 384, 384, 1, 3), (f"{name}.branch3x3_2b", 384, 384, 3, 1),
            (f"{name}.branch3x3dbl_1", cin, 448, 1, 1), (f"{name}.branch3x3dbl_2", 448, 384, 3, 3),
            (f"{name}.branch3x3dbl_3a", 384, 384, 1, 3), (f"{name}.branch3x3dbl_3b", 384, 384, 3, 1),
            (f"{name}.branch_pool", cin, 192, 1, 1)]


CONVS = (
    [("Conv2d_1a_3x3", 3, 32, 3, 3), ("Conv2d_2a_3x3", 32, 32, 3, 3), ("Conv2d_2b_3x3", 32, 64, 3, 3),
     ("Conv2d_3b_1x1", 64, 80, 1, 1), ("Conv2d_4a_3x3", 80, 192, 3, 3)]
    + _block_a("Mixed_5b", 192, 32) + _block_a("Mixed_5c", 256, 64) + _block_a("Mixed_5d", 288, 64)
    + [("Mixed_6a.branch3x3", 288, 384, 3, 3), ("Mixed_6a.branch3x3dbl_1", 288, 64, 1, 1),
       ("Mixed_6a.branch3x3dbl_2", 64, 96, 3, 3), ("Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3)]
    + _block_c("Mixed_6b", 128) + _block_c("Mixed_6c", 160) + _block_c("Mixed_6d", 160) + _block_c("Mixed_6e", 192)
    + [("Mixed_7a.branch3x3_1", 768, 192, 1, 1), ("Mixed_7a.branch3x3_2", 192, 320, 3, 3),
       ("Mixed_7a.branch7x7x3_1", 768, 192, 1, 1), ("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7),
       ("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1), ("Mixed_7a.branch7x7x3_4", 192, 192, 3, 3)]
    + _block_e("Mixed_7b", 1280) + _block_e("Mixed_7c", 2048)
)


@pytest.fixture(autouse=True)
def _one_thread():
    # Many small convolutions: with several test runs sharing 2 cores, OpenMP's 2-thread barriers
    # make them ~10x slower than one thread. Restored after each test.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def expected_layout():
    shapes = {}
    for name, cin, cout, kh, kw in CONVS:
        shapes[f"{name}.conv.weight"] = (cout, cin, kh, kw)
        for buf in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.bn.{buf}"] = (cout,)
        shapes[f"{name}.bn.num_batches_tracked"] = ()
    shapes["fc.weight"] = (1008, 2048)
    shapes["fc.bias"] = (1008,)
    return shapes


def random_model(dtype=torch.float32, seed=0):
    """FIDInceptionV3 with random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    model = FIDInceptionV3()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
        elif isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)  # keeps activations O(1) through 94 layers
    return model.to(dtype)


def test_state_dict_matches_pytorch_fid_layout():
    layout = expected_layout()
    assert len(CONVS) == 94 and len(layout) == 94 * 6 + 2 == 566
    state = FIDInceptionV3().state_dict()
    assert set(state) == set(layout)
    for key, shape in layout.items():
        assert tuple(state[key].shape) == shape, key
    # spot checks named in the brief
    assert tuple(state["Conv2d_1a_3x3.conv.weight"].shape) == (32, 3, 3, 3)
    assert tuple(state["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape) == (384, 384, 3, 1)
    assert tuple(state["Mixed_7c.branch_pool.conv.weight"].shape) == (192, 2048, 1, 1)
    # torchvision's inception_v3 has 27,161,264 parameters; minus the aux head (3,326,696) and
    # plus 8 more classes (8 * 2049) gives the FID network's count
    assert sum(p.numel() for p in FIDInceptionV3().parameters()) == 27_161_264 - 3_326_696 + 8 * 2049
    bn = FIDInceptionV3().Conv2d_1a_3x3.bn
    assert bn.eps == pytest.approx(1e-3)


def test_save_and_reload_strict(tmp_path):
    model = random_model()
    path = tmp_path / "weights.pth"
    torch.save(model.state_dict(), path)
    loaded = load_inception(path, check_hash=False)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    # an old-style file (pre-1.6 serialisation, no num_batches_tracked buffers) loads too
    old = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    old_loaded = load_inception(tmp_path / "old.pth", check_hash=False)
    assert torch.equal(old_loaded.fc.weight, model.fc.weight)
    # a file with a missing or extra key is refused
    bad = dict(model.state_dict())
    del bad["fc.bias"]
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a pytorch-fid"):
        load_inception(tmp_path / "bad.pth", check_hash=False)


def test_hash_check(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save(random_model().state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert not digest.startswith(inception.FID_WEIGHTS_SHA256_PREFIX)
    with pytest.raises(ValueError, match="6726825d"):
        load_inception(path)


def test_preprocess_matches_pytorch_fid_convention():
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    y = preprocess(x, torch.float64)
    assert y.shape == (2, 3, 299, 299) and y.dtype == torch.float64
    ref = 2 * F.interpolate(x.double() / 255, size=(299, 299), mode="bilinear", align_corners=False) - 1
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)
    assert y.min() >= -1 and y.max() <= 1
    # grayscale is repeated to 3 channels; a 299x299 input is not resampled
    g = torch.randint(0, 256, (1, 1, 299, 299), dtype=torch.uint8)
    torch.testing.assert_close(preprocess(g, torch.float64), (g.double() / 127.5 - 1).repeat(1, 3, 1, 1))
    with pytest.raises(ValueError, match="channels|shape"):
        preprocess(torch.zeros(1, 2, 8, 8, dtype=torch.uint8))


def test_fid_specific_pooling():
    # Mixed_5b's pool branch ignores zero padding (TF): on a constant input the pooled map is constant,
    # whereas count_include_pad=True would shrink the border values
    x = torch.ones(1, 192, 5, 5, dtype=torch.float64)
    pooled = inception._avg_pool_tf(x)
    torch.testing.assert_close(pooled, x)
    model = FIDInceptionV3()
    assert model.Mixed_7b.pool == "avg" and model.Mixed_7c.pool == "max"


def test_pool3_batch_independent_float64():
    # the network part on small (75x75, the smallest valid size) float64 inputs, batches 1, 2, 4
    model = random_model(torch.float64)
    x = torch.rand(4, 3, 75, 75, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        full = model.pool3(x)
        assert full.shape == (4, 2048) and torch.isfinite(full).all() and full.std() > 0
        for bs in (1, 2):
            parts = torch.cat([model.pool3(x[i:i + bs]) for i in range(0, 4, bs)])
            torch.testing.assert_close(parts, full, rtol=0, atol=1e-10)


@pytest.mark.slow
def test_features_batch_independent_float64_full_size():
    model = random_model(torch.float64)
    ext = features.InceptionExtractor(model=model)
    imgs = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        full = model(imgs)
        for bs in (1, 2):
            parts = torch.cat([model(imgs[i:i + bs]) for i in range(0, 4, bs)])
            torch.testing.assert_close(parts, full, rtol=0, atol=1e-10)
    f, logits = features.extract_features(ext, imgs, batch_size=3, with_logits=True)
    assert f.shape == (4, 2048) and logits.shape == (4, 1008) and f.dtype == torch.float32
    torch.testing.assert_close(logits.double(), full.float().double() @ model.fc.weight.T, rtol=1e-5, atol=1e-4)


def test_extractor_logits_are_bias_free():
    model = random_model()
    model.fc.bias.data.fill_(5.0)
    ext = features.get_extractor("inception", model=model)
    assert ext.dim == 2048 and ext.name == "inception"
    imgs = torch.randint(0, 256, (2, 1, 75, 75), dtype=torch.uint8)  # grayscale input
    f, logits = ext.features_and_logits(imgs)
    assert f.shape == (2, 2048) and logits.shape == (2, 1008)
    torch.testing.assert_close(logits, f @ model.fc.weight.T, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ext(imgs), f, rtol=1e-5, atol=1e-5)


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_offline_without_weights_gives_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTGAN_CACHE", str(tmp_path))
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(inception, "FID_WEIGHTS_URL", f"http://127.0.0.1:{_closed_port()}/pt_inception.pth")
    assert inception.find_inception_weights() is None
    with pytest.raises(FileNotFoundError) as info:
        load_inception()
    msg = str(info.value)
    assert "\n" not in msg
    assert "127.0.0.1" in msg and inception.WEIGHTS_ENV in msg
    assert str(tmp_path / inception.FID_WEIGHTS_NAME) in msg
    with pytest.raises(FileNotFoundError, match="ROBUSTGAN_INCEPTION_WEIGHTS"):
        load_inception(download=False)


def test_weights_search_order(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    cached = tmp_path / "cache" / inception.FID_WEIGHTS_NAME
    cached.parent.mkdir()
    cached.write_bytes(b"x")
    assert inception.find_inception_weights() == cached
    env_file = tmp_path / "env.pth"
    env_file.write_bytes(b"y")
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(env_file))
    assert inception.find_inception_weights() == env_file
    explicit = tmp_path / "explicit.pth"
    explicit.write_bytes(b"z")
    assert inception.find_inception_weights(explicit) == explicit
    with pytest.raises(FileNotFoundError, match="not found"):
        inception.find_inception_weights(tmp_path / "missing.pth")
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        inception.find_inception_weights()
