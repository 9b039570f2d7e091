"""Training configuration: one typed table of options, YAML presets, dotted overrides.

A configuration is a nested dict whose keys are exactly those of :data:`DEFAULTS`. Every key has
an :class:`~robustgan.options.Option` (type, default, valid range, one-line description) in
:func:`schema`; the ``reg.*`` options, the ``loss`` and ``reg.name`` choices and the attack names
come from the registries (:mod:`robustgan.objectives`, :mod:`robustgan.regularizers`,
:mod:`robustgan.attacks`), so they are declared once. A preset (``src/robustgan/presets/NAME.yaml``
or any YAML file) overrides some keys, and command-line overrides ``section.key=value`` override
the preset. Values of overrides are parsed as YAML scalars (``reg.lam=1`` is a number,
``model.norm=null`` is None). Two shorthands: ``loss=lsgan`` and ``reg=rfm`` (which sets
``reg.name``). Unknown keys are errors that suggest the nearest valid key; bad values are
one-line :class:`ConfigError` naming the key, raised by :func:`validate` before anything runs.
"""
from __future__ import annotations

import copy
import difflib
import re
from importlib import resources
from pathlib import Path

import yaml

from ..objectives import OBJECTIVES
from ..options import ConfigError, Option
from ..regularizers import REGULARIZERS, SETTINGS, check_settings, default_weight

__all__ = ["ConfigError", "DEFAULTS", "SHORTHANDS", "schema", "describe_keys", "resolve", "validate", "merge",
           "set_key", "parse_override", "load_yaml", "preset_names", "regularizer_lambda", "dump"]

#: metric names ``log.metrics`` accepts (the metric registry computes them)
METRIC_NAMES = ("fd", "fid", "kid", "pr", "is", "modes", "w1")
#: ``train.device``: auto, cpu, mps, cuda or cuda:N
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _fixed_schema() -> dict[str, Option]:
    """The options that do not come from a registry. The paper's optimisation settings are the
    defaults: Adam lr 2e-4, betas (0, 0.9), weight decay 1e-4, batch 64, z ~ N(0, I) of size 128."""
    O = Option  # noqa: N806
    return {
        "preset": O("str", None, "the preset this config started from (informational)", nullable=True),
        "seed": O("int", 0, "random seed (weights, data order, noise)", low=0),
        "out": O("str", None, "run directory; null -> runs/<preset>-<loss>-<reg>", nullable=True),
        "data.name": O("str", "fashion-mnist", "data set: mnist, fashion-mnist, cifar10, celeba, folder, "
                       "8gaussians, 25gaussians, swissroll"),
        "data.root": O("str", None, "where the files are; null searches the usual places", nullable=True),
        "data.split": O("str", "train", "data split"),
        "data.img_size": O("int", None, "resize images to this size; null keeps the native size", low=1,
                           nullable=True),
        "data.download": O("bool", False, "download the data set when it is missing"),
        "data.workers": O("int", 0, "data-loading processes for data sets decoded on the fly", low=0),
        "model.arch": O("choice", "dcgan", "architecture: resnet (paper, Table 3), dcgan, mlp (2-D data)",
                        choices=("resnet", "dcgan", "mlp")),
        "model.width": O("int", None, "channels / units; null = the architecture's default (resnet 128, "
                         "dcgan 64, mlp 512)", low=1, nullable=True),
        "model.block": O("choice", None, "residual or plain; null = the architecture's default",
                         choices=(None, "residual", "plain")),
        "model.nonlinearity": O("choice", None, "null = paper defaults (G relu, D leaky_relu); else for both",
                                choices=(None, "relu", "leaky_relu", "tanh")),
        "model.normalisation": O("choice", None, "null = paper defaults (G batch, D instance); else for both",
                                 choices=(None, "batch", "instance", "none")),
        "model.out_range": O("choice", "sigmoid", "generator output: sigmoid ([0, 1], the paper), tanh "
                             "([-1, 1]), none (2-D data)", choices=("sigmoid", "tanh", "none")),
        "model.z_dim": O("int", None, "latent size; null = the architecture's default (128; 2 for mlp)", low=1,
                         nullable=True),
        "model.d_features": O("choice", None, "D's feature phi: pooled (global average pool) or flat (the "
                              "flattened conv map); null = the architecture's default",
                              choices=(None, "pooled", "flat")),
        "model.spectral_norm": O("bool", False, "spectral normalisation of every conv and linear layer of D"),
        "loss": O("choice", "gan", "GAN loss: " + ", ".join(OBJECTIVES), choices=tuple(OBJECTIVES)),
        "reg.name": O("choice", "none", "regulariser: " + ", ".join(REGULARIZERS), choices=tuple(REGULARIZERS)),
        "optim.lr_g": O("float", 2.0e-4, "generator learning rate (Adam)", low=0, low_open=True),
        "optim.lr_d": O("float", 2.0e-4, "discriminator learning rate (Adam)", low=0, low_open=True),
        "optim.beta1": O("float", 0.0, "Adam beta1", low=0, high=1, high_open=True),
        "optim.beta2": O("float", 0.9, "Adam beta2", low=0, high=1, high_open=True),
        "optim.weight_decay": O("float", 1.0e-4, "Adam weight decay", low=0),
        "optim.d_steps": O("int", 1, "discriminator steps per generator step", low=1),
        "optim.lr_decay": O("choice", "none", "none or linear (to 0 at the last step)", choices=("none", "linear")),
        "train.steps": O("int", 2000, "generator steps", low=1),
        "train.batch_size": O("int", 64, "batch size (per process)", low=1),
        "train.ema": O("float", 0.999, "EMA decay of G's weights (reached after a warm-up); 0 turns the EMA "
                       "copy off", low=0, high=1, high_open=True),
        "train.ema_start": O("int", 0, "step from which the EMA is updated (copied before)", low=0),
        "train.amp": O("choice", "auto", "mixed precision: bf16 autocast, none, or auto (the device's best)",
                       choices=("auto", "none", "bf16")),
        "train.channels_last": O("choice", "auto", "channels-last memory format for images: true, false, or "
                                 "auto (where it is faster)", choices=("auto", True, False)),
        "train.device": O("str", "auto", "auto, cpu, cuda, cuda:N or mps"),
        "train.on_nan": O("choice", "stop", "on a NaN/Inf loss: stop, or rollback (reload the last checkpoint, "
                          "halve the learning rates)", choices=("stop", "rollback")),
        "train.max_rollbacks": O("int", 3, "rollbacks allowed before the run stops", low=0),
        "train.threads": O("int", "auto", "torch CPU threads: auto, or a number (0 = torch's default)", low=0,
                           special=("auto",)),
        "log.every": O("int", 50, "metrics.jsonl / TensorBoard every k steps", low=1),
        "log.samples_every": O("int", 500, "sample grid every k steps (and at the end)", low=1),
        "log.checkpoint_every": O("int", 500, "checkpoint every k steps (and at the end)", low=1),
        "log.keep": O("int", 3, "checkpoints kept", low=1),
        "log.eval_every": O("int", 0, "evaluate metrics every k steps (0: only at the end if eval_at_end)", low=0),
        "log.eval_at_end": O("bool", True, "evaluate the metrics at the end"),
        "log.eval_n": O("int", 2000, "generated samples per evaluation", low=1),
        "log.metrics": O("list", ["fd", "kid", "pr"], "metrics to evaluate: " + ", ".join(METRIC_NAMES),
                         choices=METRIC_NAMES),
        "log.extractor": O("str", "auto", "feature extractor; auto: classifier for 28x28 gray data, inception "
                           "otherwise, toy metrics for 2-D"),
        "log.tensorboard": O("bool", True, "write TensorBoard event files"),
        "log.progress": O("bool", True, "show a progress bar"),
    }


def schema() -> dict[str, Option]:
    """Every config key (dotted) -> its :class:`Option`, in the order of :data:`DEFAULTS`.

    Computed on each call so that entries registered after import (a new attack, loss or
    regulariser) are valid choices."""
    fixed = _fixed_schema()
    out: dict[str, Option] = {}
    for key, opt in fixed.items():
        out[key] = opt
        if key == "reg.name":
            out.update({f"reg.{k}": o for k, o in SETTINGS.items()})
    return out


def _nested(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = copy.deepcopy(value)
    return out


#: Every setting of a training run with its default (a nested dict; see :func:`schema` for types).
DEFAULTS: dict = _nested({k: o.default for k, o in schema().items()})

SHORTHANDS = {"reg": "reg.name"}


def _flat_keys(d: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in d.items():
        keys.append(prefix + k)
        if isinstance(v, dict):
            keys += _flat_keys(v, prefix + k + ".")
    return keys


def _unknown(key: str) -> ConfigError:
    valid = [k for k in _flat_keys(DEFAULTS)]
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if not near:  # try the last component against all last components
        last = key.split(".")[-1]
        near = [k for k in valid if k.split(".")[-1] == last] or difflib.get_close_matches(
            last, [k.split(".")[-1] for k in valid], n=1, cutoff=0.6)
        near = [k for k in valid if k.split(".")[-1] in near][:1]
    hint = f"; did you mean '{near[0]}'?" if near else ""
    return ConfigError(f"unknown config key '{key}'{hint}")


def _coerce(key: str, new):
    """The value as the option's type where the reading is unambiguous (YAML reads '1e-3' as a
    string); otherwise unchanged, for :func:`validate` to reject with a message naming the key."""
    opt = schema().get(key)
    return new if opt is None else opt.coerce(new)


def merge(base: dict, override: dict, prefix: str = "") -> dict:
    """Return ``base`` updated with ``override``; keys must exist in ``base``."""
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        key = prefix + str(k)
        if k in SHORTHANDS and not prefix and not isinstance(v, dict):
            out = set_key(out, SHORTHANDS[k], v)
            continue
        if k not in out:
            raise _unknown(key)
        if isinstance(out[k], dict):
            if not isinstance(v, dict):
                raise ConfigError(f"config key '{key}' is a section; set its keys, e.g. '{key}.{next(iter(out[k]))}=...'")
            out[k] = merge(out[k], v, key + ".")
        else:
            out[k] = _coerce(key, copy.deepcopy(v))
    return out


def set_key(cfg: dict, dotted: str, value) -> dict:
    dotted = SHORTHANDS.get(dotted, dotted)
    parts = dotted.split(".")
    node = cfg
    for i, p in enumerate(parts[:-1]):
        if not isinstance(node.get(p), dict):
            raise _unknown(dotted)
        node = node[p]
    if parts[-1] not in node:
        raise _unknown(dotted)
    if isinstance(node[parts[-1]], dict):
        raise ConfigError(f"config key '{dotted}' is a section; set one of its keys")
    node[parts[-1]] = _coerce(dotted, value)
    return cfg


def parse_override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form key=value (e.g. reg.lam=1)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("robustgan.presets").iterdir() if p.name.endswith(".yaml"))


def load_yaml(path_or_name: str) -> dict:
    """Load a preset by name (see :func:`preset_names`) or a YAML file path (parsed safely)."""
    path = Path(path_or_name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        text = path.read_text()
    else:
        res = resources.files("robustgan.presets") / f"{path_or_name}.yaml"
        if not res.is_file():
            near = difflib.get_close_matches(path_or_name, preset_names(), n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise ConfigError(f"unknown preset '{path_or_name}'{hint} (presets: {', '.join(preset_names())}; or give a .yaml file)")
        text = res.read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path_or_name}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path_or_name}: a preset must be a mapping of config keys")
    data.pop("description", None)
    return data


def resolve(preset: str | None = None, overrides: list[str] | dict | None = None) -> dict:
    """Defaults <- preset <- overrides, validated. Returns the resolved config (a new dict)."""
    cfg = copy.deepcopy(DEFAULTS)
    if preset:
        cfg = merge(cfg, load_yaml(preset))
        cfg["preset"] = preset
    if isinstance(overrides, dict):
        cfg = merge(cfg, overrides)
    else:
        for text in overrides or []:
            key, value = parse_override(text)
            cfg = set_key(cfg, key, value)
    validate(cfg)
    return cfg


def _get(cfg, dotted):
    node = cfg
    for p in dotted.split("."):
        if not isinstance(node, dict) or p not in node:
            raise ConfigError(f"config key '{dotted}' is missing; start from robustgan.train.config.DEFAULTS")
        node = node[p]
    return node


def validate(cfg: dict) -> None:
    """Check every key's type and range and the settings against the registries.

    Raises :class:`ConfigError` with a one-line message naming the key; never changes ``cfg``.
    """
    for key, opt in schema().items():
        opt.check(key, _get(cfg, key))
    if not _DEVICE.match(cfg["train"]["device"]):
        raise ConfigError(f"train.device={cfg['train']['device']!r} is not valid: use auto, cpu, cuda, cuda:N or mps")
    check_settings(cfg["reg"], cfg["loss"])


def regularizer_lambda(cfg: dict) -> float:
    """The weight used for the run's regulariser: ``reg.lam``, or the registry's default for the
    loss and regulariser (a missing default is a :class:`ConfigError`, never a silent 0)."""
    if cfg["reg"]["lam"] is not None:
        return float(cfg["reg"]["lam"])
    return default_weight(cfg["reg"]["name"], cfg["loss"])


def default_lambdas() -> dict[str, dict[str, float]]:
    """The default weights as a table ``{regulariser: {loss: lam}}`` (a view of the registries)."""
    return {name: {loss: default_weight(name, loss) for loss in OBJECTIVES}
            for name, cls in REGULARIZERS.items() if cls.default_weights is not None}


def describe_keys(preset: str | None = None) -> list[dict]:
    """Every config key with its type, default, the preset's value and a one-line description.

    Returns a list of ``{"key", "type", "default", "preset_value", "help"}`` in the order of
    :data:`DEFAULTS`; ``preset_value`` is the value after merging ``preset`` (None without one).
    """
    merged = merge(copy.deepcopy(DEFAULTS), load_yaml(preset)) if preset else None
    rows = []
    for key, opt in schema().items():
        rows.append({"key": key, "type": opt.type_name(), "default": opt.default,
                     "preset_value": _get(merged, key) if merged is not None else None, "help": opt.help})
    return rows


def dump(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
