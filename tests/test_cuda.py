"""Training on a GPU: one trainer step per regulariser (fp32 and bf16), channels_last, exact attack
norms and a checkpoint round trip. Every test is marked ``cuda`` and skipped where CUDA is not
available, so these never fail on a CPU-only machine; run them with ``pytest -m cuda`` on one."""
import json

import pytest
import torch

from robustgan.attacks import ATTACK_NORMS, get_attack, per_sample_norm
from robustgan.data.images import TensorImageDataset
from robustgan.train import checkpoint as ckpt
from robustgan.train.config import resolve

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

REGS = ["none", "noise", "gp", "ar", "rfm"]
PRECISIONS = {"fp32": "none", "bf16": "bf16"}


def bf16_or_skip(precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")


@pytest.fixture
def tiny_images(monkeypatch):
    """64 random uint8 images 3x16x16 in memory, served as the run's data set."""
    import robustgan.train.loop as loop
    images = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ds = TensorImageDataset(images, name="tiny", split="train")
    monkeypatch.setattr(loop, "load_training_data", lambda cfg: ds)
    return ds


def tiny_cfg(*extra, steps=2, arch="dcgan"):
    preset = "fmnist-dcgan" if arch == "dcgan" else "cifar10-resnet"
    return resolve(preset, ["model.width=8", "train.batch_size=16", f"train.steps={steps}", "log.every=1",
                            f"log.checkpoint_every={steps}", "log.samples_every=1000", "log.progress=false",
                            "log.eval_at_end=false", "log.eval_every=0", "log.tensorboard=false",
                            "train.device=cuda", "train.ema=0.9", "optim.d_steps=2", *extra])


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("reg", REGS)
def test_one_step_per_regulariser(tmp_path, tiny_images, reg, precision):
    from robustgan.train.loop import Trainer
    bf16_or_skip(precision)
    cfg = tiny_cfg(f"reg={reg}", f"train.amp={PRECISIONS[precision]}", "train.channels_last=false")
    tr = Trainer(cfg, tmp_path)
    assert tr.device.type == "cuda"
    assert all(p.is_cuda for p in tr.D.parameters()) and all(p.is_cuda for p in tr.G.parameters())
    before = [p.detach().clone() for p in tr.D.parameters()]
    tr.fit()
    assert any(not torch.equal(a, p) for a, p in zip(before, tr.D.parameters())), "D did not change"
    got = rows(tmp_path)
    assert len(got) == 2
    for r in got:
        for key in ("loss_d", "loss_g", "d_real", "d_fake"):
            assert r[key] == r[key] and abs(r[key]) < 1e6, (key, r[key])  # finite
    if reg in ("gp", "ar", "rfm"):
        assert all(r["penalty"] > 0 for r in got)


@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_channels_last_step(tmp_path, tiny_images, arch, precision):
    from robustgan.train.loop import Trainer
    bf16_or_skip(precision)
    cfg = tiny_cfg("reg=rfm", f"train.amp={PRECISIONS[precision]}", "train.channels_last=true", arch=arch)
    tr = Trainer(cfg, tmp_path)
    convs = [p for p in tr.D.parameters() if p.ndim == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    real = tr._to_model(tr.batches.batch(0))
    assert real.is_cuda and real.is_contiguous(memory_format=torch.channels_last)
    tr.fit()
    assert all(r["loss_d"] == r["loss_d"] for r in rows(tmp_path))
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in tr.D.parameters() if p.ndim == 4)


@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("attack,kw", [("fgm", {}), ("fgsm", {}), ("pgd", {"steps": 3}), ("pgd", {"steps": 3, "p": "inf"}),
                                       ("cw", {"steps": 3})])
def test_attack_norms_exact_on_the_trainers_d(tmp_path, tiny_images, attack, kw, precision):
    """The attacks AR and RFM use, on the trainer's D (channels_last), inside its autocast."""
    from robustgan.train.loop import Trainer
    bf16_or_skip(precision)
    cfg = tiny_cfg("reg=ar", f"train.amp={PRECISIONS[precision]}", "train.channels_last=true")
    tr = Trainer(cfg, tmp_path)
    delta = tr.robust_delta
    with torch.no_grad(), tr.autocast():
        fake = tr.G(tr._z(16))
    fake = fake.float().contiguous(memory_format=torch.channels_last)
    with tr.autocast():
        v = get_attack(attack, **kw)(tr.D, fake, delta)
    assert v.is_cuda and v.shape == fake.shape and v.dtype == torch.float32
    p = kw.get("p", ATTACK_NORMS[attack])
    n = per_sample_norm(v, p)
    assert (n <= delta * (1 + 1e-5)).all(), n.max().item()
    if attack in ("fgm", "fgsm"):  # single-step attacks sit on the sphere, exactly
        assert torch.allclose(n, torch.full_like(n, delta), rtol=1e-5), n
    else:
        assert (n > 0).all()


@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_checkpoint_round_trip(tmp_path, tiny_images, precision):
    from robustgan.train.loop import Trainer
    bf16_or_skip(precision)
    cfg = tiny_cfg("reg=rfm", f"train.amp={PRECISIONS[precision]}", "train.channels_last=true", steps=2)
    tr = Trainer(cfg, tmp_path)
    tr.fit()
    path = ckpt.latest_checkpoint(tmp_path)
    assert path is not None and path.name == "ckpt-00000002.pt"
    saved = ckpt.load_checkpoint(path)  # weights_only, onto the CPU
    assert all(t.device.type == "cpu" for t in saved["G"].values())
    for key, module in (("G", tr.G), ("D", tr.D), ("G_ema", tr.G_ema)):
        for name, value in module.state_dict().items():
            assert torch.equal(saved[key][name], value.cpu()), f"{key}.{name}"
    # a new trainer on the same folder resumes onto the GPU with the same state
    cfg4 = tiny_cfg("reg=rfm", f"train.amp={PRECISIONS[precision]}", "train.channels_last=true", steps=4)
    again = Trainer(cfg4, tmp_path)
    assert again.step == 2 and again.d_iter == tr.d_iter
    for name, value in again.D.state_dict().items():
        assert value.is_cuda and torch.equal(value.cpu(), saved["D"][name])
    for st in again.opt_d.state_dict()["state"].values():
        assert all(v.is_cuda for k, v in st.items() if torch.is_tensor(v) and k != "step")
    again.fit()
    assert ckpt.latest_checkpoint(tmp_path).name == "ckpt-00000004.pt"
    assert [r["step"] for r in rows(tmp_path)] == [1, 2, 3, 4]


def test_workers_and_pinned_memory_on_cuda():
    from robustgan.train.batches import BatchSource

    class Lazy(torch.utils.data.Dataset):
        def __len__(self):
            return 32

        def __getitem__(self, i):
            return torch.full((1, 4, 4), int(i), dtype=torch.uint8)

    plain = BatchSource(Lazy(), batch_size=8, seed=0)
    with BatchSource(Lazy(), batch_size=8, seed=0, workers=2, pin_memory=True) as src:
        for p in range(6):
            b = src.batch(p)
            assert b.is_pinned() and torch.equal(b, plain.batch(p))
            on_gpu = b.to("cuda", non_blocking=True)
            torch.cuda.synchronize()
            assert torch.equal(on_gpu.cpu(), plain.batch(p))
