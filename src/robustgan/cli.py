"""The ``robustgan`` command. Each subcommand lives in its own module, imported only when used.

A subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int``. User errors
(bad options, missing data, unknown config keys, failed downloads) are raised as
:class:`UserError`, ``ValueError``, ``FileNotFoundError`` or ``DownloadError`` and printed as one
line, without a traceback; set ``ROBUSTGAN_DEBUG=1`` to see the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

#: subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "train": ("robustgan.train.cli", "train a GAN (default: a short Fashion-MNIST job)"),
    "sample": ("robustgan.train.sample", "draw a grid of samples from a run's checkpoint"),
    "eval": ("robustgan.metrics.cli", "evaluate a run's checkpoint (FD, KID, precision/recall)"),
    "dirac": ("robustgan.experiments.dirac", "the Dirac-GAN study (Figures 2 and 5 of the paper)"),
    "download": ("robustgan.data.download", "fetch and verify a data set (MNIST, Fashion-MNIST, CIFAR-10)"),
}


class UserError(Exception):
    """An error caused by the user's input; printed as one line."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="robustgan", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen subcommand's module is imported, so `robustgan dirac` does not load the trainer.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    modules = {}
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            modules[name] = importlib.import_module(module)
            modules[name].add_arguments(p)
    if not argv or argv[0] not in SUBCOMMANDS:
        if argv and not argv[0].startswith("-"):
            parser.error(f"unknown command {argv[0]!r}; choose one of {', '.join(SUBCOMMANDS)}")
        if not argv:
            # `robustgan` alone: the default job is `robustgan train`.
            argv = ["train"]
            return main(argv)
    args = parser.parse_args(argv)
    from .data.download import DownloadError

    try:
        return int(modules[args.command].run(args) or 0)
    except (UserError, ValueError, FileNotFoundError, KeyError, DownloadError) as exc:
        if os.environ.get("ROBUSTGAN_DEBUG"):
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"robustgan {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"robustgan {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
