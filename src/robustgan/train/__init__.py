"""Training: :class:`Trainer` (loop.py), :func:`resolve` (config.py), checkpoints, logging."""
from .config import resolve

__all__ = ["Trainer", "resolve"]


def __getattr__(name):  # the trainer module is imported only when it is used
    if name == "Trainer":
        from .loop import Trainer
        return Trainer
    raise AttributeError(f"module 'robustgan.train' has no attribute {name!r}")
