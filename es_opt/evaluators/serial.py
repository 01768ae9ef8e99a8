"""The serial evaluator: every evaluation in this process, one after the other."""

from __future__ import annotations

from typing import Any

from ..population import Population
from .base import Evaluation, Evaluator, evaluate_indices, stack_rows

__all__ = ["SerialEvaluator"]


class SerialEvaluator(Evaluator):
    """Evaluates the population in the calling process, on the model itself (the parameters are
    restored afterwards). The reference every other backend must match bit for bit.

    Example:
        >>> evaluator = SerialEvaluator()
    """

    def evaluate(self, population: Population, samples: Any) -> Evaluation:
        if self.model is None or self.objective is None:
            raise RuntimeError("SerialEvaluator.evaluate called before bind(model, objective)")
        rows, stats = evaluate_indices(
            self.model, self.objective, population, samples, range(population.n_evals)
        )
        return Evaluation(stack_rows(rows), stats)
