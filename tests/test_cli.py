"""The `robustgan` command's habits: help, version, one-line errors that name real flags and keys."""
import argparse
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import robustgan
from robustgan.cli import SUBCOMMANDS, main
from robustgan.train.config import DEFAULTS

SRC = Path(__file__).resolve().parents[1] / "src"


def listed(text):
    return all(re.search(rf"^\s+{name}\s", text, flags=re.M) for name in SUBCOMMANDS)


@pytest.mark.parametrize("argv", [[], ["help"], ["-h"], ["--help"]])
def test_help_lists_every_subcommand_and_exits_0(argv, capsys):
    if argv and argv[0].startswith("-"):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
    else:
        assert main(argv) == 0  # bare `robustgan` prints help; it does not start a job
    out = capsys.readouterr().out
    assert listed(out) and "robustgan train" in out


def test_bare_command_in_a_fresh_process_starts_nothing(tmp_path):
    r = subprocess.run([sys.executable, "-m", "robustgan"], cwd=tmp_path, capture_output=True, text=True,
                       env={"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}, timeout=120)
    assert r.returncode == 0 and listed(r.stdout) and not (tmp_path / "runs").exists()


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"robustgan {robustgan.__version__}"


def test_help_command_shows_a_subcommands_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["help", "generate"])
    assert e.value.code == 0 and "--seeds" in capsys.readouterr().out


def test_unknown_command_is_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["trian"])
    assert e.value.code == 2 and "unknown command 'trian'" in capsys.readouterr().err


def test_import_is_cheap():
    code = "import sys, robustgan; print('torch' in sys.modules, robustgan.__version__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": str(SRC)}, timeout=60)
    assert r.stdout.split() == ["False", robustgan.__version__]
    assert robustgan.load_generator.__module__ == "robustgan.train.sample"
    assert set(robustgan.__all__) <= set(dir(robustgan))


def _flags(command):
    parser = argparse.ArgumentParser()
    importlib.import_module(SUBCOMMANDS[command][0]).add_arguments(parser)
    return {s for a in parser._actions for s in a.option_strings}


def _keys(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _keys(v, f"{prefix}{k}.")
        else:
            yield prefix + k


def assert_hint_is_real(msg):
    """Every `--flag` in a hint is a flag of the command it names (train by default), every
    `a.b=` a config key."""
    keys = set(_keys(DEFAULTS))
    for key in re.findall(r"\b([a-z_]+\.[a-z_]+)=", msg):
        assert key in keys, f"{key} in {msg!r} is not a config key"
    for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*", msg):
        assert flag in _flags("train"), f"{flag} in {msg!r} is not a flag of robustgan train"
    for command in re.findall(r"robustgan ([a-z]+)", msg):
        assert command in SUBCOMMANDS


def test_data_error_hints_name_real_keys(tmp_path, monkeypatch):
    from robustgan.data.images import _download_hint, load_folder
    with pytest.raises(ValueError) as e:
        load_folder(None)
    assert "data.root=" in str(e.value)
    assert_hint_is_real(str(e.value))
    hint = _download_hint("mnist")
    assert "data.download=true" in hint and "robustgan download mnist" in hint
    assert_hint_is_real(hint)


def test_user_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["generate", str(tmp_path), "--seeds", "x", "--outdir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("robustgan generate: error: --seeds")
