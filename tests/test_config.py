import copy

import pytest
import yaml

from robustgan.train.build import build_regularizer
from robustgan.train.config import (
    DEFAULTS, ConfigError, _flat_keys, default_lambdas, describe_keys, merge, regularizer_lambda, resolve, schema,
    validate,
)

BAD = [
    ("log.samples_every=0", "log.samples_every"),
    ("log.metrics=[bogus]", "log.metrics"),
    ("optim.beta1=7", "optim.beta1"),
    ("log.eval_every=-5", "log.eval_every"),
    ("train.max_rollbacks=-1", "train.max_rollbacks"),
    ("reg.attack_steps=0", "reg.attack_steps"),
    ("model.width=abc", "model.width"),
    ("train.ema=abc", "train.ema"),
    ("seed=abc", "seed"),
    ("train.device=tpu", "train.device"),
    ("train.threads=-1", "train.threads"),
    ("train.amp=fp16", "train.amp"),
    ("train.channels_last=maybe", "train.channels_last"),
    ("model.d_features=mean", "model.d_features"),
    ("model.spectral_norm=3", "model.spectral_norm"),
    ("data.workers=-2", "data.workers"),
    ("loss=wgn", "loss"),
]


@pytest.mark.parametrize("text,key", BAD)
def test_bad_values_are_one_line_errors_naming_the_key(text, key):
    with pytest.raises(ConfigError) as info:
        resolve(None, [text])
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(key + "=")


@pytest.mark.parametrize("overrides,key", [
    (["reg=ar", "reg.delta=0"], "reg.delta"),
    (["reg=rfm", "reg.delta=-1"], "reg.delta"),
    (["reg=none", "reg.attack=pgd"], "reg.attack"),
    (["reg=gp", "reg.attack=pgd"], "reg.attack"),
    (["reg=r1", "reg.target=loss"], "reg.target"),
    (["reg=noise", "reg.lam=1"], "reg.lam"),
    (["reg=none", "reg.every=2"], "reg.every"),
    (["reg=ar", "reg.attack_steps=3"], "reg.attack_steps"),          # fgm takes no steps
    (["reg=ar", "reg.attack=cw", "reg.attack_norm=inf"], "reg.attack_norm"),
    (["reg=ar", "reg.delta_inf=0.01"], "reg.delta_inf"),             # fgm is an L2 attack
    (["reg=ar", "reg.attack_measure=features"], "reg.attack_measure"),  # ar has no features measure
    (["reg=rfm", "reg.attack_measure=features"], "reg.attack_measure"),  # fgm follows grad h
    (["reg=ar", "reg.attack=deepfool"], "reg.attack"),
    (["reg=gp", "reg.target=loss", "loss=rpgan"], "reg.target"),
])
def test_settings_a_regulariser_does_not_use_are_errors(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve(None, overrides)


def test_default_valued_shared_keys_are_allowed():
    """A preset may set reg keys generally: the default value is fine for any regulariser."""
    cfg = resolve("toy-8gaussians", ["reg=gp"])  # the preset sets reg.delta: 0.05, the default
    assert cfg["reg"]["delta"] == 0.05 and build_regularizer(cfg).name == "gp"
    resolve(None, ["reg=none", "reg.attack=fgm", "reg.every=1", "reg.target=discriminator"])


def test_good_values_and_coercions():
    cfg = resolve(None, ["train.channels_last=true", "train.threads=4", "reg=ar", "reg.attack=pgd",
                         "reg.attack_norm=inf", "reg.delta_inf=0.01", "optim.lr_d=1e-3", "train.amp=bf16",
                         "model.d_features=pooled", "model.spectral_norm=true"])
    assert cfg["train"]["channels_last"] is True and cfg["train"]["threads"] == 4
    assert cfg["reg"]["attack_norm"] == "inf" and cfg["optim"]["lr_d"] == pytest.approx(1e-3)
    assert resolve(None, ["train.channels_last=false"])["train"]["channels_last"] is False
    assert resolve(None, ["train.threads=0"])["train"]["threads"] == 0
    assert resolve(None, {"reg": {"name": "ar", "attack": "pgd", "attack_norm": float("inf")}})["reg"]["attack_norm"] == "inf"
    assert DEFAULTS["train"]["amp"] == "auto" and DEFAULTS["train"]["channels_last"] == "auto"
    assert DEFAULTS["train"]["threads"] == "auto" and DEFAULTS["model"]["spectral_norm"] is False
    assert DEFAULTS["model"]["d_features"] is None and DEFAULTS["data"]["workers"] == 0
    for m in ["fd", "fid", "kid", "pr", "is", "modes", "w1"]:
        resolve(None, [f"log.metrics=[{m}]"])


def test_validate_does_not_change_the_config():
    cfg = merge(copy.deepcopy(DEFAULTS), {"reg": {"name": "ar", "attack": "pgd"}})
    cfg["reg"]["attack_norm"] = "inf"
    before = copy.deepcopy(cfg)
    validate(cfg)
    assert cfg == before
    cfg["reg"]["attack_norm"] = float("inf")  # not coerced by validate: it is an error there
    with pytest.raises(ConfigError, match="reg.attack_norm"):
        validate(cfg)
    assert cfg["reg"]["attack_norm"] == float("inf")


def test_nearest_key_suggestion_is_kept():
    with pytest.raises(ConfigError, match="did you mean 'reg.delta_inf'"):
        resolve(None, ["reg.delta_infinity=0.1"])
    with pytest.raises(ConfigError, match="did you mean 'train.channels_last'"):
        resolve(None, ["train.channel_last=true"])


def test_describe_keys_covers_every_key():
    rows = describe_keys("cifar10-resnet")
    flat = [k for k in _flat_keys(DEFAULTS) if not isinstance(_get(DEFAULTS, k), dict)]
    assert [r["key"] for r in rows] == flat == list(schema())
    by = {r["key"]: r for r in rows}
    assert by["reg.name"]["default"] == "none" and by["reg.name"]["preset_value"] == "rfm"
    assert by["train.steps"]["preset_value"] == 39100 and by["train.steps"]["type"] == "int >= 1"
    assert by["train.ema"]["type"] == "float in [0, 1)"
    assert by["train.threads"]["type"] == "auto or int >= 0"
    assert all(r["help"] and "\n" not in r["help"] for r in rows)
    assert all(r["preset_value"] is None for r in describe_keys())


def _get(d, dotted):
    for p in dotted.split("."):
        d = d[p]
    return d


def test_default_weights_come_from_the_registry():
    table = default_lambdas()
    assert table["gp"]["gan"] == 10.0 and table["ar"]["lsgan"] == 100.0 and table["rfm"]["wgan"] == 100.0
    assert table["r1"]["rpgan"] == 0.5 and "none" not in table and "noise" not in table
    assert regularizer_lambda(resolve(None, ["reg=rfm", "loss=hinge"])) == 1.0
    assert regularizer_lambda(resolve(None, ["reg=rfm", "reg.lam=3"])) == 3.0


def test_table4_command_runs_gp_on_the_loss():
    reg = build_regularizer(resolve("fmnist-dcgan", ["reg=gp", "reg.target=loss"]))
    assert reg.name == "gp" and reg.target == "loss" and reg.lam == 10.0


def test_gamma_follows_the_pixel_range():
    """r1's lam is gamma for [0, 1] images; for [-1, 1] images ||grad||^2 is 4x smaller, so gamma x 4."""
    assert build_regularizer(resolve("fmnist-dcgan", ["reg=r1"])).lam == 0.5
    assert build_regularizer(resolve("fmnist-dcgan", ["reg=r1", "model.out_range=tanh"])).lam == 2.0
    reg = build_regularizer(resolve("fmnist-dcgan", ["reg=ar", "reg.attack=fgsm", "model.out_range=tanh",
                                                     "reg.delta_inf=0.01"]))
    assert reg.delta == pytest.approx(0.1) and reg.delta_inf == pytest.approx(0.02)


def test_presets_are_valid():
    from robustgan.train.config import preset_names
    for name in preset_names():
        resolve(name)
    yaml.safe_dump(resolve("toy-8gaussians"))
