"""Feature matrices as the metrics take them: a tensor or array of shape (N, F), checked once."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["feature_matrix"]


def feature_matrix(x, name: str, dtype: torch.dtype) -> torch.Tensor:
    """``x`` (a tensor, array or nested list of shape (N, F)) as a detached CPU tensor of ``dtype``.

    Raises ValueError naming ``name`` when ``x`` is not 2-D.
    """
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N, F), got shape {tuple(t.shape)}")
    return t.to(device="cpu", dtype=dtype)
