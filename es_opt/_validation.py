"""The one vocabulary of argument checks: each function returns the normalised value or raises
``TypeError`` (wrong kind) / ``ValueError`` (wrong value) with a message that names the argument
and shows the value, before the caller changes any state.

Messages read ``"<name> must be <what>, got <type> <value>"`` everywhere in es_opt, so a user
sees one style whichever class rejected the input.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

__all__ = ["is_int", "is_real", "check_int", "check_optional_int", "check_real", "check_choice"]


def is_int(value: Any) -> bool:
    """An integer that is not a bool (``True`` is an ``int`` in Python).

    Example:
        >>> is_int(3), is_int(True), is_int(3.0)
        (True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A real number that is not a bool.

    Example:
        >>> is_real(0.5), is_real(2), is_real(False), is_real("1")
        (True, True, False, False)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return " and ".join(parts)


def check_int(
    name: str, value: Any, *, low: int | None = 1, high: int | None = None, even: bool = False
) -> int:
    """``value`` as an ``int`` in ``[low, high]`` (and even when ``even``).

    Example:
        >>> check_int("n_workers", 2)
        2
        >>> check_int("n_workers", 0)
        Traceback (most recent call last):
        ...
        ValueError: n_workers must be an int >= 1, got 0
    """
    what = " ".join(x for x in ("an even int" if even else "an int", _bounds(low, high, 0, 0)) if x)
    if not is_int(value):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}")
    if (low is not None and value < low) or (high is not None and value > high) or value % 2 * even:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def check_optional_int(name: str, value: Any, *, low: int | None = 1) -> int | None:
    """``None``, or ``value`` checked by :func:`check_int` (message says ``or None``).

    Example:
        >>> check_optional_int("max_batch", None) is None
        True
    """
    if value is None:
        return None
    if not is_int(value) or (low is not None and value < low):
        bound = "" if low is None else f" >= {low}"
        kind = TypeError if not is_int(value) else ValueError
        raise kind(f"{name} must be an int{bound} or None, got {type(value).__name__} {value!r}")
    return int(value)


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite ``float`` within the bounds (open or closed).

    Example:
        >>> check_real("sigma", 0.1, low=0, low_open=True)
        0.1
        >>> check_real("sigma", 0.0, low=0, low_open=True)
        Traceback (most recent call last):
        ...
        ValueError: sigma must be a finite number > 0, got 0.0
    """
    bounds = _bounds(low, high, low_open, high_open)
    what = f"a finite number {bounds}".rstrip()
    if not is_real(value):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}")
    number = float(value)
    ok = math.isfinite(number)
    if ok and low is not None:
        ok = number > low if low_open else number >= low
    if ok and high is not None:
        ok = number < high if high_open else number <= high
    if not ok:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return number


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``.

    Example:
        >>> check_choice("backend", "ray", ("serial", "ray"))
        'ray'
    """
    choices = tuple(choices)
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value
