"""Option types whose errors say what was expected."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # click >= 8.2 types ParamType by its values; 8.1 does not subscript it
    _FloatType = click.ParamType[float, Any]
    _IntType = click.ParamType[int, Any]
else:
    _FloatType = _IntType = click.ParamType

__all__ = ["FiniteFloat", "WholeNumber"]


class FiniteFloat(_FloatType):
    """A finite number, at least ``min`` (strictly above it with ``min_open``)."""

    name = "number"

    def __init__(self, min: float | None = None, *, min_open: bool = False) -> None:
        self.min = min
        self.min_open = min_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """``value`` as a float, or a usage error saying what was expected."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        else:
            try:
                number = float(str(value).strip())
            except ValueError:
                self.fail(f"expected a number, got {value!r}", param, ctx)
        if not math.isfinite(number):
            self.fail(f"expected a finite number, got {value!r}", param, ctx)
        if self.min is not None and (number < self.min or (self.min_open and number == self.min)):
            bound = f"> {self.min:g}" if self.min_open else f">= {self.min:g}"
            self.fail(f"expected a number {bound}, got {value!r}", param, ctx)
        return number


class WholeNumber(_IntType):
    """A whole number of at least ``min``."""

    name = "integer"

    def __init__(self, min: int | None = None) -> None:
        self.min = min

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """``value`` as an int, or a usage error saying what was expected."""
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                self.fail(f"expected a whole number, got {value!r}", param, ctx)
        if self.min is not None and number < self.min:
            self.fail(f"expected a whole number >= {self.min}, got {value!r}", param, ctx)
        return number
