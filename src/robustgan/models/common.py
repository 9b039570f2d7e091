"""Building blocks shared by every architecture: choices, layers, base classes, weight init.

Every discriminator follows the robustgan protocol (see :class:`Discriminator`):

* ``D.features(x) -> (B, F)``: phi, the penultimate features;
* ``D.last_linear``: an ``nn.Linear(F, 1)``, the w (and bias) of ``D(x) = w^T phi(x) + b``;
* ``D(x) -> (B,)``: logits, exactly ``D.last_linear(D.features(x)).squeeze(-1)``.

The built-in networks validate and store their constructor settings through one helper,
:meth:`Network.configure`, so every constructor only lists its settings and builds its layers.

Every generator has ``G.z_dim`` and ``G.out_range`` and maps ``z ~ N(0, I)`` of shape
``(B, z_dim)`` to images ``(B, C, H, W)`` in ``out_range`` (or points ``(B, dim)`` for the MLP).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

__all__ = [
    "NONLINEARITIES",
    "NORMALISATIONS",
    "BLOCKS",
    "OUT_RANGES",
    "FEATURE_HEADS",
    "LEAKY_SLOPE",
    "check_choice",
    "check_positive_int",
    "resolve_img_size",
    "make_activation",
    "make_norm2d",
    "make_norm1d",
    "make_output_activation",
    "Network",
    "Generator",
    "Discriminator",
    "apply_spectral_norm",
    "init_weights",
    "count_parameters",
]

#: valid values of the ``nonlinearity`` setting
NONLINEARITIES = ("relu", "leaky_relu", "tanh")
#: valid values of the ``normalisation`` setting
NORMALISATIONS = ("batch", "instance", "none")
#: valid values of the ``block`` setting ("plain" = the same topology without skip connections)
BLOCKS = ("residual", "plain")
#: valid output ranges of image generators ("sigmoid" = [0, 1], "tanh" = [-1, 1])
OUT_RANGES = ("sigmoid", "tanh")
#: valid values of the discriminator's ``d_features`` setting: how phi is read off the last feature
#: map ("pooled" = global average over positions, (B, C); "flat" = the whole map, (B, C*H*W))
FEATURE_HEADS = ("pooled", "flat")
#: negative slope of every LeakyReLU (the usual GAN choice; the paper does not state it)
LEAKY_SLOPE = 0.2


def check_choice(name: str, value, choices) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a one-line ValueError naming them."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(map(str, choices))}")
    return value


def resolve_img_size(img_size: int) -> tuple[int, int]:
    """Split an image side into ``(base, n_stages)`` with ``img_size == base * 2**n_stages``.

    The base resolution is where the generator starts and the discriminator ends: the side is
    halved until it is at most 7, and the result must lie in 4..7 after at least one halving.
    Examples: 32 -> (4, 3), 64 -> (4, 4), 28 -> (7, 2), 16 -> (4, 2). Raises ValueError otherwise.
    """
    if isinstance(img_size, bool) or not isinstance(img_size, int):
        raise ValueError(f"img_size must be an int such as 28, 32 or 64, got {img_size!r}")
    base, n = img_size, 0
    while base > 7 and base % 2 == 0:
        base //= 2
        n += 1
    if n < 1 or not 4 <= base <= 7:
        raise ValueError(
            f"unsupported img_size {img_size}; use base * 2**n with base in 4..7 and n >= 1 "
            "(e.g. 28, 32, 64)"
        )
    return base, n


def check_positive_int(name: str, value) -> int:
    """Return ``value`` if it is a positive int, else raise a one-line ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def make_activation(nonlinearity: str) -> nn.Module:
    """``"relu"`` -> ReLU, ``"leaky_relu"`` -> LeakyReLU(0.2), ``"tanh"`` -> Tanh (never in-place)."""
    check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    if nonlinearity == "relu":
        return nn.ReLU()
    if nonlinearity == "leaky_relu":
        return nn.LeakyReLU(LEAKY_SLOPE)
    return nn.Tanh()


def make_norm2d(normalisation: str, channels: int) -> nn.Module:
    """Normalisation for (B, C, H, W) maps.

    ``"batch"`` -> BatchNorm2d, ``"instance"`` -> InstanceNorm2d(affine=True, no running stats, so it
    behaves the same in train and eval mode), ``"none"`` -> Identity.
    """
    check_choice("normalisation", normalisation, NORMALISATIONS)
    if normalisation == "batch":
        return nn.BatchNorm2d(channels)
    if normalisation == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def make_norm1d(normalisation: str, features: int) -> nn.Module:
    """Normalisation for (B, F) vectors (the MLP).

    ``"batch"`` -> BatchNorm1d; ``"instance"`` -> LayerNorm(F): a vector has no spatial axes, so the
    per-sample analogue of instance normalisation normalises over its features; ``"none"`` -> Identity.
    """
    check_choice("normalisation", normalisation, NORMALISATIONS)
    if normalisation == "batch":
        return nn.BatchNorm1d(features)
    if normalisation == "instance":
        return nn.LayerNorm(features)
    return nn.Identity()


def make_output_activation(out_range: str) -> nn.Module:
    """``"sigmoid"`` -> Sigmoid ([0, 1]), ``"tanh"`` -> Tanh ([-1, 1]), ``"none"`` -> Identity."""
    check_choice("out_range", out_range, OUT_RANGES + ("none",))
    if out_range == "sigmoid":
        return nn.Sigmoid()
    if out_range == "tanh":
        return nn.Tanh()
    return nn.Identity()


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


#: constructor setting -> its check (each raises a one-line ValueError naming the valid values)
_SETTING_CHECKS = {
    "width": lambda v: check_positive_int("width", v),
    "channels": lambda v: check_positive_int("channels", v),
    "dim": lambda v: check_positive_int("dim", v),
    "depth": lambda v: check_positive_int("depth", v),
    "nonlinearity": lambda v: check_choice("nonlinearity", v, NONLINEARITIES),
    "normalisation": lambda v: check_choice("normalisation", v, NORMALISATIONS),
    "d_features": lambda v: check_choice("d_features", v, FEATURE_HEADS),
    "spectral_norm": lambda v: _check_bool("spectral_norm", v),
}


class Network(nn.Module):
    """What every built-in generator and discriminator shares: checked, stored settings.

    Class attributes a subclass may narrow: ``block_choices`` (the ``block`` values it builds) with
    ``block_hint`` (said when another is asked for), ``out_ranges`` (generators).
    """

    block_choices: tuple[str, ...] = BLOCKS
    block_hint: str = ""

    def configure(self, **settings) -> int | None:
        """Check each setting (in the order given) and store it as an attribute of the same name.

        Known names: ``width``, ``channels``, ``dim``, ``depth`` (positive ints), ``block`` (one of
        ``self.block_choices``), ``nonlinearity``, ``normalisation``, ``d_features``,
        ``spectral_norm`` (bool) and ``img_size``, which also sets ``self.base`` (the side of the
        smallest map).
        Returns the number of 2x resolution stages for ``img_size`` (None without it).
        Raises a one-line ValueError for a bad value.
        """
        n_stages = None
        for name, value in settings.items():
            if name == "img_size":
                self.base, n_stages = resolve_img_size(value)
            elif name == "block":
                self._check_block(value)
            elif name in _SETTING_CHECKS:
                _SETTING_CHECKS[name](value)
            else:  # pragma: no cover - a programming error in a constructor
                raise TypeError(f"configure() got an unknown setting {name!r}")
            setattr(self, name, value)
        return n_stages

    def _check_block(self, block) -> None:
        if block in self.block_choices:
            return
        if len(self.block_choices) == 1:
            hint = f"; {self.block_hint}" if self.block_hint else ""
            raise ValueError(f"{type(self).__name__} supports block={self.block_choices[0]!r} only, got {block!r}{hint}")
        check_choice("block", block, self.block_choices)


class Generator(Network):
    """Base class of robustgan generators: sets ``z_dim`` / ``out_range`` and checks ``z``.

    Subclasses implement :meth:`generate`; ``forward(z)`` checks that ``z`` is ``(B, z_dim)``.
    A subclass that sets the class attribute ``out_ranges`` gets ``out_range`` checked against it.
    """

    out_ranges: tuple[str, ...] | None = None

    def __init__(self, z_dim: int, out_range: str):
        super().__init__()
        if self.out_ranges is not None:
            check_choice("out_range", out_range, self.out_ranges)
        self.z_dim = check_positive_int("z_dim", z_dim)
        self.out_range = out_range

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"{type(self).__name__} expects z of shape (B, {self.z_dim}), got {tuple(z.shape)}")
        return self.generate(z)

    def generate(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class Discriminator(Network):
    """Base class of robustgan discriminators (the protocol the regularisers rely on).

    Subclasses define ``self.last_linear = nn.Linear(F, 1)``, ``self.input_shape`` (the shape of one
    sample, e.g. ``(3, 32, 32)``; :meth:`configure` sets it from ``channels`` and ``img_size`` or
    from ``dim``) and :meth:`compute_features`. Then

    * ``features(x)``: ``(B, *input_shape)`` -> ``(B, F)``, phi;
    * ``forward(x)``: ``(B, *input_shape)`` -> ``(B,)`` logits, ``last_linear(features(x)).squeeze(-1)``.

    With ``spectral_norm=True`` (applied by :meth:`finish`) every conv and linear weight,
    ``last_linear``'s included, is spectrally normalised: ``D.last_linear.weight`` is then the
    normalised w, which is what RFM's ``alpha * ||w||^2`` reads.
    """

    input_shape: tuple[int, ...] = ()
    last_linear: nn.Linear
    spectral_norm: bool = False

    def configure(self, **settings) -> int | None:
        n_stages = super().configure(**settings)
        if "img_size" in settings and "channels" in settings:
            self.input_shape = (self.channels, self.img_size, self.img_size)
        elif "dim" in settings:
            self.input_shape = (self.dim,)
        return n_stages

    def finish(self, scheme: str) -> None:
        """Initialise the weights (``init_weights(self, scheme)``), then, if ``self.spectral_norm``,
        spectrally normalise every conv and linear layer. Constructors call it last."""
        init_weights(self, scheme)
        if self.spectral_norm:
            apply_spectral_norm(self)

    @property
    def feature_dim(self) -> int:
        """F, the length of phi."""
        return self.last_linear.in_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x): ``(B, *input_shape)`` -> ``(B, F)``."""
        if tuple(x.shape[1:]) != tuple(self.input_shape) or x.dim() != len(self.input_shape) + 1:
            raise ValueError(
                f"{type(self).__name__} expects input of shape (B, {', '.join(map(str, self.input_shape))}), "
                f"got {tuple(x.shape)}"
            )
        return self.compute_features(x)

    def compute_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_linear(self.features(x)).squeeze(-1)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``; a checkpoint of a D built with another ``d_features`` head
        or ``spectral_norm`` setting is a one-line ValueError saying which setting to use."""
        if strict:
            hint = _mismatch_hint(self, state_dict)
            if hint:
                raise ValueError(hint)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def _w_shape(state) -> tuple | None:
    for key in ("last_linear.weight", "last_linear.parametrizations.weight.original"):
        if key in state:
            return tuple(state[key].shape)
    return None


def _mismatch_hint(D: Discriminator, state_dict) -> str | None:
    """Why ``state_dict`` cannot be D's, in terms of its settings (None if no setting explains it)."""
    own = D.state_dict()
    if set(own) == set(state_dict) and all(own[k].shape == state_dict[k].shape for k in own):
        return None
    theirs_sn = any(".parametrizations." in k for k in state_dict)
    if theirs_sn != D.spectral_norm:
        return (f"the checkpoint's {type(D).__name__} was built with spectral_norm={theirs_sn}, this one with "
                f"spectral_norm={D.spectral_norm}; build it with model.spectral_norm={str(theirs_sn).lower()}")
    theirs_w, own_w = _w_shape(state_dict), _w_shape(own)
    if hasattr(D, "d_features") and theirs_w and own_w and theirs_w != own_w:
        return (f"the checkpoint's {type(D).__name__} has F={theirs_w[-1]} features, this one F={own_w[-1]} "
                f"(d_features={D.d_features!r}); build it with the checkpoint's settings (DCGAN checkpoints "
                "saved before the pooled head became the default need model.d_features=flat)")
    return None


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectrally normalise (Miyato et al. 2018) every conv / linear weight inside ``module``, in place.

    Uses ``torch.nn.utils.parametrizations.spectral_norm``: ``layer.weight`` becomes ``W / sigma``,
    sigma the power-iteration estimate of the largest singular value of W reshaped to
    ``(out, in * kh * kw)`` (15 iterations when applied, then one per forward pass in training mode,
    none in eval mode). The stored W is ``layer.parametrizations.weight.original``. Layers already
    parametrised are left alone. Returns ``module``.
    """
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and not parametrize.is_parametrized(m, "weight"):
            _spectral_norm(m)
    return module


INIT_SCHEMES = ("xavier", "dcgan")


@torch.no_grad()
def init_weights(module: nn.Module, scheme: str = "xavier") -> nn.Module:
    """Initialise every conv / linear / norm layer inside ``module`` in place; returns ``module``.

    * ``"xavier"`` (ResNet and MLP): Glorot-uniform conv/linear weights (gain 1), zero biases.
    * ``"dcgan"`` (Radford et al. 2016): conv/linear weights ~ N(0, 0.02), zero biases,
      norm scales ~ N(1, 0.02).

    Norm layers otherwise get scale 1 and shift 0 (the PyTorch default). In a spectrally normalised
    layer the stored, unnormalised weight is initialised.
    """
    check_choice("init scheme", scheme, INIT_SCHEMES)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            # a parametrised layer computes m.weight afresh on every access: initialise the stored one
            weight = m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight
            if scheme == "xavier":
                nn.init.xavier_uniform_(weight)
            else:
                nn.init.normal_(weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.LayerNorm)):
            if getattr(m, "weight", None) is not None:
                if scheme == "dcgan":
                    nn.init.normal_(m.weight, 1.0, 0.02)
                else:
                    nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
    return module


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars in ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

