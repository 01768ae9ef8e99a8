"""The contract between :class:`~es_opt.ESOptimizer` and an evaluation engine.

An evaluator turns a :class:`~es_opt.population.Population` and the step's samples into a fitness
matrix. The whole contract:

- ``bind(model, objective)``: called once, before the first generation; a parallel evaluator ships
  the model and the objective to its workers here (or lazily, at its first ``evaluate``).
- ``evaluate(population, samples) -> Evaluation``: every evaluation of the generation, returned in
  evaluation order (index ``i`` in row ``i``). It must leave the model's parameters as it found
  them, raise :class:`~es_opt.EvaluationError` when an objective fails, and may raise
  ``ValueError``/``TypeError`` when an objective returns something unusable. NaN and ±inf are
  returned as they are: the optimizer applies its ``nonfinite`` policy to the whole generation.
  Row ``i`` must depend only on (center, seed, generation, i, samples): never on which worker
  ran it.
- ``follow(optimizer)`` and ``updated(population, fitness, rule)``: optional. The first is called
  once after ``bind``, the second after each update of the centre (with the population, its
  checked fitness and the :class:`~es_opt.update.UpdateRule`); a parallel evaluator with
  ``sync="replay"`` uses them so that its workers recompute each update instead of receiving the
  new centre. The defaults ignore both.
- ``close()``: releases workers; safe to call twice. Evaluators are context managers.

Example:
    >>> class Constant(Evaluator):
    ...     def evaluate(self, population, samples):
    ...         return Evaluation(torch.zeros(population.n_evals, 1), [None] * population.n_evals)
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..errors import EvaluationError
from ..fitness import as_fitness_row, stack_rows
from .batched import evaluate_population_indices, is_vectorized

if TYPE_CHECKING:
    from ..model import Model
    from ..objective import Objective
    from ..population import Population
    from ..update import UpdateRule

__all__ = ["Evaluator", "Evaluation", "evaluate_indices", "stack_rows"]


@dataclass
class Evaluation:
    """The result of evaluating a population: ``fitness`` is ``[n_evals, n_objectives]`` (float64),
    ``stats`` holds what ``objective.collect_stats()`` returned after each evaluation."""

    fitness: torch.Tensor
    stats: list[Any]


class Evaluator:
    """Base class of evaluation engines (see the module docstring for the contract)."""

    model: Model | None = None
    objective: Objective | None = None

    def bind(self, model: Model, objective: Objective) -> None:
        self.model = model
        self.objective = objective

    def evaluate(self, population: Population, samples: Any) -> Evaluation:
        raise NotImplementedError

    def follow(self, optimizer: Any) -> None:
        return None

    def updated(self, population: Population, fitness: torch.Tensor, rule: UpdateRule) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def evaluate_indices(
    model: Model, objective: Objective, population: Population, samples: Any, indices: Iterable[int]
) -> tuple[list[torch.Tensor], list[Any]]:
    """Evaluates the given members one at a time on ``model`` (in this process) and returns their
    fitness rows and stats, in the order of ``indices``.

    Parameters are restored to the center afterwards, and buffers (e.g. BatchNorm running
    statistics) after every evaluation, so that each evaluation sees the same net whatever ran
    before it. Objectives that define ``evaluate_population`` are evaluated a batch of members
    per call instead (:mod:`es_opt.evaluators.batched`).
    """
    if is_vectorized(objective):  # the objective evaluates a batch of members per call
        return evaluate_population_indices(model, objective, population, samples, indices)
    indices = list(indices)
    rows: list[torch.Tensor] = []
    stats: list[Any] = []
    if not indices:
        return rows, stats
    net = model.net
    buffers = [(b, b.detach().clone()) for b in net.buffers()]
    targets = population.parameter_targets(net)
    collect = getattr(objective, "collect_stats", None)
    try:
        with torch.no_grad():
            for index, pieces in population.members(indices):
                for target, piece in zip(targets, pieces, strict=True):
                    target.copy_(piece)
                try:
                    value = objective(model, samples)
                except Exception as exc:
                    raise EvaluationError(
                        f"the objective raised {type(exc).__name__}: {exc} "
                        f"(evaluation {index}, generation {population.generation})",
                        index=index,
                        worker_traceback=traceback.format_exc(),
                    ) from exc
                finally:
                    for buffer, saved in buffers:
                        buffer.copy_(saved)
                # NaN and ±inf pass: the optimizer applies its ``nonfinite`` policy to the
                # whole generation (es_opt.fitness.check_fitness_matrix)
                rows.append(as_fitness_row(value, index=index, nonfinite="worst"))
                stats.append(collect() if collect is not None else None)
    finally:
        population.copy_into(targets, population.center)
    return rows, stats
