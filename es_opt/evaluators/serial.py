"""The serial evaluator: every evaluation in this process, one after the other."""

from __future__ import annotations

from typing import Any

from ..population import Population
from ._options import check_sync
from .base import Evaluation, Evaluator, evaluate_indices, stack_rows

__all__ = ["SerialEvaluator"]


class SerialEvaluator(Evaluator):
    """Evaluates the population in the calling process, on the model itself (the parameters are
    restored afterwards). The reference every other backend must match bit for bit.

    Args:
        sync: ``"center"``, the only way of a backend without workers (accepted, like every
            backend's ``sync``); ``"replay"`` needs workers and is a ``ValueError``.

    Example:
        >>> evaluator = SerialEvaluator(sync="center")
    """

    def __init__(self, *, sync: str = "center"):
        super().__init__()
        if check_sync(sync) != "center":
            raise ValueError(
                f"sync={sync!r} applies to the parallel backends, not SerialEvaluator, which "
                "evaluates on the model itself: use backend='multiprocess' or 'ray'"
            )
        self.sync = sync

    def evaluate(self, population: Population, samples: Any) -> Evaluation:
        if self.model is None or self.objective is None:
            raise RuntimeError("SerialEvaluator.evaluate called before bind(model, objective)")
        rows, stats = evaluate_indices(
            self.model, self.objective, population, samples, range(population.n_evals)
        )
        return Evaluation(stack_rows(rows), stats)
