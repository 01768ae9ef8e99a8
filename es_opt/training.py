"""The training loop behind :meth:`ESOptimizer.fit <es_opt.ESOptimizer.fit>`, and
:class:`History`, what it returns.

``fit`` is a convenience: the hand-written loop ``for g in range(n): es.gradient_step(samples)``
does exactly the same steps. ``fit`` adds the callbacks (progress bar, loggers, checkpoints, early
stopping) and a stop condition, and collects every step's :class:`~es_opt.StepResult`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from .result import StepResult

if TYPE_CHECKING:
    from .callbacks import Callback
    from .optimizer import ESOptimizer

__all__ = ["History", "fit"]


class History(Sequence[StepResult]):
    """The :class:`~es_opt.StepResult` of every step a :func:`fit` call ran, in order, with the
    columns as NumPy arrays.

    Attributes:
        results: the step results (the sequence itself: ``history[i]``, ``len(history)``).
        stop_reason: why the loop ended: ``"completed"``, the message of the callback or of
            ``stop_when`` that stopped it, or ``"error: ..."`` when a step raised.
        exception: the exception that ended the loop (re-raised by ``fit``), or ``None``.

    Example:
        >>> r = StepResult(0, 4, (1.0,), (2.0,), (0.0,), 0.5, 0.01, 0.02, ("0",))
        >>> h = History([r, r])
        >>> h.fitness_mean.shape, h.generation.tolist(), h.best(0)
        ((2, 1), [0, 0], 2.0)
    """

    def __init__(self, results: Sequence[StepResult] = ()):
        self.results: list[StepResult] = list(results)
        self.stop_reason: str = "completed"
        self.exception: BaseException | None = None

    @overload
    def __getitem__(self, index: int) -> StepResult: ...

    @overload
    def __getitem__(self, index: slice) -> list[StepResult]: ...

    def __getitem__(self, index):
        return self.results[index]

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[StepResult]:
        return iter(self.results)

    def __repr__(self) -> str:
        if not self.results:
            return f"History(0 steps, {self.stop_reason!r})"
        first, last = self.results[0].generation, self.results[-1].generation
        return f"History({len(self)} steps, generations {first}..{last}, {self.stop_reason!r})"

    def append(self, result: StepResult) -> None:
        self.results.append(result)

    # -- columns ------------------------------------------------------------------------------
    @property
    def n_objectives(self) -> int:
        return len(self.results[0].fitness_mean) if self.results else 0

    def _column(self, name: str) -> np.ndarray:
        return np.array([getattr(r, name) for r in self.results], dtype=np.float64)

    def _matrix(self, name: str) -> np.ndarray:
        values = [getattr(r, name) for r in self.results]
        return np.array(values, dtype=np.float64).reshape(len(values), self.n_objectives)

    @property
    def generation(self) -> np.ndarray:
        """``[steps]`` generation numbers (int64)."""
        return np.array([r.generation for r in self.results], dtype=np.int64)

    @property
    def fitness_mean(self) -> np.ndarray:
        """``[steps, n_objectives]`` mean raw fitness of each generation's population."""
        return self._matrix("fitness_mean")

    @property
    def fitness_max(self) -> np.ndarray:
        """``[steps, n_objectives]`` best raw fitness in each generation's population."""
        return self._matrix("fitness_max")

    @property
    def fitness_min(self) -> np.ndarray:
        """``[steps, n_objectives]`` worst raw fitness in each generation's population."""
        return self._matrix("fitness_min")

    @property
    def grad_norm(self) -> np.ndarray:
        return self._column("grad_norm")

    @property
    def eval_time(self) -> np.ndarray:
        return self._column("eval_time")

    @property
    def step_time(self) -> np.ndarray:
        return self._column("step_time")

    @property
    def evals_per_second(self) -> np.ndarray:
        return self._column("evals_per_second")

    def best(self, objective: int = 0) -> float:
        """The highest population maximum of ``objective`` seen so far (``nan`` if empty)."""
        if not self.results:
            return float("nan")
        return float(self.fitness_max[:, objective].max())

    def as_dicts(self) -> list[dict[str, float | int | str]]:
        """One flat dict per step (:meth:`StepResult.as_dict`), the rows a CSV logger writes."""
        return [r.as_dict() for r in self.results]


def fit(
    es: ESOptimizer,
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
        callbacks: :class:`~es_opt.callbacks.Callback` objects; each sees every step's result, in
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
    if (
        not isinstance(generations, numbers.Integral)
        or isinstance(generations, bool)
        or generations < 0
    ):
        raise ValueError(f"generations must be a non-negative int, got {generations!r}")
    if stop_when is not None and not callable(stop_when):
        raise TypeError(f"stop_when must be a callable result -> bool, got {stop_when!r}")
    callbacks = _check_callbacks(callbacks)

    history = History()
    started: list[Callback] = []
    try:
        for callback in callbacks:
            callback.on_start(es, int(generations))
            started.append(callback)
        for _ in range(int(generations)):
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


def _end(callbacks: list[Callback], es: ESOptimizer, history: History, *, raising: bool) -> None:
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
    from .callbacks import Callback

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
                f"callbacks[{i}] must be an es_opt.callbacks.Callback (subclass it and override "
                f"on_step), got {type(callback).__name__}"
            )
    return callbacks
