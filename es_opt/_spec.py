"""One grammar for options written as strings: ``name`` or ``name(value)``.

``perturbation="lowrank(4)"`` and ``shaping="top_pairs(8)"`` read like the constructor calls they
stand for (``LowRank(rank=4)``, ``TopPairs(k=8)``), and the string a family or a shaping reports
as its ``spec`` (what ``ESOptimizer.state_dict`` stores) is written the same way. Spellings of
earlier releases (``"lowrank:4"``, ``"low_rank"``, ``"LowRank"``) still parse, with a
:class:`DeprecationWarning` naming the new spelling; anything else is a ``ValueError`` naming the
argument and the value, raised before anything changes.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Form", "format_spec", "parse_spec", "user_stacklevel"]

_SPEC = re.compile(
    r"\s*(?P<name>[A-Za-z_][\w-]*)\s*"
    r"(?:\(\s*(?P<paren>[^()]*?)\s*\)|(?P<colon>:)\s*(?P<after>[^()]*?))?\s*"
)
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


@dataclass(frozen=True)
class Form:
    """A name an option accepts: alone, or with one positive-int value in parentheses.

    Attributes:
        name: the spelling to write.
        value: the value's name in messages (``"R"``, ``"k"``), or ``None`` for a bare name.
        default: the value when ``name`` is written alone; ``None``: the value is required.
        old_names: earlier spellings of ``name``, accepted with a warning (any letter case of
            ``name`` is one too).

    Example:
        >>> Form("lowrank", "R", default=1).usage()
        ["'lowrank'", "'lowrank(R)'"]
    """

    name: str
    value: str | None = None
    default: int | None = None
    old_names: tuple[str, ...] = ()

    def usage(self) -> list[str]:
        """How the form is written, for messages."""
        if self.value is None:
            return [repr(self.name)]
        with_value = repr(f"{self.name}({self.value})")
        return [repr(self.name), with_value] if self.default is not None else [with_value]


def format_spec(name: str, *values: int) -> str:
    """``name`` or ``name(v1, v2, …)``: the one way a spec is written.

    Example:
        >>> format_spec("lowrank", 4), format_spec("dense")
        ('lowrank(4)', 'dense')
    """
    return f"{name}({', '.join(str(v) for v in values)})" if values else name


def parse_spec(
    text: str,
    argument: str,
    forms: Sequence[Form],
    *,
    alternatives: str = "",
    warn: bool = True,
) -> tuple[Form, int | None]:
    """The form ``text`` names and its value (the default when none is written; ``None`` for a
    bare name).

    Args:
        text: what the user wrote.
        argument: the argument's name, for messages (``"perturbation"``).
        forms: the accepted forms.
        alternatives: what else the argument takes, for messages (``" or a function"``).
        warn: emit a :class:`DeprecationWarning` for an earlier spelling (``False`` when reading
            what an earlier release saved, which the user did not write).

    Raises:
        ValueError: ``text`` names no form, misses a required value, gives a value to a bare
            name, or its value is not a positive int.

    Example:
        >>> parse_spec("lowrank(4)", "perturbation", [Form("dense"), Form("lowrank", "R", 1)])
        (Form(name='lowrank', value='R', default=1, old_names=()), 4)
        >>> parse_spec("lowrank()", "perturbation", [Form("lowrank", "R", 1)])
        Traceback (most recent call last):
        ...
        ValueError: perturbation must be one of 'lowrank', 'lowrank(R)', got 'lowrank()': R is missing
    """  # noqa: E501
    choices = ", ".join(usage for form in forms for usage in form.usage())

    def refuse(why: str = "") -> ValueError:
        reason = f": {why}" if why else ""
        return ValueError(
            f"{argument} must be one of {choices}{alternatives}, got {text!r}{reason}"
        )

    match = _SPEC.fullmatch(text)
    if match is None:
        raise refuse()
    written = match["name"]
    form = _find(written, forms)
    if form is None:
        raise refuse()
    raw = match["paren"] if match["paren"] is not None else match["after"]
    if raw is None:  # the name alone
        if form.value is not None and form.default is None:
            raise refuse(f"{form.name} needs {form.value}: {form.name}({form.value})")
        value = form.default
        canonical = form.name
    else:
        if form.value is None:
            raise refuse(f"{form.name!r} takes no value")
        if not raw:
            raise refuse(f"{form.value} is missing")
        if not raw.isdigit() or int(raw) < 1:
            raise refuse(f"{form.value} must be a positive int, got {raw!r}")
        value = int(raw)
        canonical = format_spec(form.name, value)
    if warn and re.sub(r"\s", "", text) != canonical:
        warnings.warn(
            f"{argument}={text!r} is deprecated: write {argument}={canonical!r}",
            DeprecationWarning,
            stacklevel=user_stacklevel(),
        )
    return form, value


def _find(written: str, forms: Sequence[Form]) -> Form | None:
    lowered = written.lower()
    for form in forms:
        if lowered in (form.name.lower(), *(old.lower() for old in form.old_names)):
            return form
    return None


def user_stacklevel() -> int:
    """The ``stacklevel`` of :func:`warnings.warn` that points at the first frame outside es_opt,
    so that a warning names the user's line (and shows by default when that is ``__main__``)."""
    frame = sys._getframe(1)  # the function that warns: stacklevel 1
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    return level
