"""BatchSource: batches are a function of (seed, position), with or without DataLoader workers."""
import gc
import multiprocessing

import pytest
import torch

from robustgan.data.images import TensorImageDataset
from robustgan.data.toy import get_toy
from robustgan.train.batches import BatchSource


class DecodedOnTheFly(torch.utils.data.Dataset):
    """A lazily 'decoded' image set: item i is a deterministic function of i (no ``images`` tensor)."""

    def __init__(self, n=50, channels=1, size=4):
        self.n, self.shape = n, (channels, size, size)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(1000 + int(i))
        img = torch.randint(0, 256, self.shape, generator=g, dtype=torch.uint8)
        img[0, 0, 0] = int(i)  # the index is readable from the image
        return img


def expected_indices(n, batch, seed, position, rank=0, world=1):
    """Independent restatement of the order: epoch permutation seeded with seed * 1_000_003 + epoch."""
    per_epoch = n // (batch * world)
    epoch, i = divmod(position, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    start = (i * world + rank) * batch
    return perm[start:start + batch]


def test_order_is_the_documented_permutation():
    ds = DecodedOnTheFly(n=50)
    src = BatchSource(ds, batch_size=8, seed=3)
    assert src.per_epoch == 6  # 50 // 8, the last incomplete batch dropped
    for p in (0, 5, 6, 13):
        idx = expected_indices(50, 8, 3, p)
        assert torch.equal(src.indices(p), idx)
        assert src.batch(p)[:, 0, 0, 0].tolist() == idx.tolist()
    # an epoch visits each index at most once
    seen = torch.cat([src.indices(p) for p in range(6)])
    assert len(set(seen.tolist())) == 48


def test_in_memory_data_is_unchanged():
    images = torch.randint(0, 256, (40, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ds = TensorImageDataset(images, name="tiny", split="train")
    src = BatchSource(ds, batch_size=8, seed=1, workers=2)
    assert not src.uses_loader  # nothing to decode: served from memory
    for p in range(7):
        assert torch.equal(src.batch(p), images[expected_indices(40, 8, 1, p)])


def test_toy_data_is_unchanged():
    toy = get_toy("8gaussians")
    src = BatchSource(toy, batch_size=16, seed=2, rank=1, workers=2)
    assert not src.uses_loader
    g = torch.Generator().manual_seed((2 * 1_000_003 + 5) * 64 + 1)
    assert torch.equal(src.batch(5), toy.sample(16, generator=g))
    assert torch.equal(src.batch(5), src.batch(5))


@pytest.mark.parametrize("world", [1, 2])
def test_workers_give_the_same_batches_in_the_same_order(world):
    ds = DecodedOnTheFly(n=50)
    for rank in range(world):
        plain = BatchSource(ds, batch_size=6, seed=7, rank=rank, world=world, workers=0)
        loaded = BatchSource(ds, batch_size=6, seed=7, rank=rank, world=world, workers=2)
        assert loaded.uses_loader and not plain.uses_loader
        n = 3 * plain.per_epoch + 2  # across epoch boundaries
        try:
            for p in range(n):
                a, b = plain.batch(p), loaded.batch(p)
                assert a.dtype == b.dtype == torch.uint8 and a.shape == b.shape == (6, 1, 4, 4)
                assert torch.equal(a, b), f"batch {p} differs"
        finally:
            loaded.close()


def test_resume_at_any_position_matches():
    ds = DecodedOnTheFly(n=30)
    plain = BatchSource(ds, batch_size=4, seed=0)
    full = [plain.batch(p) for p in range(16)]
    for k in (0, 3, 7, 11):  # a new source, as after a restart, beginning at position k
        with BatchSource(ds, batch_size=4, seed=0, workers=2) as resumed:
            for p in range(k, 16):
                assert torch.equal(resumed.batch(p), full[p])
    # jumping back (a NaN rollback) restarts the loader at the earlier position
    with BatchSource(ds, batch_size=4, seed=0, workers=2) as src:
        for p in range(6):
            src.batch(p)
        assert torch.equal(src.batch(2), full[2]) and torch.equal(src.batch(3), full[3])


def test_iterate_matches_batch():
    ds = DecodedOnTheFly(n=30)
    plain = BatchSource(ds, batch_size=4, seed=5)
    for workers in (0, 2):
        src = BatchSource(ds, batch_size=4, seed=5, workers=workers)
        it = src.iterate(4)
        got = [next(it) for _ in range(10)]
        it.close()
        assert all(torch.equal(g, plain.batch(4 + i)) for i, g in enumerate(got))


def test_workers_are_shut_down_on_close_and_on_garbage():
    ds = DecodedOnTheFly(n=30)
    before = set(multiprocessing.active_children())
    src = BatchSource(ds, batch_size=4, seed=0, workers=2)
    src.batch(0)
    running = set(multiprocessing.active_children()) - before
    assert len(running) == 2
    src.close()
    assert not (set(multiprocessing.active_children()) & running)
    src.batch(1)  # restarts after close
    running = set(multiprocessing.active_children()) - before
    assert len(running) == 2
    del src
    gc.collect()
    assert not (set(multiprocessing.active_children()) & running)
    # an abandoned iterate() generator also stops its workers once collected
    it = BatchSource(ds, batch_size=4, seed=0, workers=2).iterate(0)
    next(it)
    running = set(multiprocessing.active_children()) - before
    assert len(running) == 2
    del it
    gc.collect()
    assert not (set(multiprocessing.active_children()) & running)


def test_pin_memory_flag_is_passed_on(monkeypatch):
    ds = DecodedOnTheFly(n=20)
    src = BatchSource(ds, batch_size=4, seed=0, workers=1, pin_memory=True)
    loader = src._make_loader(3)
    assert loader.pin_memory is True and loader.num_workers == 1
    if torch.cuda.is_available():
        assert src.batch(0).is_pinned()
        src.close()


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="fewer than one batch"):
        BatchSource(DecodedOnTheFly(n=5), batch_size=8, seed=0)
    with pytest.raises(ValueError, match="data.workers must be a non-negative integer"):
        BatchSource(DecodedOnTheFly(n=50), batch_size=8, seed=0, workers=-1)


class TinyImageSet(DecodedOnTheFly):
    """On-the-fly images with the attributes the trainer reads (channels, img_size)."""

    def __init__(self):
        super().__init__(n=48, channels=1, size=16)
        self.channels, self.img_size = 1, 16


def _train(run_dir, workers, steps, monkeypatch):
    import robustgan.train.loop as loop
    from robustgan.train.config import resolve
    monkeypatch.setattr(loop, "load_training_data", lambda cfg: TinyImageSet())
    cfg = resolve("fmnist-dcgan", ["model.width=8", "train.batch_size=8", f"train.steps={steps}", "log.every=2",
                                   "log.checkpoint_every=3", "log.samples_every=100", "log.progress=false",
                                   "log.eval_at_end=false", "log.tensorboard=false", "train.amp=none",
                                   "train.threads=1", "reg=none", "train.ema=0", f"data.workers={workers}"])
    trainer = loop.Trainer(cfg, run_dir)
    trainer.fit()
    trainer.batches.close()
    from robustgan.train import checkpoint as ckpt
    return ckpt.load_checkpoint(ckpt.latest_checkpoint(run_dir))


def test_trainer_with_workers_matches_and_resumes_exactly(tmp_path, monkeypatch):
    """8 steps cross an epoch (6 batches of 8 in 48 images); the workers=2 run stops at 3 and resumes."""
    plain = _train(tmp_path / "plain", 0, 8, monkeypatch)
    _train(tmp_path / "loaded", 2, 3, monkeypatch)
    loaded = _train(tmp_path / "loaded", 2, 8, monkeypatch)  # resumes at step 3
    assert plain["step"] == loaded["step"] == 8
    for key in ("G", "D"):
        for name, value in plain[key].items():
            assert torch.equal(value, loaded[key][name]), f"{key}.{name} differs"


def test_starting_workers_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with BatchSource(DecodedOnTheFly(n=20), batch_size=4, seed=0, workers=1) as src:
        src.batch(0)
        src.batch(3)  # a restart
        assert torch.equal(torch.rand(3), expected)
