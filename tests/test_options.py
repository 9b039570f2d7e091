"""robustgan.options: the dotted-key flattener shared by the run folder, the logger and the executors."""
from __future__ import annotations

from robustgan.options import flatten
from robustgan.train.config import DEFAULTS, _flat_keys


def test_flatten_gives_the_leaves_as_dotted_keys():
    cfg = {"seed": 0, "reg": {"name": "rfm", "attack": {"steps": 3}}, "log": {}, "out": None}
    assert flatten(cfg) == {"seed": 0, "reg.name": "rfm", "reg.attack.steps": 3, "out": None}
    assert flatten({"a": {"b": 1}}, prefix="x.") == {"x.a.b": 1}


def _get(d: dict, key: str):
    for part in key.split("."):
        d = d[part]
    return d


def test_flatten_of_the_defaults_has_every_leaf_key_once_in_order():
    flat = flatten(DEFAULTS)
    assert list(flat) == [k for k in _flat_keys(DEFAULTS) if not isinstance(_get(DEFAULTS, k), dict)]
    assert all(_get(DEFAULTS, k) == v for k, v in flat.items())
