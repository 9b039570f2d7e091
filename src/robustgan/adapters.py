"""Adapters that make your own discriminator follow robustgan's discriminator protocol.

Robust feature matching needs D split as ``D(x) = w^T phi(x) + b``: ``D.features(x) -> (B, F)``
and ``D.last_linear = nn.Linear(F, 1)`` with ``D(x) == D.last_linear(D.features(x)).squeeze(-1)``
(docs/models.md). :func:`robust_discriminator` wraps a discriminator that does not have these
attributes, without changing it::

    D_rfm = robust_discriminator(D)                            # nn.Sequential, DCGAN tutorial D
    D_rfm = robust_discriminator(D, head="main.12")            # name the last layer
    D_rfm = robust_discriminator(D, feature_layer="blocks.3")  # name the layer whose output is phi
    D_rfm = robust_discriminator(D, features=D.trunk, head=D.fc)
    D_rfm = robust_discriminator(D, returns_features=True)     # D(x) returns (logit, features)

The adapter's parameters are D's own (no copies): an optimiser built on ``D.parameters()`` trains
what the regularisers differentiate. Forward hooks are registered only for the duration of a call.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["robust_discriminator", "RobustDiscriminator", "ConvAsLinear", "unwrap", "follows_protocol"]

#: modules that may follow the head without changing which sample a logit belongs to; a trailing
#: Sigmoid turns the logit into a probability, and the adapter returns the logit instead
_AFTER_HEAD = (nn.Sigmoid, nn.Flatten, nn.Identity)


def unwrap(D: nn.Module) -> nn.Module:
    """The module inside ``DistributedDataParallel`` / ``DataParallel`` (``.module``) and
    ``torch.compile`` (``._orig_mod``) wrappers, repeatedly; ``D`` itself if it is not wrapped.

    A wrapper is recognised by ``_orig_mod``, or by ``.module`` being its only child module.
    """
    while True:
        inner = getattr(D, "_orig_mod", None)
        if isinstance(inner, nn.Module):
            D = inner
            continue
        children = dict(D.named_children())
        if set(children) == {"module"} and isinstance(children["module"], nn.Module):
            D = children["module"]
            continue
        return D


def follows_protocol(D) -> bool:
    """True if ``D`` has a callable ``features`` and ``last_linear`` is an ``nn.Linear(F, 1)``."""
    layer = getattr(D, "last_linear", None)
    return callable(getattr(D, "features", None)) and isinstance(layer, nn.Linear) and layer.out_features == 1


class ConvAsLinear(nn.Linear):
    """A convolution to one channel whose kernel covers its whole input, seen as ``nn.Linear(F, 1)``.

    ``weight`` is the conv's weight reshaped to ``(1, C * kh * kw)``: a view, so the parameter is
    shared (gradients of ``alpha * ||w||^2`` and of the features path reach the conv) and nothing
    is copied; ``bias`` is the conv's bias (or None). Input: the flattened ``(B, C, kh, kw)`` map.
    """

    def __init__(self, conv: nn.Conv2d):
        nn.Module.__init__(self)
        if conv.out_channels != 1 or conv.groups != 1 or any(p != 0 for p in _pairs(conv.padding)) \
                or any(d != 1 for d in _pairs(conv.dilation)):
            raise ValueError(
                f"the head {conv} must be a convolution to 1 channel without padding, dilation or groups "
                "(e.g. DCGAN's last Conv2d(C, 1, 4, 1, 0)) to be seen as a linear layer")
        self.__dict__["conv"] = conv  # not registered: its parameters belong to the user's module
        self.in_features = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        self.out_features = 1

    @property
    def weight(self) -> torch.Tensor:
        return self.conv.weight.reshape(1, -1)

    @property
    def bias(self) -> torch.Tensor | None:
        return self.conv.bias

    def check_input(self, fmap: torch.Tensor) -> None:
        """Raise if the map entering the conv is not exactly one kernel in size."""
        want = (self.conv.in_channels,) + tuple(self.conv.kernel_size)
        if tuple(fmap.shape[1:]) != want:
            raise ValueError(
                f"the head convolution sees maps of shape {tuple(fmap.shape[1:])} but its kernel covers "
                f"{want}: it gives more than one logit per sample, so it is not a linear layer on the "
                "flattened map (pass head= and features= explicitly)")

    def forward(self, phi: torch.Tensor) -> torch.Tensor:
        return F.linear(phi, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features=1, view of {self.conv}"


def _pairs(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class _Stop(Exception):
    """Raised by a hook once phi is captured, so the rest of D's forward is not computed."""


def _logit(out: torch.Tensor, batch: int, where: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or out.numel() != batch:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{where} gives {shape} for a batch of {batch}; a discriminator must give one logit per sample")
    return out.reshape(batch)


class RobustDiscriminator(nn.Module):
    """The protocol around a user's discriminator ``net`` (build it with :func:`robust_discriminator`).

    * ``forward(x)``: ``(B, ...)`` -> ``(B,)`` logits: the output of ``net``'s head (the logit before
      any sigmoid that ``net`` applies after it);
    * ``features(x)``: ``(B, ...)`` -> ``(B, F)``, phi, flattened;
    * ``last_linear``: ``nn.Linear(F, 1)`` (the user's head, or a :class:`ConvAsLinear` view of it).

    The first forward checks that ``last_linear(phi)`` reproduces the logit and that ``net``'s output
    is the logit or its sigmoid, and raises ``TypeError`` otherwise.
    """

    def __init__(self, net: nn.Module, head: nn.Module, *, feature_layer: nn.Module | None = None,
                 features: Callable | None = None, returns_features: bool | tuple = False,
                 head_name: str = "head"):
        super().__init__()
        self.net = net
        self.__dict__["_head"] = head  # part of net already: not registered twice
        self.__dict__["_feature_layer"] = feature_layer
        self.__dict__["_features_fn"] = features
        self.returns_features = returns_features
        self.head_name = head_name
        # kept out of the module tree: its parameters are registered once, under net
        self.__dict__["_linear"] = head if isinstance(head, nn.Linear) else ConvAsLinear(head)
        self._checked = False

    @property
    def last_linear(self) -> nn.Linear:
        """w and b: the user's ``nn.Linear(F, 1)`` head, or a :class:`ConvAsLinear` view of a conv head."""
        return self.__dict__["_linear"]

    @property
    def feature_dim(self) -> int:
        """F, the length of phi."""
        return self.last_linear.in_features

    def extra_repr(self) -> str:
        return f"{self.head_name} as last_linear: {self.last_linear!r}"

    def _split(self, out):
        """(logit, phi) from the output of a D that returns both."""
        if isinstance(self.returns_features, tuple):
            logit_key, phi_key = self.returns_features
            return out[logit_key], out[phi_key]
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError(f"returns_features=True expects D(x) to return (logit, features), got {type(out).__name__}")
        return out[0], out[1]

    def _run(self, x: torch.Tensor, want_logit: bool):
        """One pass of ``net``: returns ``(net output, head output, phi)`` (None where not needed)."""
        captured: dict = {}
        handles = []
        head, layer = self.__dict__["_head"], self.__dict__["_feature_layer"]

        def pre_head(module, args):
            captured.setdefault("phi", args[0])
            if not want_logit:
                raise _Stop

        def post_head(module, args, output):
            captured["logit"] = output

        def post_layer(module, args, output):
            captured["phi"] = output
            if not want_logit:
                raise _Stop

        if layer is not None:
            handles.append(layer.register_forward_hook(post_layer))
        elif not self.returns_features and self.__dict__["_features_fn"] is None:
            handles.append(head.register_forward_pre_hook(pre_head))
        if want_logit:
            handles.append(head.register_forward_hook(post_head))
        out = None
        try:
            out = self.net(x)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        if self.returns_features and out is not None:
            captured["logit"], captured["phi"] = self._split(out)
        return out, captured.get("logit"), captured.get("phi")

    def _flat(self, phi: torch.Tensor) -> torch.Tensor:
        if isinstance(self.last_linear, ConvAsLinear):
            self.last_linear.check_input(phi)
        return phi.flatten(1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x): ``(B, ...)`` -> ``(B, F)``."""
        fn = self.__dict__["_features_fn"]
        if fn is not None:
            phi = fn(x)
        else:
            _, _, phi = self._run(x, want_logit=bool(self.returns_features))
            if phi is None:
                raise TypeError(f"the {self.head_name} was not called during D's forward; name the right one with head=")
        return self._flat(phi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, logit, phi = self._run(x, want_logit=True)
        if logit is None:
            raise TypeError(f"the {self.head_name} was not called during D's forward; name the right one with head=")
        logit = _logit(logit, x.shape[0], f"the {self.head_name}")
        if not self._checked:
            self._check(x, out, logit, phi)
        return logit

    @torch.no_grad()
    def _check(self, x, out, logit, phi) -> None:
        if self.__dict__["_features_fn"] is not None:
            phi = self.__dict__["_features_fn"](x)
        again = self.last_linear(self._flat(phi.detach())).reshape(-1)
        lo = logit.detach().float()
        # bf16 / fp16 (autocast) logits carry about 3 significant digits
        low = logit.dtype in (torch.bfloat16, torch.float16) or again.dtype in (torch.bfloat16, torch.float16)
        rtol, atol = (3e-2, 3e-2 * max(1.0, float(lo.abs().max()))) if low else (1e-4, 1e-5)
        if not torch.allclose(again.float(), lo, rtol=rtol, atol=atol):
            raise TypeError(
                f"last_linear(features(x)) does not reproduce D's logit (largest difference "
                f"{(again.float() - lo).abs().max():.3g}): the features must be the {self.head_name}'s input")
        if not self.returns_features:
            o = _logit(out, x.shape[0], "D").detach().float()
            if not (torch.allclose(o, lo, rtol=rtol, atol=atol) or torch.allclose(o, torch.sigmoid(lo), rtol=rtol, atol=atol / 10)):
                raise TypeError(
                    f"D's output is neither the {self.head_name}'s output nor its sigmoid; name the last "
                    "layer with head=")
        self._checked = True


def _find(root: nn.Module, outer: nn.Module, name: str, what: str) -> nn.Module:
    for m in (root, outer):
        try:
            return m.get_submodule(name)
        except AttributeError:
            pass
    names = [n for n, _ in root.named_modules() if n]
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    raise ValueError(f"{what}={name!r}: the discriminator has no such submodule; its submodules are {shown}")


def _is_head(m: nn.Module) -> bool:
    return (isinstance(m, nn.Linear) and m.out_features == 1) or (isinstance(m, nn.Conv2d) and m.out_channels == 1)


def _default_head(net: nn.Module) -> tuple[str, nn.Module]:
    """The last registered layer mapping to one output (Linear(F, 1) or Conv2d(C, 1, k))."""
    found = [(n, m) for n, m in net.named_modules() if _is_head(m)]
    if not found:
        raise TypeError(
            f"{type(net).__name__} has no nn.Linear(F, 1) or nn.Conv2d(C, 1, k) layer to use as the head; "
            "pass features= and head= (see docs/own-models.md)")
    return found[-1]


def _next_in_sequential(net: nn.Module, name: str) -> tuple[str, nn.Module] | None:
    """The layer after ``name`` in its parent nn.Sequential, skipping Flatten / Identity."""
    parent_name, _, child = name.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    if not isinstance(parent, nn.Sequential):
        return None
    keys = list(parent._modules)
    for k in keys[keys.index(child) + 1:]:
        m = parent._modules[k]
        if not isinstance(m, _AFTER_HEAD):
            return (f"{parent_name}.{k}" if parent_name else k), m
    return None


def robust_discriminator(D: nn.Module, *, feature_layer: str | None = None, features: Callable | None = None,
                         head: str | nn.Module | None = None, returns_features: bool | tuple[str, str] = False) -> nn.Module:
    """A view of ``D`` that follows the discriminator protocol, for robust feature matching.

    ``D`` is unwrapped first (``DistributedDataParallel`` / ``DataParallel`` ``.module``,
    ``torch.compile``'s ``._orig_mod``: see :func:`unwrap`). A ``D`` that already has ``features``
    and ``last_linear`` is returned as it is (unwrapped) when no option is given.

    The head (``w`` and ``b``) is ``head`` (a submodule or its dotted name, e.g. ``"main.12"``):
    an ``nn.Linear(F, 1)``, or an ``nn.Conv2d(C, 1, k)`` without padding whose kernel covers its
    whole input (DCGAN's last 4x4 convolution), which is seen as a linear layer on the flattened
    ``C x k x k`` map, sharing the conv's weight. By default it is the layer after
    ``feature_layer`` in its ``nn.Sequential``, or else the last such layer registered in ``D``.

    phi, the features, is (first that applies):

    * ``features(x)``: a callable ``(B, ...) -> (B, F)`` (or a map, flattened);
    * ``returns_features=True``: ``D(x)`` returns ``(logit, features)`` (StudioGAN's
      discriminators return their penultimate ``h``); a pair of keys ``("adv_output", "h")`` reads
      them from a dict instead;
    * ``feature_layer``: the output of that submodule (dotted name), captured by a forward hook;
    * otherwise the input of the head, captured by a forward pre-hook.

    Returns:
        A :class:`RobustDiscriminator` (an ``nn.Module`` whose parameters are ``D``'s own):
        ``forward(x) -> (B,)`` logits equal to D's head output (with ``(B, 1)`` or ``(B, 1, 1, 1)``
        outputs squeezed and a sigmoid after the head left out, as robustgan's objectives take
        logits), ``features(x) -> (B, F)`` and ``last_linear``.

    Raises:
        ValueError / TypeError naming what is missing, at construction or on the first forward.
    """
    net = unwrap(D)
    if isinstance(head, str):
        head_name, head_mod = head, _find(net, D, head, "head")
    elif isinstance(head, nn.Module):
        head_name, head_mod = type(head).__name__, head
    elif head is not None:
        raise TypeError("head= must be a submodule of D or its dotted name (an nn.Linear(F, 1) or nn.Conv2d(C, 1, k))")
    else:
        if feature_layer is None and features is None and not returns_features and follows_protocol(net):
            return net
        head_name = head_mod = None
    layer = _find(net, D, feature_layer, "feature_layer") if feature_layer is not None else None
    if head_mod is None and feature_layer is not None:
        nxt = _next_in_sequential(net, next(n for n, m in net.named_modules() if m is layer))
        if nxt is not None and _is_head(nxt[1]):
            head_name, head_mod = nxt
    if head_mod is None:
        head_name, head_mod = _default_head(net)
    if not _is_head(head_mod):
        raise ValueError(f"head {head_name!r} is {head_mod}; it must be an nn.Linear(F, 1) or nn.Conv2d(C, 1, k)")
    if features is not None and not callable(features):
        raise TypeError("features= must be a callable x -> (B, F), such as a submodule of D")
    return RobustDiscriminator(net, head_mod, feature_layer=layer, features=features,
                               returns_features=returns_features, head_name=f"head {head_name!r}")
