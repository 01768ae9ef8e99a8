"""``History``: the :class:`~es_opt.StepResult` of every step of a run, with its columns as
NumPy arrays (what :meth:`ESOptimizer.fit <es_opt.ESOptimizer.fit>` returns)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np

from .result import StepResult

__all__ = ["History"]


class History(Sequence[StepResult]):
    """The :class:`~es_opt.StepResult` of every step a :func:`~es_opt.loop.fit` call ran, in
    order, with the columns as NumPy arrays.

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
