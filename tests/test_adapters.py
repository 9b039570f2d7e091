"""Adapters: users' discriminators seen through the discriminator protocol."""
import copy
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from robustgan.adapters import ConvAsLinear, robust_discriminator, unwrap
from robustgan.attacks import fgm
from robustgan.models import build_models
from robustgan.regularizers import (AdversarialRegularizer, RobustFeatureMatching, adversarial_regularization,
                                    robust_feature_matching)

TOL = dict(rtol=1e-5, atol=1e-6)


class TutorialD(nn.Module):
    """The PyTorch DCGAN tutorial's discriminator, at 16x16 and small width."""

    def __init__(self, nc=1, ndf=4, sigmoid=True):
        super().__init__()
        layers = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
                  nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2),
                  nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False)]
        self.main = nn.Sequential(*layers, *([nn.Sigmoid()] if sigmoid else []))

    def forward(self, x):
        return self.main(x)


class LogitAndFeatures(nn.Module):
    """Returns (logit, penultimate features), as StudioGAN's discriminators do."""

    def __init__(self, as_dict=False):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(1, 6, 3, 2, 1), nn.ReLU())
        self.linear1 = nn.Linear(6, 1)
        self.as_dict = as_dict

    def forward(self, x):
        h = self.trunk(x).sum(dim=(2, 3))
        logit = self.linear1(h).squeeze(-1)
        return {"adv_output": logit, "h": h} if self.as_dict else (logit, h)


class Wrapper(nn.Module):
    """Shaped like DistributedDataParallel: the network is ``.module``."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x)


class CompiledLike(nn.Module):
    """Shaped like torch.compile's OptimizedModule: the network is ``._orig_mod``."""

    def __init__(self, module):
        super().__init__()
        self._orig_mod = module

    def forward(self, x):
        return self._orig_mod(x)


def sequential_d():
    return nn.Sequential(nn.Conv2d(1, 4, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(4 * 8 * 8, 1))


def rfm_by_hand(logit_fn, phi_fn, w, x, delta=0.05, alpha=1e-4):
    """Eq. 5 from the user's own layers: fgm on the logit, squared feature distance, alpha ||w||^2."""
    v = fgm(logit_fn, x, delta)
    phi, phi_adv = phi_fn(x).flatten(1), phi_fn(x + v).flatten(1)
    return (phi - phi_adv).pow(2).sum(1).mean() + alpha * w.pow(2).sum()


def grads(module):
    return {n: p.grad for n, p in module.named_parameters()}


def test_sequential_forward_features_and_rfm():
    seq = sequential_d()
    A = robust_discriminator(seq)
    x = torch.rand(6, 1, 16, 16)
    torch.testing.assert_close(A(x), seq(x).squeeze(-1), **TOL)
    assert A.features(x).shape == (6, 256) and A.last_linear is seq[3]
    torch.testing.assert_close(A.features(x), seq[:3](x), **TOL)
    ours = robust_feature_matching(A, x, delta=0.05, alpha=1e-4)
    hand = rfm_by_hand(lambda t: seq(t).squeeze(-1), seq[:3], seq[3].weight, x)
    torch.testing.assert_close(ours, hand, **TOL)
    ours.backward()
    g = grads(seq)  # the head's bias is in neither term of Eq. 5
    assert all(g[k] is not None and g[k].abs().sum() > 0 for k in ("0.weight", "0.bias", "3.weight"))
    # parameters are the user's own, not copies
    assert {id(p) for p in A.parameters()} == {id(p) for p in seq.parameters()}


@pytest.mark.parametrize("sigmoid", [True, False])
def test_dcgan_tutorial_d_conv_head(sigmoid):
    D = TutorialD(sigmoid=sigmoid)
    A = robust_discriminator(D)
    x = torch.rand(5, 1, 16, 16)
    out = D(x).flatten()
    torch.testing.assert_close(torch.sigmoid(A(x)) if sigmoid else A(x), out, **TOL)
    conv = D.main[5]
    assert isinstance(A.last_linear, ConvAsLinear) and A.last_linear.in_features == 8 * 4 * 4
    # the head's weight is the conv's weight, viewed, not copied
    assert A.last_linear.weight.data_ptr() == conv.weight.data_ptr()
    torch.testing.assert_close(A.features(x), D.main[:5](x).flatten(1), **TOL)
    torch.testing.assert_close(A.last_linear(A.features(x)).squeeze(-1), A(x), **TOL)
    ours = robust_feature_matching(A, x, alpha=1e-2)
    hand = rfm_by_hand(lambda t: D.main[:6](t).flatten(), D.main[:5], conv.weight, x, alpha=1e-2)
    torch.testing.assert_close(ours, hand, **TOL)
    ours.backward()
    g = grads(D)
    assert g["main.5.weight"] is not None and g["main.5.weight"].abs().sum() > 0  # alpha ||w||^2 reaches the conv
    assert g["main.0.weight"].abs().sum() > 0
    # no hook is left on the user's module, and it has no new attributes
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in D.modules())
    assert not hasattr(D, "features") and not hasattr(D, "last_linear")


def test_conv_head_alpha_gradient_is_the_closed_form():
    D = TutorialD(sigmoid=False)
    A = robust_discriminator(D)
    alpha = 0.5
    (alpha * A.last_linear.weight.pow(2).sum()).backward()
    torch.testing.assert_close(D.main[5].weight.grad, 2 * alpha * D.main[5].weight.detach())


def test_feature_layer_names_phi_and_finds_the_next_layer():
    D = TutorialD()
    A = robust_discriminator(D, feature_layer="main.4")
    x = torch.rand(4, 1, 16, 16)
    assert A.last_linear.conv is D.main[5]
    torch.testing.assert_close(A.features(x), D.main[:5](x).flatten(1), **TOL)
    torch.testing.assert_close(torch.sigmoid(A(x)), D(x).flatten(), **TOL)


@pytest.mark.parametrize("as_dict", [False, True])
def test_logit_and_features_d(as_dict):
    D = LogitAndFeatures(as_dict)
    A = robust_discriminator(D, returns_features=("adv_output", "h") if as_dict else True)
    x = torch.rand(4, 1, 8, 8)
    out = D(x)
    logit, h = (out["adv_output"], out["h"]) if as_dict else out
    torch.testing.assert_close(A(x), logit, **TOL)
    torch.testing.assert_close(A.features(x), h, **TOL)
    assert A.last_linear is D.linear1
    ours = robust_feature_matching(A, x)
    hand = rfm_by_hand(lambda t: A(t), lambda t: D.trunk(t).sum(dim=(2, 3)), D.linear1.weight, x)
    torch.testing.assert_close(ours, hand, **TOL)
    ours.backward()
    assert D.trunk[0].weight.grad.abs().sum() > 0 and D.linear1.weight.grad is not None


def test_features_and_head_callables():
    class Pooled(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Conv2d(1, 5, 3, padding=1)
            self.fc = nn.Linear(5, 1)

        def forward(self, x):
            return self.fc(self.trunk(x).mean(dim=(2, 3)))  # (B, 1)

    D = Pooled()
    A = robust_discriminator(D, features=lambda t: D.trunk(t).mean(dim=(2, 3)), head=D.fc)
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(A(x), D(x).squeeze(-1), **TOL)
    assert A.features(x).shape == (3, 5)
    same = robust_discriminator(D, head="fc")  # phi is the head's input
    torch.testing.assert_close(same.features(x), A.features(x), **TOL)


@pytest.mark.parametrize("wrap", [Wrapper, CompiledLike, lambda m: Wrapper(CompiledLike(m))])
def test_wrappers_are_unwrapped(wrap):
    D = TutorialD()
    W = wrap(D)
    assert unwrap(W) is D
    A = robust_discriminator(W)
    assert A.net is D
    x = torch.rand(4, 1, 16, 16)
    torch.testing.assert_close(torch.sigmoid(A(x)), W(x).flatten(), **TOL)
    robust_feature_matching(A, x).backward()
    assert D.main[5].weight.grad.abs().sum() > 0
    assert robust_discriminator(W, head="main.5").last_linear.conv is D.main[5]


def test_names_may_include_the_wrapper():
    D = TutorialD()
    assert robust_discriminator(Wrapper(D), head="module.main.5").last_linear.conv is D.main[5]


def test_protocol_d_is_returned_as_is():
    _, D = build_models("dcgan", img_size=16, channels=1, width=4)
    assert robust_discriminator(D) is D
    assert robust_discriminator(Wrapper(D)) is D


def test_ar_accepts_b1_outputs():
    seq = sequential_d()  # (B, 1) logits
    A = robust_discriminator(seq)
    x = torch.rand(6, 1, 16, 16)
    torch.testing.assert_close(adversarial_regularization(seq, x), adversarial_regularization(A, x), **TOL)
    # the trainer's path: features computed once with x.requires_grad and reused
    xg = x.clone().requires_grad_(True)
    for reg in (AdversarialRegularizer(lam=1.0), RobustFeatureMatching(lam=1.0)):
        reused = reg.rho(A, x, xg, fake_features=A.features(xg))
        torch.testing.assert_close(reused, reg.rho(A, x, x), **TOL)


def test_deepcopy_keeps_the_view_on_the_copy():
    A = robust_discriminator(TutorialD())
    B = copy.deepcopy(A)
    assert B.last_linear.conv is B.net.main[5] and B.last_linear.conv is not A.net.main[5]


def test_errors_are_clear():
    with pytest.raises(TypeError, match="no nn.Linear"):
        robust_discriminator(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten()))
    with pytest.raises(ValueError, match="no such submodule"):
        robust_discriminator(TutorialD(), head="main.99")
    # a conv head that sees a map larger than its kernel gives several logits per sample
    big = robust_discriminator(TutorialD(sigmoid=False))
    with pytest.raises(ValueError, match="one logit per sample"):
        big(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="kernel covers"):
        big.features(torch.rand(2, 1, 32, 32))

    class Shifted(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 1)

        def forward(self, x):
            return self.fc(x).squeeze(-1) + x.sum(1)  # not linear in the head's input

    with pytest.raises(TypeError, match="neither the head"):
        robust_discriminator(Shifted())(torch.rand(3, 4))


# ----------------------------------------------------------------------------- docs/own-models.md
OWN_MODELS = Path(__file__).resolve().parents[1] / "docs" / "own-models.md"


def own_models_blocks():
    return re.findall(r"```python\n(.*?)```", OWN_MODELS.read_text(), flags=re.S)


def drop_in_loop():
    """The drop-in loop of docs/own-models.md (the block that iterates over a loader)."""
    (code,) = [b for b in own_models_blocks() if "for real in loader" in b]
    return code


def test_own_models_doc_runs(tmp_path, monkeypatch):
    import test_generate  # the hand-made run of tests/test_generate.py
    monkeypatch.chdir(tmp_path)
    test_generate.make_run(tmp_path / "runs" / "00000-fmnist-dcgan-gan-rfm", img_size=28)
    env = {}
    for i, code in enumerate(own_models_blocks()):
        if "for real in loader" in code:
            before = [p.detach().clone() for p in env["netD"].parameters()]
        exec(compile(code, f"docs/own-models.md block {i}", "exec"), env)
        if "for real in loader" in code:
            assert torch.isfinite(env["loss_d"]) and torch.isfinite(env["loss_g"])
            assert all(not torch.equal(a, b) for a, b in zip(before, env["netD"].parameters()))
    assert env["images"].shape == (16, 1, 28, 28)


@pytest.mark.parametrize("kind", ["sequential", "tutorial", "protocol"])
@pytest.mark.parametrize("pairs", [False, True])
def test_drop_in_loop_trains_any_d_and_loader(kind, pairs):
    G, Dp = build_models("dcgan", img_size=16, channels=1, width=4)
    D = {"sequential": sequential_d(), "tutorial": TutorialD(), "protocol": Dp}[kind]
    batches = [torch.rand(8, 1, 16, 16) for _ in range(2)]
    loader = [(x, torch.zeros(8, dtype=torch.long)) for x in batches] if pairs else batches
    before = [p.detach().clone() for p in D.parameters()]
    env = {"torch": torch, "G": G, "D": D, "loader": loader,
           "opt_d": torch.optim.Adam(D.parameters(), 2e-4, betas=(0.0, 0.9)),
           "opt_g": torch.optim.Adam(G.parameters(), 2e-4, betas=(0.0, 0.9))}
    exec(compile(drop_in_loop(), "docs/own-models.md", "exec"), env)
    assert torch.isfinite(env["loss_d"]) and torch.isfinite(env["loss_g"])
    assert any(not torch.equal(a, b) for a, b in zip(before, D.parameters()))


def test_bf16_autocast_first_forward_passes_its_check():
    D = TutorialD(ndf=8)
    A = robust_discriminator(D)
    x = torch.rand(4, 1, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = A(x)
        rho = robust_feature_matching(A, x)
    assert out.shape == (4,) and torch.isfinite(rho)
    torch.testing.assert_close(torch.sigmoid(out.float()), D(x).flatten(), rtol=0.05, atol=0.02)
