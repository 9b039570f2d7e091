"""Checkpoints: written atomically (temp file, fsync, rename), the last few kept, loaded safely.

A checkpoint holds only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``: networks, EMA, optimiser states, step counters, the random
number generator states of torch, numpy and python (one set per process) and the resolved config.
"""
from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from ..fileio import atomic_open

_NAME = re.compile(r"^ckpt-(\d+)\.pt$")
#: a temporary file of :func:`robustgan.fileio.atomic_open`: ``<name>.<8 random characters>.tmp``
_TEMPORARY = re.compile(r"^.+\.[a-z0-9_]{8}\.tmp$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be written or does not fit the model (printed as one line)."""


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Checkpoints of a run, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync it, then rename over ``path``."""
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _is_write_failure(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return True
    # torch's zip writer reports a failed write as a RuntimeError from inline_container.cc
    # ("unexpected pos 704 vs 598", "PytorchStreamWriter failed writing file ...").
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("inline_container", "PytorchStreamWriter", "unexpected pos", "file write failed"))


def save_checkpoint(run_dir: str | Path, step: int, state: dict, keep: int = 3) -> Path:
    """Write ``state`` as ``checkpoints/ckpt-<step>.pt`` atomically and prune to the last ``keep``.

    A failed write (disk full, quota, I/O error) raises :class:`CheckpointError` with one line
    naming the folder and its free space; the temporary file is removed and the earlier
    checkpoints are left as they were (pruning happens only after a successful write).
    """
    path = checkpoint_dir(run_dir) / f"ckpt-{step:08d}.pt"
    try:
        atomic_torch_save(state, path)
    except (OSError, RuntimeError) as exc:
        if not _is_write_failure(exc):
            raise
        folder = path.parent
        try:
            free = f"{_size(shutil.disk_usage(folder).free)} free there"
        except OSError:
            free = "free space unknown"
        text = str(exc).strip()
        reason = getattr(exc, "strerror", None) or (text.splitlines()[0] if text else type(exc).__name__)
        kept = latest_checkpoint(run_dir)
        intact = f"the last checkpoint ({kept.name}) is intact" if kept else "no earlier checkpoint exists"
        raise CheckpointError(f"could not write checkpoint {path.name} in {folder} ({reason}; {free}); {intact}. "
                              f"Free some space (or lower log.keep) and resume with robustgan train --resume "
                              f"{run_dir}") from None
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a corrupt or unsafe file is a one-line error.

    A file that asks the unpickler for anything but tensors and plain values (a function, a
    class) is refused, with the name it asked for; the message does not suggest loading it
    unsafely, since such a file was not written by robustgan.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # truncated zip, foreign pickle, ...
        text = str(exc)
        if "Weights only load failed" in text or "weights_only" in text:
            # PyTorch's message suggests retrying unsafely; pass on only what the file asked for.
            lines = [ln.strip() for ln in text.splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
            asked = f" ({lines[0]})" if lines else ""
            raise ValueError(f"{path}: refusing to load, the file asks to build objects other than tensors and "
                             f"plain values{asked}; it is not a robustgan checkpoint (a pickle can run code), "
                             f"delete it") from None
        first = text.splitlines()[0] if text else ""
        raise ValueError(f"{path}: not a readable robustgan checkpoint ({type(exc).__name__}: "
                         f"{first}); delete it to resume from the one before") from None


def clean_temporaries(run_dir: str | Path) -> list[Path]:
    """Remove the temporary files of killed atomic writes in a run folder; return what was removed.

    :func:`robustgan.fileio.atomic_open` writes ``NAME.<8 random characters>.tmp`` beside the
    file and renames it when done, so such a file is left only by a write that was killed. Call
    this while holding the folder's :class:`robustgan.train.rundir.RunLock`: no other process
    then writes in the folder, so every temporary file found there is a leftover, not a write in
    progress. Looks in the run folder, ``checkpoints/`` and ``samples/``.
    """
    run_dir = Path(run_dir)
    removed = []
    for folder in (run_dir, run_dir / "checkpoints", run_dir / "samples"):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if _TEMPORARY.match(p.name) and p.is_file():
                try:
                    p.unlink()
                    removed.append(p)
                except FileNotFoundError:
                    pass
    return removed


def _describe_model(cfg: dict | None) -> dict:
    """The settings that fix the networks' shapes, flattened (``model.width``, ``data.img_size`` ...)."""
    cfg = cfg or {}
    out = {f"model.{k}": v for k, v in (cfg.get("model") or {}).items()}
    data = cfg.get("data") or {}
    for k in ("name", "img_size"):
        if k in data:
            out[f"data.{k}"] = data[k]
    return out


def load_module_state(module: torch.nn.Module, state_dict: dict, *, name: str, path: str | Path,
                      saved_cfg: dict | None = None, cfg: dict | None = None) -> None:
    """``module.load_state_dict(state_dict)`` with a one-line error for a checkpoint of another network.

    ``name`` says which network (``"G"``, ``"D"``); ``saved_cfg`` is the config stored in the
    checkpoint (its ``"config"`` key) and ``cfg`` the run's config: the message names the settings
    that differ (``checkpoint ... was written for model.width=32, the config says 64``).
    """
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as exc:
        saved, now = _describe_model(saved_cfg), _describe_model(cfg)
        diffs = [f"{k}={saved.get(k)!r}, the config says {now.get(k)!r}"
                 for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
        if diffs:
            what = f"was written for {'; '.join(diffs)}"
        else:
            missing = str(exc).count("Missing key") + str(exc).count("Unexpected key")
            shape = str(exc).count("size mismatch")
            what = (f"does not fit this {name} ({shape} tensors of another shape, {missing} lists of missing or "
                    f"unexpected keys)")
        raise CheckpointError(f"checkpoint {path} {what}; resume it with its own config (robustgan train "
                              f"--resume RUN) or start this config in another folder (--out)") from None


def rng_state() -> dict:
    """The current torch / numpy / python random states, as checkpoint-safe types."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": _py_state_to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _py_state_to_lists(st):
    version, internal, gauss = st
    return [version, list(internal), gauss]
