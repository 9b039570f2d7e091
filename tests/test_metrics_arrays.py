"""robustgan.metrics.arrays: the one check of feature matrices that KID and precision/recall share."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from robustgan.metrics.arrays import feature_matrix
from robustgan.metrics.kid import kid
from robustgan.metrics.precision_recall import precision_recall


def test_feature_matrix_takes_arrays_lists_and_tensors():
    a = np.arange(6, dtype=np.float32).reshape(3, 2)
    for x in (a, a.tolist(), torch.from_numpy(a).requires_grad_(True)):
        t = feature_matrix(x, "x", torch.float64)
        assert t.dtype == torch.float64 and t.device.type == "cpu" and not t.requires_grad
        assert torch.equal(t, torch.from_numpy(a).double())


@pytest.mark.parametrize("metric", [kid, precision_recall])
def test_metrics_name_the_argument_that_is_not_two_dimensional(metric):
    good = np.zeros((10, 3))
    with pytest.raises(ValueError, match=r"^features_fake must be a 2-D array \(N, F\), got shape \(10,\)$"):
        metric(np.zeros(10), good)
