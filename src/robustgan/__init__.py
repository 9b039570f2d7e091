"""robustgan: GANs whose discriminator is robust to adversarial attacks.

After Zhou & Kraehenbuehl, "Don't Let Your Discriminator Be Fooled" (ICLR 2019).

The names below are imported on first use, so ``import robustgan`` does not load PyTorch::

    from robustgan import load_generator, robust_discriminator, robust_feature_matching
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> module that defines it (imported when the name is first used)
_LAZY = {
    "load_generator": "robustgan.train.sample",
    "robust_discriminator": "robustgan.adapters",
    "robust_feature_matching": "robustgan.regularizers",
    "adversarial_regularization": "robustgan.regularizers",
    "gradient_penalty": "robustgan.regularizers",
    "get_objective": "robustgan.objectives",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'robustgan' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
