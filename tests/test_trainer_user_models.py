"""The trainer with users' own networks and data (no robustgan model code involved)."""
import pytest
import torch
import torch.nn as nn

from robustgan.train import checkpoint as ckpt
from robustgan.train.config import resolve
from robustgan.train.loop import Trainer

SMALL = ["train.batch_size=16", "log.every=2", "log.checkpoint_every=3", "log.samples_every=100",
         "log.progress=false", "log.eval_at_end=false", "log.tensorboard=false", "train.threads=1",
         "train.amp=none", "train.channels_last=false"]


class MyGenerator(nn.Module):
    """A user's generator: noise (B, 16) -> images (B, 1, 16, 16) in [0, 1]."""

    def __init__(self):
        super().__init__()
        self.z_dim = 16
        self.net = nn.Sequential(nn.Linear(16, 8 * 4 * 4), nn.ReLU(), nn.Unflatten(1, (8, 4, 4)),
                                 nn.Upsample(scale_factor=4), nn.Conv2d(8, 1, 3, padding=1), nn.Sigmoid())

    def forward(self, z):
        return self.net(z)


def tutorial_discriminator():
    """The DCGAN tutorial's kind of D: convolutions ending in a 4x4 conv to one channel and a sigmoid."""
    return nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 16, 4, 2, 1),
                         nn.LeakyReLU(0.2), nn.Conv2d(16, 1, 4, 1, 0), nn.Sigmoid())


def make_pair(seed=0):
    torch.manual_seed(seed)
    return MyGenerator(), tutorial_discriminator()


def data():
    g = torch.Generator().manual_seed(1)
    images = torch.rand(64, 1, 16, 16, generator=g)
    return [(images[i], 0) for i in range(len(images))]  # a torchvision-style data set of (image, label)


def test_user_pair_trains_with_rfm_and_resumes_exactly(tmp_path):
    cfg = resolve(None, SMALL + ["reg=rfm", "train.steps=6"])
    G, D = make_pair()
    d_first_conv = D[0].weight.detach().clone()
    full = Trainer(cfg, tmp_path / "full", G=G, D=D, data=data())
    full.fit()
    assert not torch.equal(D[0].weight, d_first_conv), "training must update the user's own D"

    G, D = make_pair()
    part = Trainer(resolve(None, SMALL + ["reg=rfm", "train.steps=3"]), tmp_path / "part", G=G, D=D, data=data())
    part.fit()
    G, D = make_pair(seed=5)  # different initial weights: the checkpoint must replace them
    resumed = Trainer(cfg, tmp_path / "part", G=G, D=D, data=data())
    assert resumed.step == 3
    resumed.fit()
    a = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "full"))
    b = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "part"))
    assert a["step"] == b["step"] == 6
    for net in ("G", "D", "G_ema"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k}"
    rows = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 3 and '"penalty"' in rows[0]


def test_user_data_forms_give_the_same_images():
    from robustgan.data.user import as_image_dataset
    x = torch.rand(8, 3, 4, 4)
    a = as_image_dataset(x).images
    b = as_image_dataset([(x[i], i) for i in range(8)]).images
    c = as_image_dataset((x * 255).round().to(torch.uint8)).images
    assert torch.equal(a, b) and torch.equal(a, c)
    assert (a.float() / 255 - x).abs().max() <= 0.5 / 255 + 1e-6  # quantised to the nearest 1/255


def test_user_inputs_are_checked():
    cfg = resolve(None, SMALL + ["train.steps=2"])
    G, D = make_pair()
    with pytest.raises(ValueError, match="pass both G and D"):
        Trainer(cfg, "unused", G=G, data=data())
    del G.z_dim
    with pytest.raises(ValueError, match="no integer attribute z_dim"):
        Trainer(cfg, "unused", G=G, D=D, data=data())
    with pytest.raises(ValueError, match=r"float images must be in \[0, 1\]"):
        Trainer(cfg, "unused", G=MyGenerator(), D=D, data=torch.randn(8, 1, 16, 16))


def test_readme_own_models_example_runs(tmp_path, monkeypatch):
    import re
    from pathlib import Path
    text = (Path(__file__).parents[1] / "README.md").read_text()
    section = text[text.index("## Your own networks"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace('"train.steps=2000"', '"train.steps=2", ' + ", ".join(repr(s) for s in SMALL))
    assert len(code.strip().splitlines()) <= 15
    monkeypatch.chdir(tmp_path)
    G, D = make_pair()
    env = {"my_G": G, "my_D": D, "MyG": MyGenerator, "my_images": torch.rand(32, 1, 16, 16)}
    exec(compile(code, "README.md", "exec"), env)
    assert env["images"].shape == (16, 1, 16, 16)
    images = env["images"].detach()
    assert 0 <= float(images.min()) and float(images.max()) <= 1


def test_user_data_is_its_own_evaluation_reference(tmp_path):
    # 28x28 gray user images: the shipped classifier space; the reference is the user's data, so
    # the FD of the real images themselves (as "samples") against it is ~0 and the trained G's is not.
    from robustgan.metrics.evaluate import compute_metrics
    from robustgan.ranges import range_to_uint8
    from robustgan.train.evaluation import evaluate_samples
    g = torch.Generator().manual_seed(3)
    images = (torch.rand(200, 1, 28, 28, generator=g) > 0.7).float()
    cfg = resolve(None, SMALL + ["train.steps=1", "log.metrics=[fd]", "log.eval_n=100"])
    real = (images * 255).round().to(torch.uint8)
    same = evaluate_samples(images[:100], cfg, metrics=["fd"], reference_images=real)
    assert abs(same["fd"] - compute_metrics(range_to_uint8(images[:100], "sigmoid"), real, metrics=["fd"])["fd"]) < 1e-9
    assert same["fd"] < 0.2 * evaluate_samples(torch.rand(100, 1, 28, 28, generator=g), cfg, metrics=["fd"],
                                               reference_images=real)["fd"]
