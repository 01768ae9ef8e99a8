"""A griffe extension for the API reference: es_opt's docstrings title their doctest section
``Example:`` (singular), which griffe's Google parser does not know; it is renamed ``Examples:`` so
that the ``>>>`` lines render as code (with their output) instead of as Markdown text."""

from __future__ import annotations

import re
from typing import Any

import griffe

_TITLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _TITLE.sub(r"\1Examples:", obj.docstring.value)
