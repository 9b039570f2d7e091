"""The ``robustgan`` command. Each subcommand lives in its own module, imported only when used.

``robustgan`` alone, ``robustgan help`` and ``robustgan -h`` list the subcommands;
``robustgan --version`` prints the version. A subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int``. User errors
(bad options, missing data, unknown config keys, failed downloads) are raised as
:class:`~robustgan.errors.UserError`, ``ValueError``, ``FileNotFoundError`` or ``DownloadError`` and printed as one
line, without a traceback; set ``ROBUSTGAN_DEBUG=1`` to see the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import UserError

#: subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "train": ("robustgan.train.cli", "train a GAN (default: a short Fashion-MNIST job)"),
    "sample": ("robustgan.train.sample", "draw a grid of samples from a run's checkpoint"),
    "generate": ("robustgan.generate", "write one PNG per seed from a run's checkpoint"),
    "eval": ("robustgan.evaluate_run", "evaluate a run's checkpoint (FD, KID, precision/recall)"),
    "dirac": ("robustgan.experiments.dirac", "the Dirac-GAN study (Figures 2 and 5 of the paper)"),
    "download": ("robustgan.data.download", "fetch and verify a data set (MNIST, Fashion-MNIST, CIFAR-10)"),
    "grid": ("robustgan.experiments.grid", "train a loss x regulariser grid (Tables 1 and 4, Appendix F)"),
    "sweep": ("robustgan.experiments.sweep", "the stability sweep over random setups (Table 2)"),
    "study": ("robustgan.experiments.studies", "the named studies behind docs/results.md: list, run, report"),
    "report": ("robustgan.experiments.report", "write an HTML/Markdown report of a grid or sweep folder"),
    "fd": ("robustgan.metrics.fd_cli", "metrics between two image sets: folders or named data sets (FD, KID, PR, IS)"),
}


def _top_parser() -> argparse.ArgumentParser:
    from . import __version__

    top = argparse.ArgumentParser(
        prog="robustgan", description="robustgan: GANs whose discriminator is robust to adversarial attacks",
        epilog="Run `robustgan COMMAND -h` for a command's options; `robustgan train` runs the default job "
               "(a short Fashion-MNIST GAN with robust feature matching).")
    top.add_argument("--version", action="version", version=f"robustgan {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text)
    sub.add_parser("help", help="show this list, or `robustgan help COMMAND` for a command's options")
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    top = _top_parser()
    if not argv:
        top.print_help()
        return 0
    if argv[0] == "help":
        if len(argv) > 1 and argv[1] in SUBCOMMANDS:
            argv = [argv[1], "--help"]
        else:
            top.print_help()
            return 0
    if argv[0] not in SUBCOMMANDS:
        if argv[0].startswith("-"):
            top.parse_args(argv[:1])  # --help, --version, or an error for an unknown option
        top.error(f"unknown command {argv[0]!r}; choose one of {', '.join(SUBCOMMANDS)}")
    command = argv[0]
    module_name, help_text = SUBCOMMANDS[command]
    # Only the chosen subcommand's module is imported, so `robustgan dirac` does not load the trainer.
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"robustgan {command}", description=help_text)
    module.add_arguments(parser)
    # intermixed: KEY=VALUE overrides may come before or after options
    args = parser.parse_intermixed_args(argv[1:])
    args.command = command
    from .data.download import DownloadError

    try:
        return int(module.run(args) or 0)
    except (UserError, ValueError, FileNotFoundError, KeyError, DownloadError) as exc:
        if os.environ.get("ROBUSTGAN_DEBUG"):
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"robustgan {command}: error: {msg}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"robustgan {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
