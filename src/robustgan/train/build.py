"""From a resolved config to the objects of one run: the networks, the objective and the regulariser.

Everything a regulariser needs from the config is read through the registries
(:mod:`robustgan.objectives`, :mod:`robustgan.regularizers`): this module knows no regulariser or
attack by name. Lengths given in [0, 1] pixel units (``reg.delta``, ``reg.delta_inf``,
``reg.sigma``) are converted to the model's pixel range here.
"""
from __future__ import annotations

import torch.nn as nn

from ..objectives import Objective, get_objective
from ..ranges import delta_for_range
from ..regularizers import REGULARIZERS, Regularizer
from .config import regularizer_lambda

__all__ = ["pixel_units", "scaled_delta", "build_networks", "build_objective", "build_regularizer"]


def pixel_units(value: float, cfg: dict) -> float:
    """A length given in [0, 1] pixel units in the model's units (2-D data: data units)."""
    out_range = cfg["model"]["out_range"]
    if out_range == "none" or cfg["model"]["arch"] == "mlp":
        return float(value)  # 2-D data: lengths are in data units
    return delta_for_range(value, out_range)


def scaled_delta(cfg: dict) -> float:
    """``reg.delta`` in the model's units (the radius of the logged robustness probe too)."""
    return pixel_units(cfg["reg"]["delta"], cfg)


def build_networks(cfg: dict, data) -> tuple[nn.Module, nn.Module]:
    """``(G, D)`` for ``cfg["model"]`` and the run's data (image sets fix img_size and channels)."""
    from ..models import build_models, model_entry, model_names
    m = dict(cfg["model"])
    arch = m.pop("arch")
    entry = model_entry(arch)
    kind = "image" if hasattr(data, "channels") else "points"
    if entry.data != kind:
        words = {"image": "image", "points": "2-D point"}
        raise ValueError(f"model.arch={arch} is for {words[entry.data]} data, but data.name={cfg['data']['name']} "
                         f"is {words[kind]} data; use model.arch={' or '.join(model_names(data=kind))}")
    settings = {k: v for k, v in m.items() if v is not None}
    settings.update(entry.data_settings(data))
    return build_models(arch, **settings)


def build_objective(cfg: dict) -> Objective:
    return get_objective(cfg["loss"])


def build_regularizer(cfg: dict) -> Regularizer:
    """The run's regulariser, with its weight (``reg.lam`` or the registry's default)."""
    r = cfg["reg"]
    cls = REGULARIZERS[r["name"]]
    lam = regularizer_lambda(cfg) if cls.default_weights is not None else 0.0
    total = cfg["train"]["steps"] * cfg["optim"]["d_steps"]
    return cls.from_settings(r, lam=lam, length=lambda v: pixel_units(v, cfg), total_steps=total)
