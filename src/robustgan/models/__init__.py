"""Generator / discriminator pairs: the paper's ResNet (Table 3), DCGAN, and an MLP for 2-D data.

Use :func:`build_models` to get a pair by name::

    G, D = build_models("resnet")                                   # the paper's 32x32 CIFAR-10 pair
    G, D = build_models("resnet", img_size=64)                      # CelebA
    G, D = build_models("dcgan", img_size=28, channels=1, normalisation="batch")
    G, D = build_models("mlp")                                      # 2-D toy data

:data:`MODELS` is the registry (name -> :class:`ModelEntry`): each entry names its two classes and
the kind of data it is for; its settings and defaults are read off the constructors' signatures.
Adding an architecture is one file with its two classes plus one entry here.

Every discriminator follows the robustgan protocol (``D.features``, ``D.last_linear``, ``D(x)``);
:func:`check_discriminator` validates a user's own discriminator against it. See docs/models.md.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

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
    "MODELS",
    "ModelEntry",
    "DATA_KINDS",
    "model_names",
    "model_entry",
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

#: the kinds of data a model is for: "image" = ``(B, C, H, W)`` batches (``img_size`` and
#: ``channels`` come from the data set), "points" = ``(B, dim)`` low-dimensional samples
DATA_KINDS = ("image", "points")

# Settings that may be given for G and D separately (g_X / d_X) or for both at once (X). Every other
# constructor setting belongs to the network(s) whose signature has it.
_SPLIT = ("width", "block", "nonlinearity", "normalisation")


def _signature_defaults(cls: type) -> dict:
    params = inspect.signature(cls.__init__).parameters
    return {n: p.default for n, p in params.items() if n != "self" and p.default is not inspect.Parameter.empty}


@dataclass(frozen=True)
class ModelEntry:
    """One architecture in :data:`MODELS`.

    Attributes:
        name: the ``arch`` name (``model.arch`` in a config).
        generator, discriminator: the classes; every constructor setting is a keyword argument with
            a default, which is where :attr:`g_defaults` / :attr:`d_defaults` come from.
        data: one of :data:`DATA_KINDS`, the data the pair is for.
        description: one line for listings.
    """

    name: str
    generator: type[Generator]
    discriminator: type[Discriminator]
    data: str
    description: str

    def __post_init__(self):
        if self.data not in DATA_KINDS:
            raise ValueError(f"model {self.name!r}: data must be one of {', '.join(DATA_KINDS)}, got {self.data!r}")

    @property
    def g_defaults(self) -> dict:
        """G's constructor settings and their defaults, e.g. ``{"z_dim": 128, "width": 128, ...}``."""
        return _signature_defaults(self.generator)

    @property
    def d_defaults(self) -> dict:
        """D's constructor settings and their defaults."""
        return _signature_defaults(self.discriminator)

    @property
    def split(self) -> tuple[str, ...]:
        """Settings both networks take that may differ between them (``X``, ``g_X``, ``d_X``)."""
        return tuple(n for n in _SPLIT if n in self.g_defaults and n in self.d_defaults)

    @property
    def shared(self) -> tuple[str, ...]:
        """Settings both networks take, always with one value (e.g. ``img_size``, ``channels``)."""
        return tuple(n for n in self.g_defaults if n in self.d_defaults and n not in _SPLIT)

    @property
    def g_only(self) -> tuple[str, ...]:
        return tuple(n for n in self.g_defaults if n not in self.d_defaults)

    @property
    def d_only(self) -> tuple[str, ...]:
        return tuple(n for n in self.d_defaults if n not in self.g_defaults)

    def defaults(self) -> dict:
        """Every setting :func:`build_models` accepts for this arch -> its default: split settings
        whose G and D defaults differ appear as ``g_X`` and ``d_X`` (e.g. ``g_normalisation``)."""
        g, d = self.g_defaults, self.d_defaults
        out = {n: g[n] for n in self.g_only + self.shared}
        for n in self.split:
            if g[n] == d[n]:
                out[n] = g[n]
            else:
                out[f"g_{n}"], out[f"d_{n}"] = g[n], d[n]
        out.update({n: d[n] for n in self.d_only})
        return out

    def data_settings(self, data) -> dict:
        """The settings a data set fixes: ``img_size`` and ``channels`` for image models (read
        from ``data.img_size`` / ``data.channels``), none for point models."""
        if self.data == "image":
            return {"img_size": int(data.img_size), "channels": int(data.channels)}
        return {}


#: the registry: arch name -> entry
MODELS: dict[str, ModelEntry] = {
    e.name: e
    for e in (
        ModelEntry("resnet", ResNetGenerator, ResNetDiscriminator, "image",
                   "the paper's Table 3 networks (WGAN-GP style, constant width)"),
        ModelEntry("dcgan", DCGANGenerator, DCGANDiscriminator, "image",
                   "DCGAN (Radford et al. 2016): transposed / strided 4x4 convolutions"),
        ModelEntry("mlp", MLPGenerator, MLPDiscriminator, "points",
                   "fully connected pair for 2-D toy data (after the WGAN-GP toy networks)"),
    )
}

#: arch name -> (generator class, discriminator class), derived from :data:`MODELS`
ARCHITECTURES: dict[str, tuple[type[Generator], type[Discriminator]]] = {
    name: (e.generator, e.discriminator) for name, e in MODELS.items()
}


def model_names(data: str | None = None) -> tuple[str, ...]:
    """The registered arch names, in registry order; with ``data`` ("image" or "points") only those
    for that kind of data."""
    if data is not None and data not in DATA_KINDS:
        raise ValueError(f"unknown data kind {data!r}; choose one of: {', '.join(DATA_KINDS)}")
    return tuple(n for n, e in MODELS.items() if data is None or e.data == data)


def model_entry(arch: str) -> ModelEntry:
    """The registry entry of ``arch``; a one-line ValueError listing the names if there is none."""
    if arch not in MODELS:
        raise ValueError(f"unknown arch {arch!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[arch]


def valid_settings(arch: str) -> tuple[str, ...]:
    """The keyword settings :func:`build_models` accepts for ``arch`` (sorted)."""
    e = model_entry(arch)
    names = set(e.g_only) | set(e.d_only) | set(e.shared)
    for name in e.split:
        names |= {name, f"g_{name}", f"d_{name}"}
    return tuple(sorted(names))


def build_models(arch: str, **settings) -> tuple[Generator, Discriminator]:
    """Build a fresh ``(G, D)`` pair of architecture ``arch`` (a name in :data:`MODELS`: "resnet",
    "dcgan" or "mlp").

    Settings (every one optional; ``None`` means the architecture's default):

    * ``z_dim`` (128; 2 for "mlp"), ``out_range`` ("sigmoid" = [0, 1]; "tanh" = [-1, 1];
      "none" = unbounded, the "mlp" default): the generator's.
    * ``d_features`` ("pooled" | "flat"; "resnet" / "dcgan" only, default "pooled"): how D reads
      phi off its last feature map, global average pooling or flattening (docs/models.md).
    * ``spectral_norm`` (False): spectral normalisation of every conv / linear layer of D.
    * ``img_size`` (32) and ``channels`` (3) for "resnet" / "dcgan"; ``dim`` (2) and ``depth`` (3)
      for "mlp": shared by both networks.
    * ``width`` ("resnet" 128, "dcgan" 64, "mlp" 512), ``block`` ("residual" | "plain"; "dcgan" and
      "mlp" default to plain), ``nonlinearity`` ("relu" | "leaky_relu" | "tanh"),
      ``normalisation`` ("batch" | "instance" | "none"): the shorthand sets G and D alike;
      ``g_<name>`` / ``d_<name>`` set one network and win over the shorthand. Left unset, the
      paper's defaults apply: G relu + batch norm, D leaky_relu (0.2) + instance norm ("mlp":
      no normalisation).

    Raises ValueError (one line, listing the valid names) for an unknown arch, setting or value.
    """
    entry = model_entry(arch)
    valid = valid_settings(arch)
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)} for arch {arch!r}; valid: {', '.join(valid)}")
    g_kw: dict = {}
    d_kw: dict = {}
    for name in entry.g_only:
        g_kw[name] = settings.get(name)
    for name in entry.d_only:
        d_kw[name] = settings.get(name)
    for name in entry.shared:
        g_kw[name] = d_kw[name] = settings.get(name)
    for name in entry.split:
        both, g_own, d_own = settings.get(name), settings.get(f"g_{name}"), settings.get(f"d_{name}")
        g_kw[name] = both if g_own is None else g_own
        d_kw[name] = both if d_own is None else d_own
    g_cls, d_cls = entry.generator, entry.discriminator
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
