"""The training loop behind :meth:`ESOptimizer.fit <es_opt.ESOptimizer.fit>`, and the
:class:`Callback` interface it reports to.

``fit`` is a convenience: the hand-written loop ``for g in range(n): es.gradient_step(samples)``
does exactly the same steps. ``fit`` adds the callbacks (progress bar, loggers, checkpoints, early
stopping: :mod:`es_opt.training.callbacks`) and a stop condition, and collects every step's
:class:`~es_opt.StepResult` into a :class:`~es_opt.History`.

This module sits below :mod:`es_opt.optimizer` (which calls it), so it names the optimizer only
as ``es``: any object with ``generation`` and ``gradient_step(samples)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._validation import check_int
from .history import History
from .result import StepResult

__all__ = ["Callback", "fit"]

ES = Any
"""The optimizer a loop drives: an :class:`~es_opt.ESOptimizer` (not imported here, to keep the
layers one-way)."""


class Callback:
    """Base class: override the hooks you need; the defaults do nothing.

    Example:
        >>> class PrintBest(Callback):
        ...     def on_step(self, es, result):
        ...         print(result.generation, max(result.fitness_max))
        ...         return result.fitness_max[0] >= 500  # True stops the run
    """

    def on_start(self, es: ES, generations: int) -> None:
        """Before the first step; ``generations`` is how many steps the run may take."""

    def on_step(self, es: ES, result: StepResult) -> bool | None:
        """After every step; return ``True`` to stop the run."""
        return None

    def on_end(self, es: ES, history: History) -> None:
        """Once at the end, also when a step raised (``history.exception`` is then set)."""


def fit(
    es: ES,
    samples_fn: Callable[[int], Any] | None = None,
    generations: int = 100,
    callbacks: Sequence[Callback] = (),
    stop_when: Callable[[StepResult], bool] | None = None,
) -> History:
    """Runs up to ``generations`` ES steps on ``es`` and returns their :class:`History`.

    Args:
        es: the optimizer.
        samples_fn: ``samples_fn(generation) -> samples`` builds each step's samples (a minibatch,
            environment seeds); derive any randomness from ``generation`` so that a resumed run
            sees the same samples. ``None`` passes ``samples=None``.
        generations: how many steps this call runs (≥ 0); a resumed optimizer continues from its
            own ``es.generation``.
        callbacks: :class:`~es_opt.Callback` objects; each sees every step's result, in
            order, and may stop the run by returning ``True`` from ``on_step``.
        stop_when: ``stop_when(result) -> bool``; ``True`` ends the run after that step.

    ``on_end`` of every callback runs however the loop ends (also when a step raises, in which case
    the exception is re-raised afterwards and ``history.exception`` holds it).

    Example:
        >>> import torch, es_opt
        >>> es = es_opt.ESOptimizer(torch.nn.Linear(2, 1), objective_fn=lambda m, s: 0.0,
        ...                         n_samples=4)
        >>> history = fit(es, generations=3, stop_when=lambda r: r.generation == 1)
        >>> len(history), history.stop_reason
        (2, 'stop_when returned True at generation 1')
    """
    if samples_fn is not None and not callable(samples_fn):
        raise TypeError(
            "samples_fn must be a callable generation -> samples (e.g. lambda generation: "
            f"samples) or None, got {type(samples_fn).__name__}"
        )
    generations = check_int("generations", generations, low=0)
    if stop_when is not None and not callable(stop_when):
        raise TypeError(f"stop_when must be a callable result -> bool, got {stop_when!r}")
    callbacks = _check_callbacks(callbacks)

    history = History()
    started: list[Callback] = []
    try:
        for callback in callbacks:
            callback.on_start(es, generations)
            started.append(callback)
        for _ in range(generations):
            samples = samples_fn(es.generation) if samples_fn is not None else None
            result = es.gradient_step(samples)
            history.append(result)
            stoppers = [cb for cb in callbacks if cb.on_step(es, result)]
            if stoppers:
                history.stop_reason = _reason(stoppers[0], result)
                break
            if stop_when is not None and stop_when(result):
                history.stop_reason = f"stop_when returned True at generation {result.generation}"
                break
    except BaseException as exc:
        history.exception = exc
        history.stop_reason = f"error: {type(exc).__name__}: {exc}"
        _end(started, es, history, raising=True)
        raise
    _end(started, es, history, raising=False)
    return history


def _reason(callback: Callback, result: StepResult) -> str:
    reason = getattr(callback, "reason", None)
    return reason or f"{type(callback).__name__} stopped at generation {result.generation}"


def _end(callbacks: list[Callback], es: ES, history: History, *, raising: bool) -> None:
    """Every callback's ``on_end`` runs even if an earlier one fails; the first failure is
    re-raised, unless an exception is already on its way out of ``fit``."""
    failure: BaseException | None = None
    for callback in callbacks:
        try:
            callback.on_end(es, history)
        except Exception as exc:
            failure = failure or exc
    if failure is not None and not raising:
        raise failure


def _check_callbacks(callbacks: Any) -> list[Callback]:
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise TypeError(
            f"callbacks must be a list of Callback objects, got {callbacks!r}"
        ) from None
    for i, callback in enumerate(callbacks):
        if not isinstance(callback, Callback):
            raise TypeError(
                f"callbacks[{i}] must be an es_opt.Callback (subclass it and override "
                f"on_step), got {type(callback).__name__}"
            )
    return callbacks
