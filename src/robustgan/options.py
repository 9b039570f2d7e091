"""Typed option declarations shared by the registries and the training configuration.

An :class:`Option` says what one setting is: its type, its default, its valid range and a
one-line description. The regularisers and attacks declare their settings with it
(:mod:`robustgan.regularizers`, :mod:`robustgan.attacks`), and :mod:`robustgan.train.config`
builds its schema from those declarations plus its own, so a value is checked once, before
anything runs, with a message that names the key.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ConfigError", "Option", "flatten"]

TYPES = ("int", "float", "bool", "str", "choice", "list")


class ConfigError(ValueError):
    """A bad configuration key or value (printed as one line by the command line)."""


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Option:
    """One setting.

    Attributes:
        type: "int", "float", "bool", "str", "choice" (one of ``choices``) or "list" (a list whose
            items are in ``choices``).
        default: the default value.
        help: one line for ``--list-keys`` and the docs.
        low, high: inclusive bounds of a number (None: unbounded); ``low_open`` / ``high_open``
            exclude the bound itself.
        choices: the valid values of a "choice" or the valid items of a "list".
        nullable: ``None`` (YAML ``null``) is also valid (its meaning is in ``help``).
        special: extra literal values that are valid as well, e.g. ``("auto",)`` for a number.
    """

    type: str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    nullable: bool = False
    special: tuple = field(default_factory=tuple)

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"unknown option type {self.type!r}")

    # ---------------------------------------------------------------- description
    def type_name(self) -> str:
        """A short human-readable type, e.g. ``int >= 1``, ``float in [0, 1)``, ``fgm|pgd``."""
        if self.type == "choice":
            text = "|".join("null" if c is None else str(c).lower() if isinstance(c, bool) else str(c)
                            for c in self.choices)
        elif self.type == "list":
            text = f"list of {'|'.join(map(str, self.choices))}"
        else:
            text = self.type + self._range_text()
        if self.special:
            text = "|".join(map(str, self.special)) + " or " + text
        if self.nullable:
            text += " or null"
        return text

    def _range_text(self) -> str:
        lo, hi = self.low, self.high
        if lo is None and hi is None:
            return ""
        if hi is None:
            return f" {'>' if self.low_open else '>='} {lo:g}"
        if lo is None:
            return f" {'<' if self.high_open else '<='} {hi:g}"
        return f" in {'(' if self.low_open else '['}{lo:g}, {hi:g}{')' if self.high_open else ']'}"

    # ---------------------------------------------------------------- checking
    def coerce(self, value):
        """``value`` as this option's type where the reading is unambiguous (YAML reads ``1e-3``
        as a string); otherwise ``value`` unchanged (``check`` then rejects it)."""
        if isinstance(value, str) and self.type in ("int", "float") and value not in self.special:
            for kind in ((int, float) if self.type == "int" else (float,)):
                try:
                    return kind(value)
                except ValueError:
                    pass
        if self.type == "float" and _is_number(value) and not isinstance(value, float):
            return float(value)
        if self.type == "choice" and value not in self.choices:
            for c in self.choices:
                if isinstance(c, bool):  # YAML booleans written as words, e.g. channels_last: "true"
                    if isinstance(value, str) and value.lower() == str(c).lower():
                        return c
                elif isinstance(c, int) and not isinstance(value, bool):  # attack_norm: 2.0 or "2" -> 2
                    if (_is_number(value) and value == c) or (isinstance(value, str) and value.strip() == str(c)):
                        return c
                elif c == "inf" and _is_number(value) and value == math.inf:  # YAML .inf
                    return c
        return value

    def check(self, key: str, value) -> None:
        """Raise :class:`ConfigError` naming ``key`` if ``value`` is not valid (never changes it)."""
        if value is None and self.nullable:
            return
        if self.special and isinstance(value, str) and value in self.special:
            return
        bad = self._problem(value)
        if bad:
            raise ConfigError(f"{key}={value!r} is not valid; {bad}")

    def _problem(self, value) -> str | None:
        want = f"expected {self.type_name()}"
        if self.type == "bool":
            return None if isinstance(value, bool) else want
        if self.type == "str":
            return None if isinstance(value, str) and value else want
        if self.type == "choice":
            ok = any(value == c and type(value) is type(c) or (value is None and c is None) for c in self.choices)
            names = ["null" if c is None else str(c).lower() if isinstance(c, bool) else str(c) for c in self.choices]
            return None if ok else f"choose one of {', '.join(names)}"
        if self.type == "list":
            if not isinstance(value, (list, tuple)) or not value:
                return f"expected a non-empty list such as [{', '.join(map(str, self.choices[:2]))}]"
            bad = [v for v in value if v not in self.choices]
            if bad:
                return f"unknown {', '.join(map(repr, bad))}; choose from {', '.join(map(str, self.choices))}"
            return None
        # numbers
        if self.type == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
            return want
        if self.type == "float" and not (_is_number(value) and math.isfinite(value)):
            return want
        lo, hi = self.low, self.high
        if lo is not None and (value < lo or (self.low_open and value == lo)):
            return want
        if hi is not None and (value > hi or (self.high_open and value == hi)):
            return want
        return None


def flatten(d: dict, prefix: str = "") -> dict:
    """A nested config as dotted keys: ``{"reg": {"name": "rfm"}}`` -> ``{"reg.name": "rfm"}``.

    Only the leaves are keys (a section is not); ``prefix`` is put before every key. An empty
    section leaves no key.
    """
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
