"""Errors any layer may raise for bad user input; the command line prints them as one line.

:class:`UserError` lives here, at the bottom of the package, so that the modules below the
command line (executors, grids) can raise it without importing :mod:`robustgan.cli`.
Bad configuration values raise :class:`robustgan.options.ConfigError` (a ``ValueError``).
"""
from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """An error caused by the user's input; printed as one line."""
