"""Tests for robustgan.models: shapes, ranges, the discriminator protocol, settings, double backward,
channels_last, bfloat16 autocast, parameter counts and check_discriminator.

Networks are built small (width 8-16, batch 4) so the whole file runs in well under a minute.
"""
from __future__ import annotations

import copy
import inspect
import itertools
import re
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from robustgan.models import (
    ARCHITECTURES,
    MODELS,
    DCGANDiscriminator,
    Discriminator,
    Generator,
    MLPDiscriminator,
    ResidualBlock,
    ResNetDiscriminator,
    ResNetGenerator,
    build_models,
    check_discriminator,
    count_parameters,
    init_weights,
    model_entry,
    model_names,
    valid_settings,
)
from robustgan.models.common import resolve_img_size
from robustgan.ranges import PIXEL_RANGES

torch.set_num_threads(1)  # the machine is shared; these nets are tiny anyway

IMAGE_ARCHS = ("resnet", "dcgan")
NORMS = ("batch", "instance", "none")
ACTS = ("relu", "leaky_relu", "tanh")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "models.md"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _sample_inputs(G, D, batch=4):
    z = torch.randn(batch, G.z_dim)
    x = torch.rand(batch, *D.input_shape)
    return z, x


def _feature_dim(arch, img_size, width, d_features="pooled"):
    """F from the layer tables in docs/models.md: C channels in D's last base x base map."""
    base, n = resolve_img_size(img_size)
    c = width if arch == "resnet" else width * 2 ** (n - 1)
    return c if d_features == "pooled" else base * base * c


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("img_size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("arch", IMAGE_ARCHS)
@pytest.mark.parametrize("d_features", [None, "pooled", "flat"])
def test_image_shapes(arch, img_size, channels, d_features):
    width = 8
    G, D = build_models(arch, img_size=img_size, channels=channels, width=width, d_features=d_features)
    z, x = _sample_inputs(G, D, batch=3)
    assert G.z_dim == 128
    assert G(z).shape == (3, channels, img_size, img_size)
    assert D(x).shape == (3,)
    assert D.d_features == (d_features or "pooled")
    expected_f = _feature_dim(arch, img_size, width, D.d_features)
    assert D.features(x).shape == (3, expected_f)
    assert D.feature_dim == expected_f
    assert D.last_linear.in_features == expected_f and D.last_linear.out_features == 1


@pytest.mark.parametrize("dim", [2, 3])
def test_mlp_shapes(dim):
    G, D = build_models("mlp", dim=dim, width=16)
    z, x = _sample_inputs(G, D, batch=5)
    assert G.z_dim == 2 and G.out_range == "none"
    assert G(z).shape == (5, dim)
    assert D(x).shape == (5,)
    assert D.features(x).shape == (5, 16)


@pytest.mark.parametrize(
    "img_size, base, n", [(28, 7, 2), (32, 4, 3), (64, 4, 4), (16, 4, 2), (48, 6, 3), (40, 5, 3)]
)
def test_resolve_img_size(img_size, base, n):
    assert resolve_img_size(img_size) == (base, n)
    assert base * 2**n == img_size


@pytest.mark.parametrize("img_size", [4, 7, 8 * 3 + 1, 100, 36 * 3])
def test_resolve_img_size_rejects(img_size):
    # bare bases (no stage), 25, 100 = 25 * 4 and 108 = 27 * 4 have no base in 4..7 (8 = 4 * 2 would be fine)
    with pytest.raises(ValueError, match="img_size"):
        resolve_img_size(img_size)


def test_resnet_topology_matches_table3():
    """The paper's 32x32 pair: G has 2 blocks at 4x4 then 3 [Upsample, block]; D 3 [block, Down] then 4 blocks."""
    G, D = build_models("resnet")
    g_kinds = [type(m).__name__ for m in G.blocks]
    assert g_kinds == ["ResidualBlock"] * 2 + ["Upsample", "ResidualBlock"] * 3
    assert G.input.out_features == 2048 and G.output[2].kernel_size == (1, 1)
    d_kinds = [type(m).__name__ for m in D.blocks]
    assert d_kinds == ["ResidualBlock", "AvgPool2d"] * 3 + ["ResidualBlock"] * 4
    assert D.input.kernel_size == (3, 3) and D.input.out_channels == 128
    # CelebA: one more stage each side
    G64, D64 = build_models("resnet", img_size=64)
    assert sum(isinstance(m, nn.Upsample) for m in G64.blocks) == 4
    assert sum(isinstance(m, nn.AvgPool2d) for m in D64.blocks) == 4


# ---------------------------------------------------------------- output range


@pytest.mark.parametrize("arch", IMAGE_ARCHS)
@pytest.mark.parametrize("out_range", ["sigmoid", "tanh"])
def test_generator_output_range(arch, out_range):
    G, _ = build_models(arch, width=8, img_size=16, out_range=out_range)
    # blow up the last layer so the output activation saturates: the bounds must still hold
    last = [m for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]
    with torch.no_grad():
        last.weight.mul_(1e3)
    y = G(torch.randn(8, 128))
    lo, hi = PIXEL_RANGES[out_range]
    assert G.out_range == out_range
    assert y.min() >= lo and y.max() <= hi
    # the range is really used, not a sub-interval (saturated values reach both ends)
    assert y.min() < lo + 0.01 and y.max() > hi - 0.01


# ---------------------------------------------------------------- discriminator protocol


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("norm", NORMS)
def test_forward_is_last_linear_of_features(arch, norm):
    kw = {"img_size": 16} if arch != "mlp" else {}
    _, D = build_models(arch, width=8, normalisation=norm, **kw)
    x = torch.rand(4, *D.input_shape)
    out = D(x)
    assert torch.equal(out, D.last_linear(D.features(x)).squeeze(-1))
    check_discriminator(D, example=x)


@pytest.mark.parametrize("arch", IMAGE_ARCHS)
@pytest.mark.parametrize("d_features", ["pooled", "flat"])
@pytest.mark.parametrize("norm", NORMS)
def test_both_heads_follow_the_protocol(arch, d_features, norm):
    _, D = build_models(arch, width=8, img_size=16, normalisation=norm, d_features=d_features)
    for mode in (D.train, D.eval):
        mode()
        x = torch.rand(4, *D.input_shape)
        assert torch.equal(D(x), D.last_linear(D.features(x)).squeeze(-1))
    check_discriminator(D, example=x)


def test_dcgan_heads_by_hand():
    """pooled phi = mean over positions of act(Conv1x1(last map)); flat phi = the last map flattened."""
    _, D = build_models("dcgan", width=4, img_size=16, channels=1, d_features="pooled")
    x = torch.rand(3, 1, 16, 16)
    h = D.net(x)  # (3, 8, 4, 4): width 4 doubled once
    assert h.shape == (3, 8, 4, 4)
    conv = D.head[0]
    assert conv.kernel_size == (1, 1) and conv.bias is not None
    pre = torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], h) + conv.bias[None, :, None, None]
    phi = torch.nn.functional.leaky_relu(pre, 0.2).mean(dim=(2, 3))
    torch.testing.assert_close(D.features(x), phi, rtol=1e-6, atol=1e-7)
    _, flat = build_models("dcgan", width=4, img_size=16, channels=1, d_features="flat")
    assert not hasattr(flat, "head")
    torch.testing.assert_close(flat.features(x), flat.net(x).reshape(3, -1), rtol=0, atol=0)


def test_resnet_flat_head_flattens_the_pooled_map():
    torch.manual_seed(1)
    _, pooled = build_models("resnet", width=4, img_size=16, d_features="pooled")
    _, flat = build_models("resnet", width=4, img_size=16, d_features="flat")
    state = {k: v for k, v in pooled.state_dict().items() if not k.startswith("last_linear")}
    flat.load_state_dict({**state, **{k: v for k, v in flat.state_dict().items() if k.startswith("last_linear")}})
    x = torch.rand(2, 3, 16, 16)
    phi_flat = flat.features(x)
    assert phi_flat.shape == (2, 4 * 4 * 4)
    torch.testing.assert_close(phi_flat.view(2, 4, 16).mean(-1), pooled.features(x), rtol=1e-6, atol=1e-7)


def _dcgan_d_closed_form(width=64, channels=3, img_size=32, norm="instance", d_features="pooled"):
    base, n = resolve_img_size(img_size)
    total, ch = channels * width * 16 + width, width  # first conv, with bias, no norm
    for _ in range(n - 1):
        total += ch * 2 * ch * 16 + (2 * ch if norm == "none" else 0)  # conv (bias only without a norm)
        total += 2 * 2 * ch if norm != "none" else 0  # affine norm: scale and shift
        ch *= 2
    if d_features == "pooled":
        return total + ch * ch + ch + ch + 1  # Conv 1x1 with bias, Linear(C, 1)
    return total + base * base * ch + 1


@pytest.mark.parametrize("d_features", ["pooled", "flat"])
@pytest.mark.parametrize("img_size, channels", [(32, 3), (64, 3), (28, 1)])
def test_dcgan_parameter_counts_match_closed_form_and_docs(d_features, img_size, channels):
    _, D = build_models("dcgan", img_size=img_size, channels=channels, d_features=d_features)
    expected = _dcgan_d_closed_form(channels=channels, img_size=img_size, d_features=d_features)
    assert count_parameters(D) == expected
    assert f"{expected:,} | {_feature_dim('dcgan', img_size, 64, d_features)}" in DOCS.read_text()
    _, D_none = build_models("dcgan", img_size=img_size, channels=channels, d_features=d_features, normalisation="none")
    assert count_parameters(D_none) == _dcgan_d_closed_form(
        channels=channels, img_size=img_size, d_features=d_features, norm="none")


def test_resnet_features_are_pooled_activations():
    """phi = global average pool of act(last block): recompute it from the layers by hand."""
    _, D = build_models("resnet", width=8, img_size=16)
    x = torch.rand(3, 3, 16, 16)
    h = D.input(x)
    for layer in D.blocks:
        h = layer(h)
    phi = torch.nn.functional.leaky_relu(h, 0.2).mean(dim=(2, 3))
    torch.testing.assert_close(D.features(x), phi, rtol=0, atol=0)


# ---------------------------------------------------------------- settings


def _combos():
    for arch in ARCHITECTURES:
        blocks = ("residual", "plain")
        ranges = ("sigmoid", "tanh") + (("none",) if arch == "mlp" else ())
        for block, act, norm, out_range in itertools.product(blocks, ACTS, NORMS, ranges):
            yield arch, block, act, norm, out_range


@pytest.mark.parametrize("arch, block, act, norm, out_range", list(_combos()))
def test_every_setting_builds_and_trains(arch, block, act, norm, out_range):
    kw = {"img_size": 16, "channels": 1} if arch != "mlp" else {"depth": 2}
    G, D = build_models(
        arch, width=8, block=block, nonlinearity=act, normalisation=norm, out_range=out_range, **kw
    )
    for net in (G, D):
        assert (net.block, net.nonlinearity, net.normalisation) == (block, act, norm)
    # the settings really change the layers
    act_type = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh}[act]
    norm_types = {"batch": (nn.BatchNorm1d, nn.BatchNorm2d), "instance": (nn.InstanceNorm2d, nn.LayerNorm)}
    for net in (G, D):
        hidden_acts = {type(m) for m in net.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))}
        assert act_type in {type(m) for m in net.modules()}
        if act == "tanh":
            assert not hidden_acts
        all_norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.LayerNorm)
        has_norm = any(isinstance(m, all_norms) for m in net.modules())
        if norm == "none":
            assert not has_norm
        else:
            assert any(isinstance(m, norm_types[norm]) for m in net.modules())
        residual_flags = {m.residual for m in net.modules() if hasattr(m, "residual")}
        assert residual_flags <= {block == "residual"}
    z = torch.randn(4, G.z_dim)
    fake = G(z)
    loss = D(fake).mean() + D(torch.rand_like(fake)).mean()
    loss.backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name


def test_paper_defaults_and_shorthand():
    G, D = build_models("resnet", width=8)
    assert (G.nonlinearity, G.normalisation, G.block) == ("relu", "batch", "residual")
    assert (D.nonlinearity, D.normalisation, D.block) == ("leaky_relu", "instance", "residual")
    assert G.width == D.width == 8 and G.out_range == "sigmoid"
    G, D = build_models("resnet", width=8, nonlinearity="tanh", normalisation="none")
    assert G.nonlinearity == D.nonlinearity == "tanh" and G.normalisation == D.normalisation == "none"
    # the per-network option wins over the shorthand
    G, D = build_models("resnet", width=8, d_width=16, nonlinearity="tanh", d_nonlinearity="relu", g_block="plain")
    assert (G.nonlinearity, D.nonlinearity) == ("tanh", "relu")
    assert (G.width, D.width) == (8, 16) and (G.block, D.block) == ("plain", "residual")
    # None means "default"
    G, D = build_models("dcgan", width=None, nonlinearity=None, z_dim=None)
    assert (G.width, G.nonlinearity, D.nonlinearity, G.z_dim) == (64, "relu", "leaky_relu", 128)
    G, D = build_models("mlp")
    assert (G.width, G.depth, G.normalisation, D.normalisation, G.z_dim) == (512, 3, "none", "none", 2)


@pytest.mark.parametrize(
    "arch, settings, pattern",
    [
        ("biggan", {}, "resnet, dcgan, mlp"),
        ("resnet", {"colour": 3}, "valid: .*img_size"),
        ("resnet", {"depth": 3}, "unknown setting"),
        ("mlp", {"img_size": 32}, "valid: .*dim"),
        ("resnet", {"nonlinearity": "gelu"}, "relu, leaky_relu, tanh"),
        ("resnet", {"d_normalisation": "layer"}, "batch, instance, none"),
        ("resnet", {"block": "dense"}, "residual, plain"),
        ("resnet", {"out_range": "none"}, "sigmoid, tanh"),
        ("dcgan", {"block": "dense"}, "plain, residual"),
        ("resnet", {"img_size": 30}, "img_size"),
        ("resnet", {"width": 0}, "width"),
        ("dcgan", {"d_features": "max"}, "pooled, flat"),
        ("mlp", {"d_features": "pooled"}, "unknown setting"),
        ("mlp", {"depth": 1.5}, "depth"),
    ],
)
def test_bad_settings_raise(arch, settings, pattern):
    with pytest.raises(ValueError, match=pattern):
        build_models(arch, **settings)


def test_valid_settings_lists_split_options():
    names = valid_settings("resnet")
    for n in ("width", "g_width", "d_width", "nonlinearity", "g_normalisation", "img_size", "out_range"):
        assert n in names
    assert "dim" in valid_settings("mlp") and "img_size" not in valid_settings("mlp")


def test_wrong_input_shapes_raise():
    G, D = build_models("resnet", width=8, img_size=16)
    with pytest.raises(ValueError, match=r"\(B, 128\)"):
        G(torch.randn(2, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\)"):
        D(torch.rand(2, 3, 32, 32))


# ---------------------------------------------------------------- double backward (gradient penalty)


def _gradient_penalty(D, x):
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("norm", NORMS)
def test_double_backward(arch, norm):
    kw = {"img_size": 16} if arch != "mlp" else {}
    _, D = build_models(arch, width=8, normalisation=norm, **kw)
    x = torch.rand(4, *D.input_shape)
    _gradient_penalty(D, x).backward()
    for name, m in D.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            g = m.weight.grad
            assert g is not None and torch.isfinite(g).all(), name
            assert g.abs().max() > 0, name
    # the penalty does not depend on the output bias
    assert D.last_linear.bias.grad is None or D.last_linear.bias.grad.abs().max() == 0
    for name, p in D.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("norm", NORMS)
def test_double_backward_matches_finite_differences(arch, norm):
    """d(penalty)/d(params) along a random direction u vs a central difference, in float64."""
    kw = {"img_size": 16, "channels": 1} if arch != "mlp" else {"depth": 2}
    _, D = build_models(arch, width=4, normalisation=norm, nonlinearity="tanh", **kw)
    D = D.double()
    x = torch.rand(3, *D.input_shape, dtype=torch.float64)
    params = [p for p in D.parameters()]
    u = [torch.randn_like(p) for p in params]
    grads = torch.autograd.grad(_gradient_penalty(D, x), params, allow_unused=True)
    analytic = sum((g * v).sum() for g, v in zip(grads, u) if g is not None)
    eps = 1e-6
    with torch.no_grad():
        for p, v in zip(params, u):
            p.add_(eps * v)
    plus = _gradient_penalty(D, x).detach()
    with torch.no_grad():
        for p, v in zip(params, u):
            p.sub_(2 * eps * v)
    minus = _gradient_penalty(D, x).detach()
    numeric = (plus - minus) / (2 * eps)
    torch.testing.assert_close(analytic.detach(), numeric, rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------- memory format and autocast


@pytest.mark.parametrize("arch", IMAGE_ARCHS)
@pytest.mark.parametrize("norm", NORMS)
def test_channels_last_matches_contiguous(arch, norm):
    G, D = build_models(arch, width=8, img_size=16, normalisation=norm)
    z, x = _sample_inputs(G, D)
    g_ref, d_ref = G(z), D(x)
    Gc = copy.deepcopy(G).to(memory_format=torch.channels_last)
    Dc = copy.deepcopy(D).to(memory_format=torch.channels_last)
    g_cl = Gc(z)
    d_cl = Dc(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(g_cl, g_ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(d_cl, d_ref, rtol=0, atol=1e-5)
    # and the gradient penalty runs in channels_last too
    _gradient_penalty(Dc, x.contiguous(memory_format=torch.channels_last)).backward()


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("norm", NORMS)
def test_bfloat16_autocast(arch, norm):
    kw = {"img_size": 16} if arch != "mlp" else {}
    G, D = build_models(arch, width=8, normalisation=norm, **kw)
    z, x = _sample_inputs(G, D)
    with torch.no_grad():
        d_ref = D(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake = G(z)
        d_fake = D(fake)
        d_real = D(x)
        phi = D.features(x)
        assert torch.equal(d_real, D.last_linear(phi).squeeze(-1))
    assert fake.dtype == torch.bfloat16 and torch.isfinite(fake).all()
    assert d_real.shape == (4,) and torch.isfinite(d_real.float()).all()
    # bfloat16 keeps ~3 significant digits; a wrong network would be off by O(1)
    scale = d_ref.abs().max().item()
    assert (d_real.float() - d_ref).abs().max().item() <= 0.1 * scale + 1e-3
    (d_fake.float().mean() - d_real.float().mean()).backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


# ---------------------------------------------------------------- parameter counts


def _resnet_closed_form(width=128, z_dim=128, channels=3, img_size=32):
    base, n = resolve_img_size(img_size)
    conv3 = width * width * 9 + width
    block = 2 * conv3 + 2 * 2 * width  # two convs + two affine norms (scale, shift)
    g = (z_dim * base * base * width + base * base * width) + (2 + n) * block + 2 * width + (width * channels + channels)
    d = (channels * width * 9 + width) + (n + 4) * block + (width + 1)
    return g, d


def test_paper_resnet_parameter_counts_match_closed_form_and_docs():
    G, D = ResNetGenerator(), ResNetDiscriminator()
    g_expected, d_expected = _resnet_closed_form()
    assert (count_parameters(G), count_parameters(D)) == (g_expected, d_expected)
    assert (g_expected, d_expected) == (1_743_235, 2_073_473)
    text = DOCS.read_text()
    for n in (g_expected, d_expected):
        assert f"{n:,}" in text, f"docs/models.md does not report {n:,}"


def test_count_parameters_ignores_frozen():
    net = nn.Linear(3, 2)
    net.bias.requires_grad_(False)
    assert count_parameters(net) == 6


# ---------------------------------------------------------------- init


def test_init_schemes():
    G, D = build_models("dcgan", width=32)
    w = torch.cat([m.weight.flatten() for m in D.modules() if isinstance(m, nn.Conv2d)])
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    conv = nn.Conv2d(16, 16, 3)
    init_weights(conv, "xavier")
    bound = (6 / (16 * 9 + 16 * 9)) ** 0.5
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    assert torch.equal(conv.bias, torch.zeros(16))
    with pytest.raises(ValueError, match="xavier, dcgan"):
        init_weights(conv, "orthogonal")


# ---------------------------------------------------------------- check_discriminator


class _MyDiscriminator(nn.Module):
    """The custom discriminator shown in docs/models.md."""

    def __init__(self, channels=3, width=16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        )
        self.last_linear = nn.Linear(width, 1)

    def features(self, x):
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x):
        return self.last_linear(self.features(x)).squeeze(-1)


def test_check_discriminator_accepts_builtin_and_custom():
    for arch in ARCHITECTURES:
        kw = {"img_size": 16} if arch != "mlp" else {}
        _, D = build_models(arch, width=8, **kw)
        D.train()
        assert check_discriminator(D, example=torch.rand(2, *D.input_shape)) is D
        assert D.training  # the mode is restored
    mine = _MyDiscriminator()
    assert check_discriminator(mine) is mine
    check_discriminator(mine, example=torch.rand(2, 3, 16, 16))


def test_check_discriminator_rejects_sequential():
    seq = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    with pytest.raises(TypeError) as info:
        check_discriminator(seq)
    msg = str(info.value)
    assert "Sequential" in msg and "features" in msg and "last_linear" in msg


def test_check_discriminator_rejects_bad_parts():
    mine = _MyDiscriminator()
    mine.last_linear = nn.Linear(16, 2)
    with pytest.raises(TypeError, match="out_features=2"):
        check_discriminator(mine)
    mine.last_linear = nn.Sequential(nn.Linear(16, 1))
    with pytest.raises(TypeError, match="last_linear is a Sequential"):
        check_discriminator(mine)
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        check_discriminator(object())


def test_check_discriminator_rejects_inconsistent_forward():
    class Doubled(_MyDiscriminator):
        def forward(self, x):
            return 2 * super().forward(x)

    class WrongWidth(_MyDiscriminator):
        def features(self, x):
            return super().features(x)[:, :8]

    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(TypeError, match=re.escape("last_linear(features(x))")):
        check_discriminator(Doubled(), example=x)
    with pytest.raises(TypeError, match=r"features\(x\) has shape \(2, 8\)"):
        check_discriminator(WrongWidth(), example=x)
    check_discriminator(Doubled())  # structure alone is fine without an example


def test_residual_block_plain_has_no_skip():
    blk = ResidualBlock(4, "relu", "none", residual=True)
    plain = ResidualBlock(4, "relu", "none", residual=False)
    plain.load_state_dict(blk.state_dict())
    x = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(blk(x), x + plain(x))


def test_discriminator_classes_exported():
    assert ARCHITECTURES["dcgan"][1] is DCGANDiscriminator
    assert ARCHITECTURES["mlp"][1] is MLPDiscriminator


# ---------------------------------------------------------------- checkpoint compatibility

#: tiny G / D state dicts with inputs and eval-mode outputs, saved by the models as they were before
#: the constructors shared their settings code (each case: arch, settings, G, D, z, x, G_out, D_out)
SAVED_STATES = Path(__file__).resolve().parent / "data" / "models_state_v1.pt"


def _saved_cases():
    return torch.load(SAVED_STATES, weights_only=True)


@pytest.mark.parametrize("case", ["resnet", "resnet_plain_none", "dcgan", "dcgan_none", "mlp"])
def test_state_dicts_saved_by_earlier_models_still_load(case):
    saved = _saved_cases()[case]
    # DCGAN's D had only the flat head then
    settings = {**saved["settings"], **({"d_features": "flat"} if saved["arch"] == "dcgan" else {})}
    G, D = build_models(saved["arch"], **settings)
    for net, key in ((G, "G"), (D, "D")):
        # same names, in the same order, with the same shapes: the strict load below checks the rest
        assert [(k, tuple(v.shape)) for k, v in net.state_dict().items()] == [
            (k, tuple(v.shape)) for k, v in saved[key].items()
        ]
        net.load_state_dict(saved[key])
        net.eval()
    with torch.no_grad():
        torch.testing.assert_close(G(saved["z"]), saved["G_out"], rtol=0, atol=1e-6)
        torch.testing.assert_close(D(saved["x"]), saved["D_out"], rtol=0, atol=1e-6)


def test_loading_a_flat_dcgan_state_into_the_pooled_default_names_the_setting():
    saved = _saved_cases()["dcgan"]
    _, D = build_models("dcgan", **saved["settings"])
    with pytest.raises(ValueError, match=r"F=128 features, this one F=8 .*model\.d_features=flat"):
        D.load_state_dict(saved["D"])


# ---------------------------------------------------------------- spectral normalisation


def _layers(net):
    return [(n, m) for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]


def _small(arch, **kw):
    size = {"img_size": 16} if arch != "mlp" else {}
    return build_models(arch, width=8, **size, **kw)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_spectral_norm_normalises_every_layer_of_D_only(arch):
    torch.manual_seed(0)
    G, D = _small(arch, spectral_norm=True)
    assert D.spectral_norm is True
    assert all(parametrize.is_parametrized(m, "weight") for _, m in _layers(D)) and _layers(D)
    assert not any(parametrize.is_parametrized(m) for _, m in _layers(G))
    # the same parameters, stored as `original`: nothing is added that an optimiser would train
    _, plain = _small(arch)
    assert count_parameters(D) == count_parameters(plain)
    # sigma is a power-iteration estimate, refined by one iteration per training-mode forward pass;
    # after 100 passes (plus the 15 at construction) every effective weight, reshaped to
    # (out, in * kh * kw), has largest singular value 1 to 1e-3 (measured: 2e-7 for these nets)
    x = torch.rand(4, *D.input_shape)
    D.train()
    with torch.no_grad():
        for _ in range(100):
            D(x)
    D.eval()
    for name, m in _layers(D):
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item()
        assert abs(sigma - 1) < 1e-3, (name, sigma)
    check_discriminator(D, example=x)
    assert torch.equal(D(x), D.last_linear(D.features(x)).squeeze(-1))


def test_spectral_norm_effective_w_is_what_rfm_penalises():
    """last_linear.weight is W / sigma: scaling the stored W changes neither D nor RFM's alpha term."""
    from robustgan.regularizers import robust_feature_matching

    torch.manual_seed(0)
    _, D = _small("dcgan", spectral_norm=True)
    D.eval()  # no power-iteration update, so repeated calls see the same sigma estimate
    fake = torch.rand(4, *D.input_shape)
    w = D.last_linear.weight
    assert isinstance(D.last_linear, nn.Linear) and w.shape == (1, D.feature_dim)
    stored = D.last_linear.parametrizations.weight.original
    # a (1, F) matrix: sigma is ||W||_2, found exactly by one power iteration
    torch.testing.assert_close(w, stored / stored.norm(), rtol=1e-5, atol=1e-7)

    def alpha_term(D):
        a = robust_feature_matching(D, fake, alpha=1.0) - robust_feature_matching(D, fake, alpha=0.0)
        return a.item()

    out = D(fake)
    before = stored.pow(2).sum().item()
    assert abs(before - 1.0) > 0.5  # N(0, 0.02) init: far from a unit vector
    assert abs(alpha_term(D) - 1.0) < 1e-4  # ||W / sigma||^2 = 1, not ||W||^2
    with torch.no_grad():
        stored.mul_(3.0)
    torch.testing.assert_close(D(fake), out, rtol=1e-5, atol=1e-6)
    assert abs(alpha_term(D) - 1.0) < 1e-4


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_spectral_norm_state_dict_round_trips_and_deepcopies(arch, tmp_path):
    torch.manual_seed(0)
    _, D = _small(arch, spectral_norm=True)
    x = torch.rand(4, *D.input_shape)
    D.train()
    with torch.no_grad():
        D(x)  # move u, v away from their construction values
    D.eval()
    ref = D(x)
    torch.save(D.state_dict(), tmp_path / "d.pt")
    state = torch.load(tmp_path / "d.pt", weights_only=True)
    assert any(k.endswith("parametrizations.weight.original") for k in state)
    assert any(k.endswith("parametrizations.weight.0._u") for k in state)  # the power-iteration state
    torch.manual_seed(1)
    _, fresh = _small(arch, spectral_norm=True)
    fresh.load_state_dict(state)
    fresh.eval()
    torch.testing.assert_close(fresh(x), ref, rtol=0, atol=0)
    twin = copy.deepcopy(D)
    torch.testing.assert_close(twin(x), ref, rtol=0, atol=0)
    with torch.no_grad():
        twin.last_linear.parametrizations.weight.original.add_(1.0)
    torch.testing.assert_close(D(x), ref, rtol=0, atol=0)  # the copy owns its own tensors
    # a checkpoint of the other kind names the setting
    _, plain = _small(arch)
    with pytest.raises(ValueError, match="spectral_norm=True, this one with spectral_norm=False"):
        plain.load_state_dict(state)
    with pytest.raises(ValueError, match="model.spectral_norm=false"):
        fresh.load_state_dict(plain.state_dict())


@pytest.mark.parametrize("reg", ["gp", "ar", "rfm"])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_spectral_norm_combines_with_regularisers(arch, reg):
    from robustgan.regularizers import make_regularizer

    torch.manual_seed(0)
    G, D = _small(arch, spectral_norm=True)
    real = torch.rand(4, *D.input_shape)
    fake = G(torch.randn(4, G.z_dim)).detach()
    penalty = make_regularizer(reg, lam=1.0).penalty(D, real, fake, objective="gan")
    assert penalty.dim() == 0 and torch.isfinite(penalty)
    penalty.backward()
    grads = [m.parametrizations.weight.original.grad for _, m in _layers(D)]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().max() > 0 for g in grads)


@pytest.mark.parametrize("arch", IMAGE_ARCHS)
def test_spectral_norm_channels_last_and_bfloat16(arch):
    torch.manual_seed(0)
    _, D = _small(arch, spectral_norm=True)
    D.eval()
    x = torch.rand(4, *D.input_shape)
    ref = D(x)
    Dc = copy.deepcopy(D).to(memory_format=torch.channels_last)
    torch.testing.assert_close(Dc(x.contiguous(memory_format=torch.channels_last)), ref, rtol=0, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = D(x)
    assert (out.float() - ref).abs().max().item() <= 0.1 * ref.abs().max().item() + 1e-3


def test_spectral_norm_init_writes_the_stored_weight():
    _, D = _small("dcgan", spectral_norm=True)
    stored = D.last_linear.parametrizations.weight.original
    with torch.no_grad():
        stored.zero_()
    init_weights(D, "dcgan")
    assert 0.01 < stored.std().item() < 0.03  # N(0, 0.02) again, not left at zero


def test_spectral_norm_must_be_a_bool():
    with pytest.raises(ValueError, match="spectral_norm must be true or false"):
        build_models("resnet", spectral_norm="yes")
    assert "spectral_norm" in valid_settings("mlp")


# ---------------------------------------------------------------- the registry


def test_registry_names_and_kinds():
    assert model_names() == tuple(MODELS) == ("resnet", "dcgan", "mlp")
    assert model_names(data="image") == ("resnet", "dcgan") and model_names(data="points") == ("mlp",)
    assert {n: (e.generator, e.discriminator) for n, e in MODELS.items()} == ARCHITECTURES
    with pytest.raises(ValueError, match="image, points"):
        model_names(data="audio")
    with pytest.raises(ValueError, match="resnet, dcgan, mlp"):
        model_entry("biggan")


def test_registry_settings_match_the_earlier_hand_written_lists():
    split = {"width", "block", "nonlinearity", "normalisation"}
    split |= {f"{p}_{n}" for n in list(split) for p in "gd"}
    image = split | {"z_dim", "out_range", "img_size", "channels", "d_features", "spectral_norm"}
    assert set(valid_settings("resnet")) == set(valid_settings("dcgan")) == image
    assert set(valid_settings("mlp")) == split | {"z_dim", "out_range", "dim", "depth", "spectral_norm"}
    assert MODELS["resnet"].shared == ("img_size", "channels") and MODELS["mlp"].shared == ("dim", "depth")
    assert MODELS["dcgan"].d_only == ("d_features", "spectral_norm") and MODELS["mlp"].d_only == ("spectral_norm",)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_registry_defaults_are_what_build_models_builds(arch):
    defaults = MODELS[arch].defaults()
    G, D = build_models(arch)
    for name, value in defaults.items():
        if name.startswith("g_"):
            nets, attr = [G], name[2:]
        elif name.startswith("d_") and name != "d_features":
            nets, attr = [D], name[2:]
        else:
            nets, attr = [n for n in (G, D) if name in inspect.signature(type(n).__init__).parameters], name
        assert nets, name
        for net in nets:
            assert getattr(net, attr) == value, (arch, name)
    expected = {"resnet": (128, 128), "dcgan": (64, 128), "mlp": (512, 2)}[arch]
    assert (defaults["width"], defaults["z_dim"]) == expected
    if arch == "mlp":
        assert defaults["normalisation"] == "none" and "g_normalisation" not in defaults
    else:
        assert (defaults["g_normalisation"], defaults["d_normalisation"]) == ("batch", "instance")


def _cfg(arch, data_name="fashion-mnist", **model):
    return {"model": {"arch": arch, "width": 8, "out_range": None, **model}, "data": {"name": data_name}}


def test_build_networks_takes_image_settings_from_the_data():
    from types import SimpleNamespace

    from robustgan.train.loop import build_networks

    images = SimpleNamespace(channels=1, img_size=16)
    G, D = build_networks(_cfg("dcgan", d_features="flat", spectral_norm=True), images)
    assert D.input_shape == (1, 16, 16) and G(torch.randn(2, G.z_dim)).shape == (2, 1, 16, 16)
    assert D.d_features == "flat" and D.spectral_norm
    G, D = build_networks(_cfg("mlp", "8gaussians"), object())
    assert D.input_shape == (2,)
    with pytest.raises(ValueError, match=r"model.arch=resnet is for image data, but data.name=8gaussians is "
                                         r"2-D point data; use model.arch=mlp"):
        build_networks(_cfg("resnet", "8gaussians"), object())
    with pytest.raises(ValueError, match=r"model.arch=mlp is for 2-D point data.*use model.arch=resnet or dcgan"):
        build_networks(_cfg("mlp"), images)
    with pytest.raises(ValueError, match="unknown arch 'vit'"):
        build_networks(_cfg("vit"), images)


class _TinyG(Generator):
    def __init__(self, z_dim: int = 3, img_size: int = 8, channels: int = 1, width: int = 4, out_range: str = "sigmoid"):
        super().__init__(z_dim, out_range)
        self.configure(img_size=img_size, channels=channels, width=width)
        self.net = nn.Linear(z_dim, channels * img_size * img_size)

    def generate(self, z):
        return torch.sigmoid(self.net(z)).view(z.shape[0], self.channels, self.img_size, self.img_size)


class _TinyD(Discriminator):
    def __init__(self, img_size: int = 8, channels: int = 1, width: int = 4, spectral_norm: bool = False):
        super().__init__()
        self.configure(img_size=img_size, channels=channels, width=width, spectral_norm=spectral_norm)
        self.body = nn.Linear(channels * img_size * img_size, width)
        self.last_linear = nn.Linear(width, 1)
        self.finish("xavier")

    def compute_features(self, x):
        return torch.relu(self.body(x.flatten(1)))


def test_a_new_architecture_is_one_registry_entry(monkeypatch):
    """Registering an entry is all build_models, valid_settings and build_networks need."""
    from types import SimpleNamespace

    from robustgan.models import ModelEntry
    from robustgan.train.loop import build_networks

    monkeypatch.setitem(MODELS, "tiny", ModelEntry("tiny", _TinyG, _TinyD, "image", "a test pair"))
    assert "tiny" in model_names(data="image")
    assert set(valid_settings("tiny")) == {"z_dim", "out_range", "img_size", "channels", "width", "g_width",
                                           "d_width", "spectral_norm"}
    assert MODELS["tiny"].defaults() == {"z_dim": 3, "out_range": "sigmoid", "img_size": 8, "channels": 1,
                                         "width": 4, "spectral_norm": False}
    G, D = build_networks(_cfg("tiny", spectral_norm=True), SimpleNamespace(channels=3, img_size=16))
    x = G(torch.randn(2, 3))
    assert x.shape == (2, 3, 16, 16) and D.width == 8 and D.spectral_norm
    check_discriminator(D, example=x.detach())
    with pytest.raises(ValueError, match="data must be one of image, points"):
        ModelEntry("bad", _TinyG, _TinyD, "video", "")


@pytest.mark.parametrize("img_size", [28, 32])
def test_residual_dcgan_is_the_plain_one_plus_shortcuts(img_size):
    """With every shortcut weight at zero the residual DCGAN computes the plain DCGAN exactly;
    with them non-zero, each stage adds skip(x) = conv1x1(resample(x)) before its norm's output
    goes through the activation."""
    kw = dict(img_size=img_size, channels=1, width=8, normalisation="none")
    torch.manual_seed(0)
    Gp, Dp = build_models("dcgan", block="plain", **kw)
    Gr, Dr = build_models("dcgan", block="residual", **kw)
    for plain, res in ((Gp, Gr), (Dp, Dr)):
        main = {k: v for k, v in res.state_dict().items() if ".skip." not in k}
        skips = [m for m in res.modules() if m.__class__.__name__ == "_Stage"]
        assert len(skips) == (1 if img_size == 28 else 2)  # one per stage between first and last layer
        assert len(main) == len(plain.state_dict())
        # the same tensors in the same order: copy plain's weights into the main path
        res.load_state_dict({**res.state_dict(), **dict(zip(main, plain.state_dict().values()))})
        for st in skips:
            torch.nn.init.zeros_(st.skip[1].weight)
    z = torch.randn(4, Gp.z_dim)
    x = torch.rand(4, 1, img_size, img_size)
    torch.testing.assert_close(Gr(z), Gp(z), rtol=0, atol=0)
    torch.testing.assert_close(Dr(x), Dp(x), rtol=0, atol=0)
    # a non-zero shortcut changes D: the first stage's output is act(conv(h) + conv1x1(avgpool(h)))
    stage = next(m for m in Dr.modules() if m.__class__.__name__ == "_Stage")
    torch.nn.init.normal_(stage.skip[1].weight)
    h = torch.rand(2, stage.conv.in_channels, 8, 8)
    expect = stage.act(stage.conv(h) + torch.nn.functional.conv2d(torch.nn.functional.avg_pool2d(h, 2),
                                                                    stage.skip[1].weight))
    torch.testing.assert_close(stage(h), expect)
    assert not torch.equal(Dr(x), Dp(x))
