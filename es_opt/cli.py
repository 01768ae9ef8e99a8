"""Helpers for command-line entry points (the sample scripts,
``python -m es_opt.training.plot``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import EvaluationError, MissingExtraError

__all__ = ["run_main", "USER_ERRORS"]

USER_ERRORS = (ValueError, TypeError, FileNotFoundError, MissingExtraError, EvaluationError)
"""Errors a user can cause with flags, files or a missing extra: reported in one line."""


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Runs ``main(argv)``; a user error ends with ``prog: error: message`` on stderr and exit
    status 2 instead of a traceback (set ``ES_OPT_DEBUG=1`` to see the traceback).

    Example:
        >>> def main(argv):
        ...     raise ValueError("--sigma must be > 0, got -1.0")
        >>> run_main(main, [])  # doctest: +SKIP
        rl.py: error: --sigma must be > 0, got -1.0
        2
    """
    try:
        return main(argv)
    except USER_ERRORS as exc:
        if os.environ.get("ES_OPT_DEBUG"):
            raise
        prog = Path(sys.argv[0]).name or "es_opt"
        print(f"{prog}: error: {exc}", file=sys.stderr)
        print(f"{prog}: (set ES_OPT_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 2
