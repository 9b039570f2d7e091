"""Tests of robustgan.metrics: closed forms, invariants and independent (brute-force) computations."""
import itertools
import math
import os

import numpy as np
import pytest
import torch

from robustgan.metrics import evaluate, features, reference
from robustgan.metrics.frechet import (feature_statistics, frechet_distance, frechet_distance_from_features,
                                       frechet_distance_sqrtm)
from robustgan.metrics.inception_score import inception_score
from robustgan.metrics.kid import kid, mmd2_unbiased
from robustgan.metrics.precision_recall import knn_radii, precision_recall
from robustgan.metrics.toy import mode_stats, wasserstein1


@pytest.fixture(autouse=True)
def _one_thread():
    # many small matrix products: with several test runs sharing 2 cores, OpenMP's 2-thread barriers
    # make them ~10x slower than one thread. Restored after each test.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def random_cov(rng, d, n=None):
    """Sample covariance of n Gaussian samples through a random mixing matrix (rank min(n-1, d))."""
    n = n or 4 * d
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / math.sqrt(d)
    return feature_statistics(x + rng.normal(size=d))


# ---------------------------------------------------------------- Frechet distance

def test_feature_statistics_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 7)).astype(np.float32)
    mu, sigma = feature_statistics(torch.from_numpy(x))
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False), rtol=0, atol=1e-12)


def test_frechet_closed_form_diagonal():
    rng = np.random.default_rng(1)
    d = 32
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 3, size=d), rng.uniform(0.1, 3, size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    fd = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert fd == pytest.approx(expected, rel=1e-12)
    assert frechet_distance_sqrtm(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_frechet_matches_sqrtm_full_rank():
    rng = np.random.default_rng(2)
    for _ in range(3):
        mu1, s1 = random_cov(rng, 64)
        mu2, s2 = random_cov(rng, 64)
        a = frechet_distance(mu1, s1, mu2, s2)
        b = frechet_distance_sqrtm(mu1, s1, mu2, s2)
        assert a == pytest.approx(b, rel=1e-6)


def test_frechet_rank_deficient_is_finite_and_agrees():
    # 50 samples in 100-d: covariances of rank 49; sqrtm of the singular product is ill-conditioned
    # (errors ~ sqrt(machine eps) on the null space), so the routes agree to ~1e-8 relative, not 1e-12.
    rng = np.random.default_rng(3)
    mu1, s1 = random_cov(rng, 100, n=50)
    mu2, s2 = random_cov(rng, 100, n=50)
    assert np.linalg.matrix_rank(s1) == 49
    a = frechet_distance(mu1, s1, mu2, s2)
    b = frechet_distance_sqrtm(mu1, s1, mu2, s2)
    assert isinstance(a, float) and math.isfinite(a) and a > 0
    assert a == pytest.approx(b, rel=1e-6)
    # one singular and one full-rank covariance
    mu3, s3 = random_cov(rng, 100)
    assert frechet_distance(mu1, s1, mu3, s3) == pytest.approx(frechet_distance_sqrtm(mu1, s1, mu3, s3), rel=1e-6)


def test_frechet_zero_and_symmetric():
    rng = np.random.default_rng(4)
    for n in (400, 50):  # full rank and rank-deficient
        mu1, s1 = random_cov(rng, 100, n=n)
        mu2, s2 = random_cov(rng, 100, n=n)
        assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-6
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-9)


def test_frechet_known_gaussians_from_samples():
    # N(0, I) vs N(m, 4 I) in d dims: FD = |m|^2 + d (1 - 2)^2; samples estimate it to a few percent
    rng = np.random.default_rng(5)
    d, n = 8, 20000
    m = np.full(d, 0.5)
    fd = frechet_distance_from_features(rng.normal(size=(n, d)), 2 * rng.normal(size=(n, d)) + m)
    assert fd == pytest.approx(d * 0.25 + d, rel=0.03)


def test_frechet_bad_input():
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(ValueError, match="at least 2 rows"):
        feature_statistics(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.zeros(2), np.eye(2) * np.nan, np.zeros(2), np.eye(2))


# ---------------------------------------------------------------- KID

def mmd2_loop(x, y):
    """Direct O(m^2) double loop of the unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3."""
    m, d = x.shape
    k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return (xx + yy) / (m * (m - 1)) - 2 * xy / (m * m)


def test_kid_one_subset_matches_loop():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(40, 6)) + 0.3
    expected = mmd2_loop(x, y)
    assert mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-10)
    # one subset of all rows is a permutation of the sets; MMD^2 does not depend on the order
    mean, std = kid(x, y, num_subsets=1, subset_size=1000)
    assert mean == pytest.approx(expected, rel=1e-10) and std == 0.0


def test_kid_identical_distributions_near_zero_shift_positive():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(600, 16)), rng.normal(size=(600, 16))
    mean, std = kid(x, y, num_subsets=20, subset_size=200, seed=0)
    assert std > 0 and abs(mean) < 0.5 * std
    mean_s, std_s = kid(x, y + 0.5, num_subsets=20, subset_size=200, seed=0)
    assert mean_s > 10 * std_s and mean_s > 10 * abs(mean)


def test_kid_seeded_and_capped():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(50, 4))
    assert kid(x, y, num_subsets=5, seed=3) == kid(x, y, num_subsets=5, seed=3)
    assert kid(x, y, num_subsets=5, seed=3) != kid(x, y, num_subsets=5, seed=4)
    with pytest.raises(ValueError, match="dimensions"):
        kid(x, y[:, :3])


# ---------------------------------------------------------------- Inception Score

def test_inception_score_uniform_is_one():
    p = torch.full((100, 7), 1 / 7)
    mean, std = inception_score(p, splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    # uniform logits give the same
    assert inception_score(torch.zeros(100, 7), logits=True)[0] == pytest.approx(1.0, abs=1e-12)


def test_inception_score_one_hot_equals_num_classes():
    k, splits = 5, 4
    labels = torch.arange(k).repeat(splits * 3)  # every split holds each class 3 times
    p = torch.nn.functional.one_hot(labels, k).double()
    mean, std = inception_score(p, splits=splits)
    assert mean == pytest.approx(k, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    # large logits approach the one-hot case; shuffling with a seed keeps classes balanced on average
    mean_l, _ = inception_score(100.0 * p, splits=splits, logits=True)
    assert mean_l == pytest.approx(k, rel=1e-9)


def test_inception_score_matches_direct_formula():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(6), size=30)
    expected = []
    for part in np.split(p, 3):
        py = part.mean(0)
        expected.append(np.exp(np.mean([np.sum(r * np.log(r / py)) for r in part])))
    mean, std = inception_score(p, splits=3)
    assert mean == pytest.approx(np.mean(expected), rel=1e-12)
    assert std == pytest.approx(np.std(expected), rel=1e-9)
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score(p * 2, splits=3)


def test_inception_score_uses_every_row_when_n_is_not_divisible():
    # 23 rows in 4 splits: parts of 5, 6, 6, 6 rows ([k*N//s, (k+1)*N//s)); dropping the last 3 rows
    # (the old n // splits slicing) changes the score
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.full(5, 0.3), size=23)
    bounds = [k * 23 // 4 for k in range(5)]
    assert bounds == [0, 5, 11, 17, 23]
    expected = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        part = p[lo:hi]
        py = part.mean(0)
        expected.append(math.exp(sum(float(np.sum(r * np.log(r / py))) for r in part) / len(part)))
    mean, std = inception_score(p, splits=4)
    assert mean == pytest.approx(float(np.mean(expected)), rel=1e-12)
    assert std == pytest.approx(float(np.std(expected)), rel=1e-9)
    mean_l, _ = inception_score(np.log(p), splits=4, logits=True)
    assert mean_l == pytest.approx(mean, rel=1e-10)


# ---------------------------------------------------------------- precision / recall

def brute_force_pr(fake, real, k=3):
    def radii(x):
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    r_real, r_fake = radii(real), radii(fake)
    d = np.linalg.norm(fake[:, None] - real[None], axis=-1)  # (F, R)
    precision = np.mean((d <= r_real[None]).any(1))
    recall = np.mean((d.T <= r_fake[None]).any(1))
    return precision, recall


def test_knn_radii_brute_force():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    expected = np.sort(d, axis=1)[:, 3]
    got = knn_radii(x, k=3, batch_size=7, dtype=torch.float64).sqrt().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_pr_identical_sets():
    x = torch.randn(300, 16)
    assert precision_recall(x, x.clone()) == (1.0, 1.0)


def test_pr_disjoint_sets():
    x = torch.randn(200, 8)
    assert precision_recall(x + 100.0, x) == (0.0, 0.0)


def test_pr_half_mode_subset_against_brute_force():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(400, 2))
    fake = real[real[:, 0] > 0]  # the generator only produces the right half of the real data
    p, r = precision_recall(fake, real, k=3, batch_size=64, dtype=torch.float64)
    bp, br = brute_force_pr(fake, real, k=3)
    assert p == bp == 1.0
    assert r == pytest.approx(br, abs=1e-12)
    assert 0.4 < r < 0.75
    # float32 default: the same up to points on a ball's boundary
    p32, r32 = precision_recall(fake, real)
    assert p32 == 1.0 and abs(r32 - br) <= 2 / len(real)


def test_pr_random_sets_against_brute_force():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(150, 4)), rng.normal(size=(120, 4)) + 1.0
    p, r = precision_recall(fake, real, k=5, batch_size=50, dtype=torch.float64)
    bp, br = brute_force_pr(fake, real, k=5)
    assert (p, r) == pytest.approx((bp, br), abs=1e-12)
    assert 0 < p < 1 and 0 < r < 1


# ---------------------------------------------------------------- 2-D toy metrics

RING = np.array([[2 * np.cos(t), 2 * np.sin(t)] for t in np.linspace(0, 2 * np.pi, 8, endpoint=False)])


def test_mode_stats_at_centres_and_half():
    samples = np.repeat(RING, 50, axis=0)
    s = mode_stats(samples, RING, std=0.02)
    assert s["modes_covered"] == 8 and s["high_quality_fraction"] == 1.0 and s["mode_counts"] == [50] * 8
    half = np.repeat(RING[:4], 100, axis=0)
    s = mode_stats(half, RING, std=0.02)
    assert s["modes_covered"] == 4 and s["high_quality_fraction"] == 1.0


def test_mode_stats_quality_and_min_count():
    rng = np.random.default_rng(0)
    std = 0.05
    good = np.repeat(RING, 100, axis=0) + std * rng.normal(size=(800, 2))
    # 3-sigma in 2-D holds 1 - exp(-9/2) = 98.9 % of a Gaussian's mass
    assert mode_stats(good, RING, std)["high_quality_fraction"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    far = np.zeros((200, 2))  # the centre of the ring: 2 > 3 * std away from every mode
    mixed = np.concatenate([good, far])
    assert mode_stats(mixed, RING, std)["high_quality_fraction"] == pytest.approx(0.8 * (1 - math.exp(-4.5)), abs=0.01)
    # a few stray samples on a mode do not cover it: default min_count = ceil(0.05 * N / K)
    stray = np.concatenate([np.repeat(RING[:1], 400, axis=0), RING[1:2].repeat(2, axis=0)])
    s = mode_stats(stray, RING, std)
    assert s["min_count"] == math.ceil(0.05 * 402 / 8) and s["modes_covered"] == 1
    assert mode_stats(stray, RING, std, min_count=1)["modes_covered"] == 2


def test_wasserstein1_translation_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 2))
    t = np.array([0.3, -1.2])
    assert wasserstein1(a, a + t) == pytest.approx(np.linalg.norm(t), abs=1e-9)
    assert wasserstein1(a, a[rng.permutation(200)]) == pytest.approx(0.0, abs=1e-12)


def test_wasserstein1_brute_force_small():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)) + 1
    best = min(np.mean(np.linalg.norm(a - b[list(p)], axis=1)) for p in itertools.permutations(range(6)))
    assert wasserstein1(a, b) == pytest.approx(best, abs=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        wasserstein1(a, b[:5])


# ---------------------------------------------------------------- extractors, reference cache, compute_metrics

class LinearFeatures(torch.nn.Module):
    """Deterministic stand-in for the classifier: a fixed random projection of the flattened image."""

    def __init__(self, pixels=64, dim=12):
        super().__init__()
        self.proj = torch.nn.Linear(pixels, dim)

    def features(self, x):
        return self.proj(x.flatten(1))


def fake_classifier_extractor():
    torch.manual_seed(0)
    return features.ClassifierExtractor(model=LinearFeatures())


def test_extractor_checks_and_grayscale():
    ext = fake_classifier_extractor()
    gray = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    rgb = gray.repeat(1, 3, 1, 1)
    f = ext(gray)
    assert f.shape == (5, 12) and f.dtype == torch.float32
    # equal RGB channels convert back to the same gray image (luma weights sum to 1)
    torch.testing.assert_close(ext(rgb), f)
    with pytest.raises(ValueError, match="uint8"):
        ext(gray.float())
    with pytest.raises(ValueError, match="unknown feature extractor"):
        features.get_extractor("vgg")
    assert set(features.available_extractors()) >= {"inception", "classifier"}


def test_get_extractor_caches_default_instances():
    built = []

    def factory(device="cpu", **kw):
        built.append(kw)
        return fake_classifier_extractor()

    features.register_extractor("test-linear", factory)
    try:
        a = features.get_extractor("test-linear")
        assert features.get_extractor("test-linear") is a and len(built) == 1
        assert features.get_extractor("test-linear", cache=False) is not a and len(built) == 2
        features.get_extractor("test-linear", classifier="x")
        assert len(built) == 3 and features.get_extractor("test-linear") is a
        b = features.get_extractor("test-linear", classifier="x")  # plain options: cached per value
        assert len(built) == 3 and b is not a
        features.get_extractor("test-linear", model=LinearFeatures())  # an object: never cached
        assert len(built) == 4
    finally:
        features.register_extractor("test-linear", factory)  # drops its cached instances
        features._REGISTRY.pop("test-linear")


def test_extract_features_batch_independent_and_dataset():
    ext = fake_classifier_extractor()
    imgs = torch.randint(0, 256, (23, 1, 8, 8), dtype=torch.uint8)
    full = ext(imgs)
    for bs in (1, 5, 100):
        torch.testing.assert_close(features.extract_features(ext, imgs, batch_size=bs), full, rtol=0, atol=1e-5)

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return 23

        def __getitem__(self, i):
            return imgs[i], 0

    torch.testing.assert_close(features.extract_features(ext, DS(), batch_size=4), full, rtol=0, atol=1e-5)


def test_reference_stats_cache_atomic_and_keyed(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTGAN_CACHE", str(tmp_path))
    imgs = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8)

    class DS(torch.utils.data.Dataset):
        images = imgs

        def __len__(self):
            return len(imgs)

        def __getitem__(self, i):
            return imgs[i]

    def fake_load_dataset(name, root=None, split="train", img_size=None, download=False):
        return DS()

    import robustgan.data
    monkeypatch.setattr(robustgan.data, "load_dataset", fake_load_dataset, raising=False)
    # count feature computations (the data set itself is loaded each time, to fingerprint its content)
    calls = []
    real_extract = features.extract_features
    monkeypatch.setattr(features, "extract_features", lambda *a, **k: calls.append(1) or real_extract(*a, **k))
    ext = fake_classifier_extractor()
    s1 = reference.reference_stats("toyset", extractor=ext, max_features=30, seed=0)
    assert len(calls) == 1 and s1["n"] == 40 and s1["features"].shape == (30, 12)
    assert os.path.dirname(s1["path"]) == str(tmp_path / "stats")
    assert not [p for p in os.listdir(tmp_path / "stats") if p.endswith(".tmp")]
    mu, sigma = feature_statistics(ext(imgs))
    np.testing.assert_allclose(s1["mu"], mu, atol=1e-10)
    np.testing.assert_allclose(s1["sigma"], sigma, atol=1e-10)
    s2 = reference.reference_stats("toyset", extractor=ext, max_features=30, seed=0)  # from the cache
    assert len(calls) == 1 and s2["path"] == s1["path"] and s2["extractor"] == "classifier"
    np.testing.assert_array_equal(s2["features"], s1["features"])
    s3 = reference.reference_stats("toyset", extractor=ext, n=20, max_features=30, seed=0)  # another key
    assert len(calls) == 2 and s3["n"] == 20 and s3["path"] != s1["path"]
    # new weights (e.g. a retrained classifier) give a new fingerprint, hence new statistics
    fp = ext.fingerprint()
    ext2 = fake_classifier_extractor()
    with torch.no_grad():
        ext2.model.proj.weight.mul_(2)
    assert ext2.fingerprint() != fp and fake_classifier_extractor().fingerprint() == fp
    s4 = reference.reference_stats("toyset", extractor=ext2, max_features=30, seed=0)
    assert len(calls) == 3 and s4["path"] != s1["path"]
    keys = {reference.reference_key("a", "train", "inception", None, None),
            reference.reference_key("a", "test", "inception", None, None),
            reference.reference_key("a", "train", "classifier", None, None),
            reference.reference_key("a", "train", "inception", 32, None),
            reference.reference_key("a", "train", "inception", None, 1000),
            reference.reference_key("folder", "train", "inception", None, None, root=str(tmp_path / "x")),
            reference.reference_key("folder", "train", "inception", None, None, root=str(tmp_path / "y"))}
    assert len(keys) == 7


def test_compute_metrics_against_direct_calls():
    ext = fake_classifier_extractor()
    torch.manual_seed(1)
    real = torch.randint(0, 256, (120, 1, 8, 8), dtype=torch.uint8)
    fake = (real.float() * 0.7).to(torch.uint8)
    out = evaluate.compute_metrics(fake, real, metrics=("fd", "kid", "pr"), extractor=ext,
                                   kid_subsets=10, kid_subset_size=50, seed=0)
    ff, fr = ext(fake).numpy(), ext(real).numpy()
    assert out["fd"] == pytest.approx(frechet_distance_from_features(ff, fr), rel=1e-9)
    assert (out["kid_mean"], out["kid_std"]) == pytest.approx(kid(ff, fr, num_subsets=10, subset_size=50, seed=0))
    assert (out["precision"], out["recall"]) == precision_recall(ff, fr)
    assert out["n_fake"] == 120 and out["n_ref"] == 120
    same = evaluate.compute_metrics(real, real, metrics=("fd",), extractor=ext)
    assert abs(same["fd"]) < 1e-6 and "fid" not in same
    # "fid" names the Inception feature space: in classifier space it is refused, never relabelled
    with pytest.raises(ValueError, match="Inception space"):
        evaluate.compute_metrics(real, real, metrics=("fid",), extractor=ext)
    stats = reference.stats_from_features(fr, extractor="inception")
    with pytest.raises(ValueError, match="extractor"):
        evaluate.compute_metrics(fake, stats, extractor=ext)
    with pytest.raises(ValueError, match="Inception Score"):
        evaluate.compute_metrics(fake, real, metrics=("is",), extractor=ext)
    with pytest.raises(ValueError, match="uint8"):
        evaluate.compute_metrics(fake.float(), real, extractor=ext)


def test_compute_metrics_with_stats_file(tmp_path):
    ext = fake_classifier_extractor()
    real = torch.randint(0, 256, (60, 1, 8, 8), dtype=torch.uint8)
    stats = reference.stats_from_features(ext(real), extractor="classifier", dataset="x")
    path = reference.save_stats(tmp_path / "s.npz", stats)
    a = evaluate.compute_metrics(real[:30], path, metrics=("fd", "kid"), extractor=ext, kid_subsets=3)
    b = evaluate.compute_metrics(real[:30], real, metrics=("fd", "kid"), extractor=ext, kid_subsets=3)
    assert a["fd"] == pytest.approx(b["fd"], rel=1e-6)
    assert a["kid_mean"] == pytest.approx(b["kid_mean"], rel=1e-6)


def _classifier_available():
    try:
        from robustgan.metrics.classifier import weights_path
        return weights_path("fashion-mnist").is_file()
    except Exception:
        return False


@pytest.mark.skipif(not _classifier_available(), reason="Fashion-MNIST classifier weights not present")
def test_classifier_fd_orders_real_before_noise():
    from robustgan.data.idx import read_idx
    path = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
    if not os.path.exists(path):
        pytest.skip("Fashion-MNIST test images not present")
    imgs = torch.from_numpy(read_idx(path)[:1000].copy()).unsqueeze(1)
    ext = features.get_extractor("classifier")
    assert ext.dim == 128
    real_a, real_b = imgs[:500], imgs[500:]
    noise = torch.randint(0, 256, real_a.shape, dtype=torch.uint8)
    blurred = torch.nn.functional.avg_pool2d(real_a.float(), 3, 1, 1).to(torch.uint8)
    fd = lambda x: evaluate.compute_metrics(x, real_b, metrics=("fd",), extractor=ext)["fd"]  # noqa: E731
    assert fd(real_a) < fd(blurred) < fd(noise)
