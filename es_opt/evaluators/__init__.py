"""Evaluation engines behind one small contract (see :mod:`es_opt.evaluators.base`).

``serial`` is always available; ``multiprocess`` and ``ray`` are imported only when asked for, so
importing es_opt never imports Ray.
"""

from __future__ import annotations

from typing import Any

from ._choice import BACKENDS, resolve_backend
from .base import Evaluation, Evaluator, evaluate_indices, stack_rows
from .serial import SerialEvaluator

__all__ = [
    "Evaluation",
    "Evaluator",
    "SerialEvaluator",
    "evaluate_indices",
    "make_evaluator",
    "resolve_backend",
    "stack_rows",
]


def make_evaluator(backend: str | Evaluator, **options: Any) -> Evaluator:
    """Builds the evaluator named by ``backend`` (or returns an :class:`Evaluator` instance as is).

    Options that do not apply to the chosen backend are ignored when they hold their default
    (``None``); :func:`resolve_backend` turns a user's arguments into ``backend`` and options.

    Example:
        >>> type(make_evaluator("serial")).__name__
        'SerialEvaluator'
    """
    if isinstance(backend, Evaluator):
        return backend
    if backend == "serial":
        return SerialEvaluator()
    if backend == "multiprocess":
        from .pool import PoolEvaluator

        return PoolEvaluator(**{k: v for k, v in options.items() if v is not None})
    if backend == "ray":
        from .ray_backend import RayEvaluator

        return RayEvaluator(**{k: v for k, v in options.items() if v is not None})
    raise ValueError(
        f"backend must be one of {', '.join(repr(b) for b in BACKENDS)} or an Evaluator instance, "
        f"got {backend!r}"
    )
