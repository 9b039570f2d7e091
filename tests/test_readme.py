"""The README's drop-in example runs as written on a small GAN."""
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from robustgan.models import build_models

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_drop_in_example_trains():
    code = _python_blocks()[0]
    assert "robust_feature_matching" in code
    G, D = build_models("dcgan", img_size=16, channels=1, width=8)
    loader = [torch.rand(8, 1, 16, 16) for _ in range(2)]
    before = [p.detach().clone() for p in D.parameters()]
    env = {"torch": torch, "G": G, "D": D, "loader": loader,
           "opt_d": torch.optim.Adam(D.parameters(), 2e-4, betas=(0.0, 0.9)),
           "opt_g": torch.optim.Adam(G.parameters(), 2e-4, betas=(0.0, 0.9))}
    exec(compile(code, "README.md", "exec"), env)
    assert torch.isfinite(env["loss_d"]) and torch.isfinite(env["loss_g"])
    assert any(not torch.equal(a, b) for a, b in zip(before, D.parameters()))
    assert len(code.strip().splitlines()) <= 12


def _tutorial_d():
    """The PyTorch DCGAN tutorial's discriminator at 16x16: a 4x4 conv to one channel, then a sigmoid."""
    return nn.Sequential(nn.Conv2d(1, 4, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
                         nn.Conv2d(4, 8, 4, 2, 1, bias=False), nn.BatchNorm2d(8), nn.LeakyReLU(0.2),
                         nn.Conv2d(8, 1, 4, 1, 0, bias=False), nn.Sigmoid())


@pytest.mark.parametrize("kind, pairs", [("protocol", True), ("tutorial", True), ("tutorial", False)])
def test_drop_in_example_takes_pairs_and_any_d(kind, pairs):
    G, D = build_models("dcgan", img_size=16, channels=1, width=8)
    if kind == "tutorial":
        D = _tutorial_d()
    batches = [torch.rand(8, 1, 16, 16) for _ in range(2)]
    loader = [(x, torch.zeros(8, dtype=torch.long)) for x in batches] if pairs else batches
    env = {"torch": torch, "G": G, "D": D, "loader": loader,
           "opt_d": torch.optim.Adam(D.parameters(), 2e-4, betas=(0.0, 0.9)),
           "opt_g": torch.optim.Adam(G.parameters(), 2e-4, betas=(0.0, 0.9))}
    exec(compile(_python_blocks()[0], "README.md", "exec"), env)
    assert torch.isfinite(env["loss_d"]) and torch.isfinite(env["loss_g"])


def test_readme_names_the_set_up_commands():
    text = README.read_text()
    assert "bash scripts/install.sh && .venv/bin/robustgan train" in text
    assert ".venv/bin/python -m pytest" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "scripts/install.sh" in ci and ".venv/bin/python -m pytest" in ci
