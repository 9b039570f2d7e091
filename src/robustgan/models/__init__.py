"""Generator / discriminator pairs: the paper's ResNet (Table 3), DCGAN, and an MLP for 2-D data.

Use :func:`build_models` to get a pair by name::

    G, D = build_models("resnet")                                   # the paper's 32x32 CIFAR-10 pair
    G, D = build_models("resnet", img_size=64)                      # CelebA
    G, D = build_models("dcgan", img_size=28, channels=1, normalisation="batch")
    G, D = build_models("mlp")                                      # 2-D toy data

Every discriminator follows the robustgan protocol (``D.features``, ``D.last_linear``, ``D(x)``);
:func:`check_discriminator` validates a user's own discriminator against it. See docs/models.md.
"""
from __future__ import annotations

import torch
from torch import nn

from .common import (
    BLOCKS,
    FEATURE_HEADS,
    NONLINEARITIES,
    NORMALISATIONS,
    OUT_RANGES,
    Discriminator,
    Generator,
    apply_spectral_norm,
    count_parameters,
    init_weights,
)
from .dcgan import DCGANDiscriminator, DCGANGenerator
from .mlp import MLPDiscriminator, MLPGenerator
from .resnet import ResidualBlock, ResNetDiscriminator, ResNetGenerator

__all__ = [
    "ARCHITECTURES",
    "build_models",
    "valid_settings",
    "check_discriminator",
    "Generator",
    "Discriminator",
    "ResidualBlock",
    "ResNetGenerator",
    "ResNetDiscriminator",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "MLPGenerator",
    "MLPDiscriminator",
    "count_parameters",
    "init_weights",
    "apply_spectral_norm",
    "NONLINEARITIES",
    "NORMALISATIONS",
    "BLOCKS",
    "OUT_RANGES",
    "FEATURE_HEADS",
]

#: arch name -> (generator class, discriminator class)
ARCHITECTURES: dict[str, tuple[type[Generator], type[Discriminator]]] = {
    "resnet": (ResNetGenerator, ResNetDiscriminator),
    "dcgan": (DCGANGenerator, DCGANDiscriminator),
    "mlp": (MLPGenerator, MLPDiscriminator),
}

# Settings that may be given for G and D separately (g_X / d_X) or for both at once (X).
_SPLIT = ("width", "block", "nonlinearity", "normalisation")
# Settings that belong to one network only, or are shared as they are.
_G_ONLY = ("z_dim", "out_range")
_D_ONLY = {"resnet": ("d_features", "spectral_norm"), "dcgan": ("d_features", "spectral_norm"), "mlp": ("spectral_norm",)}
_SHARED = {"resnet": ("img_size", "channels"), "dcgan": ("img_size", "channels"), "mlp": ("dim", "depth")}


def _check_arch(arch: str) -> None:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; choose one of: {', '.join(ARCHITECTURES)}")


def valid_settings(arch: str) -> tuple[str, ...]:
    """The keyword settings :func:`build_models` accepts for ``arch`` (sorted)."""
    _check_arch(arch)
    names = set(_G_ONLY) | set(_D_ONLY[arch]) | set(_SHARED[arch])
    for name in _SPLIT:
        names |= {name, f"g_{name}", f"d_{name}"}
    return tuple(sorted(names))


def build_models(arch: str, **settings) -> tuple[Generator, Discriminator]:
    """Build a fresh ``(G, D)`` pair of architecture ``arch`` ("resnet", "dcgan" or "mlp").

    Settings (every one optional; ``None`` means the architecture's default):

    * ``z_dim`` (128; 2 for "mlp"), ``out_range`` ("sigmoid" = [0, 1]; "tanh" = [-1, 1];
      "none" = unbounded, the "mlp" default): the generator's.
    * ``d_features`` ("pooled" | "flat"; "resnet" / "dcgan" only, default "pooled"): how D reads
      phi off its last feature map, global average pooling or flattening (docs/models.md).
    * ``spectral_norm`` (False): spectral normalisation of every conv / linear layer of D.
    * ``img_size`` (32) and ``channels`` (3) for "resnet" / "dcgan"; ``dim`` (2) and ``depth`` (3)
      for "mlp": shared by both networks.
    * ``width`` ("resnet" 128, "dcgan" 64, "mlp" 512), ``block`` ("residual" | "plain"; "dcgan" is
      plain only, "mlp" defaults to plain), ``nonlinearity`` ("relu" | "leaky_relu" | "tanh"),
      ``normalisation`` ("batch" | "instance" | "none"): the shorthand sets G and D alike;
      ``g_<name>`` / ``d_<name>`` set one network and win over the shorthand. Left unset, the
      paper's defaults apply: G relu + batch norm, D leaky_relu (0.2) + instance norm ("mlp":
      no normalisation).

    Raises ValueError (one line, listing the valid names) for an unknown arch, setting or value.
    """
    _check_arch(arch)
    valid = valid_settings(arch)
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)} for arch {arch!r}; valid: {', '.join(valid)}")
    g_kw: dict = {}
    d_kw: dict = {}
    for name in _G_ONLY:
        g_kw[name] = settings.get(name)
    for name in _D_ONLY[arch]:
        d_kw[name] = settings.get(name)
    for name in _SHARED[arch]:
        g_kw[name] = d_kw[name] = settings.get(name)
    for name in _SPLIT:
        both, g_own, d_own = settings.get(name), settings.get(f"g_{name}"), settings.get(f"d_{name}")
        g_kw[name] = both if g_own is None else g_own
        d_kw[name] = both if d_own is None else d_own
    g_cls, d_cls = ARCHITECTURES[arch]
    G = g_cls(**{k: v for k, v in g_kw.items() if v is not None})
    D = d_cls(**{k: v for k, v in d_kw.items() if v is not None})
    return G, D


def check_discriminator(D, example: torch.Tensor | None = None):
    """Check that ``D`` follows the robustgan discriminator protocol; returns ``D`` unchanged.

    Required: ``D`` is an ``nn.Module``; ``D.features`` is callable (x -> phi, ``(B, F)``);
    ``D.last_linear`` is an ``nn.Linear`` with ``out_features == 1`` (w and bias).
    With an ``example`` batch ``(B, ...)`` it also runs D once (in eval mode, without gradients,
    restoring the mode afterwards) and checks that ``features(example)`` is ``(B, last_linear.in_features)``
    and that ``D(example)`` is ``(B,)`` and equals ``last_linear(features(example)).squeeze(-1)``
    (to 1e-5 absolute + 1e-4 relative).

    Raises TypeError naming every requirement that is not met.
    """
    name = type(D).__name__
    problems = []
    if not isinstance(D, nn.Module):
        problems.append("it is not a torch.nn.Module")
    if not callable(getattr(D, "features", None)):
        problems.append("it has no callable features(x) returning phi of shape (B, F)")
    last = getattr(D, "last_linear", None)
    if not isinstance(last, nn.Linear):
        problems.append(
            "it has no last_linear attribute holding an nn.Linear(F, 1)"
            if last is None
            else f"last_linear is a {type(last).__name__}, not an nn.Linear(F, 1)"
        )
    elif last.out_features != 1:
        problems.append(f"last_linear has out_features={last.out_features}, expected 1")
    if not problems and example is not None:
        problems += _check_example(D, example)
    if problems:
        raise TypeError(
            f"{name} does not follow the discriminator protocol: {'; '.join(problems)} "
            "(see docs/models.md, 'The discriminator protocol')"
        )
    return D


def _check_example(D: nn.Module, x: torch.Tensor) -> list[str]:
    b, f = x.shape[0], D.last_linear.in_features
    was_training = D.training
    D.eval()
    try:
        with torch.no_grad():
            phi = D.features(x)
            if not isinstance(phi, torch.Tensor) or tuple(phi.shape) != (b, f):
                got = tuple(phi.shape) if isinstance(phi, torch.Tensor) else type(phi).__name__
                return [f"features(x) has shape {got}, expected (B, F) = ({b}, {f}) with F = last_linear.in_features"]
            out = D(x)
            via_w = D.last_linear(phi).squeeze(-1)
    finally:
        D.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (b,):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return [f"D(x) has shape {got}, expected (B,) = ({b},)"]
    if not torch.allclose(out.float(), via_w.float(), atol=1e-5, rtol=1e-4):
        err = (out.float() - via_w.float()).abs().max().item()
        return [f"D(x) differs from last_linear(features(x)).squeeze(-1) by up to {err:.3g}"]
    return []
