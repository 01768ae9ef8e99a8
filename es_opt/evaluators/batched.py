"""The vectorised evaluation path: a population evaluated a batch of members at a time.

An objective opts in by defining ``evaluate_population(population, samples)``, where
``population`` is a :class:`~es_opt.evaluators.stacked.StackedModel` holding a batch of members
(call it on inputs to get ``[B, N, ...]`` outputs; ``len(population)``; ``population.indices``), and
returning a ``[B, n_objectives]`` tensor (or ``[B]`` for one objective). Every evaluator uses this
path automatically through :func:`~es_opt.evaluators.evaluate_indices`: in the main process for
``serial``, inside each worker for the parallel backends.

Two attributes of the objective steer it:

- ``max_batch``: the most members stacked in one call; ``None`` (the default) picks it from a
  memory budget on the stacked parameters (:data:`DEFAULT_MEMORY_BUDGET`).
- ``vectorize``: set it to ``False`` to use the one-at-a-time ``__call__`` instead.

Batches are cut on a fixed grid of absolute evaluation indices (blocks
``[k·max_batch, (k+1)·max_batch)``), so a member is batched with the same neighbours however the
population is split between workers. Measured with torch's CPU kernels, a member's outputs do not
depend on its batch at all (``tests/test_evaluators_batched.py`` checks this bit for bit); the
grid keeps worker-count invariance safe on kernels where they would.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from es_opt import Model, Objective, ESOptimizer
    >>> class MeanOutput(Objective):
    ...     def __call__(self, model, samples):
    ...         return float(model(samples).mean())
    ...     def evaluate_population(self, population, samples):
    ...         return population(samples).mean(dim=(1, 2))
    >>> es = ESOptimizer(Model(nn.Linear(3, 2)), objective_fn=MeanOutput(), n_samples=8)
    >>> result = es.gradient_step(torch.ones(4, 3))
"""

from __future__ import annotations

import numbers
import traceback
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from ..errors import EvaluationError
from ..fitness import check_population_fitness
from .stacked import StackedModel, VectorizationError

if TYPE_CHECKING:
    from ..model import Model
    from ..population import Population

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "VectorizationError",
    "batch_grid",
    "evaluate_population_indices",
    "is_vectorized",
    "resolve_max_batch",
]

DEFAULT_MEMORY_BUDGET = 64 * 2**20
"""Bytes of stacked parameters per batch when ``max_batch`` is ``None`` (64 MiB: 200 members of a
80k-parameter float32 net)."""

AUTO_MAX_BATCH = 64
"""Upper bound of the automatic batch. Measured on a 2-core CPU (digits MLPs, one thread), larger
batches gain nothing on few images and lose on many (the activations of 200 members of a
64-128-10 net on 1,438 images no longer fit the cache: 0.7× the one-at-a-time speed at 200,
1.3× at 32)."""


def is_vectorized(objective: Any) -> bool:
    """Whether ``objective`` takes the vectorised path: it defines a callable
    ``evaluate_population`` and has not set ``vectorize = False``.

    Example:
        >>> is_vectorized(lambda model, samples: 0.0)
        False
    """
    method = getattr(objective, "evaluate_population", None)
    return callable(method) and getattr(objective, "vectorize", True) is not False


def resolve_max_batch(objective: Any, population: Population) -> int:
    """The batch size for ``population``: the objective's ``max_batch``, or, when it is ``None``,
    as many members as fit :data:`DEFAULT_MEMORY_BUDGET` of stacked parameters (at most
    :data:`AUTO_MAX_BATCH`). It depends only on the objective and the population, never on the
    process, so every worker cuts the same grid.

    Example:
        >>> from es_opt import Population
        >>> pop = Population(0, 0, 0.1, 600, ("w",), (torch.Size([10]),), torch.zeros(10))
        >>> resolve_max_batch(object(), pop)
        64
    """
    max_batch = getattr(objective, "max_batch", None)
    if max_batch is None:
        itemsize = population.center.element_size()
        fits = DEFAULT_MEMORY_BUDGET // max(1, population.dim * itemsize)
        return int(max(1, min(AUTO_MAX_BATCH, fits)))
    if not isinstance(max_batch, numbers.Integral) or isinstance(max_batch, bool):
        raise TypeError(
            f"max_batch must be a positive int or None, got {type(max_batch).__name__} "
            f"{max_batch!r}"
        )
    if max_batch < 1:
        raise ValueError(f"max_batch must be a positive int or None, got {max_batch}")
    return int(max_batch)


def batch_grid(indices: Iterable[int], max_batch: int) -> Iterator[list[int]]:
    """Splits ``indices`` (kept in order) into runs that share a grid block
    ``index // max_batch``.

    Example:
        >>> list(batch_grid([3, 4, 5, 6, 7, 8, 9], max_batch=4))
        [[3], [4, 5, 6, 7], [8, 9]]
    """
    chunk: list[int] = []
    block = None
    for index in indices:
        if chunk and index // max_batch != block:
            yield chunk
            chunk = []
        block = index // max_batch
        chunk.append(index)
    if chunk:
        yield chunk


def evaluate_population_indices(
    model: Model, objective: Any, population: Population, samples: Any, indices: Iterable[int]
) -> tuple[list[torch.Tensor], list[Any]]:
    """Evaluates the members ``indices`` with ``objective.evaluate_population``, a grid block at a
    time, and returns their fitness rows and stats in the order of ``indices`` (the contract of
    :func:`~es_opt.evaluators.evaluate_indices`, which calls this for vectorised objectives).

    ``objective.collect_stats()`` runs once after each batch and must return ``None`` or a list
    with one entry per member. Buffers are restored after every batch. An exception inside the
    objective becomes :class:`~es_opt.EvaluationError` naming the batch's first evaluation; a
    :class:`VectorizationError` (a module ``vmap`` cannot handle) is raised as is.
    """
    indices = list(indices)
    rows: list[torch.Tensor] = []
    stats: list[Any] = []
    if not indices:
        return rows, stats
    max_batch = resolve_max_batch(objective, population)
    buffers = [(b, b.detach().clone()) for b in model.net.buffers()]
    for chunk in batch_grid(indices, max_batch):
        try:
            with torch.no_grad():
                values = objective.evaluate_population(
                    StackedModel(model, population, chunk), samples
                )
        except VectorizationError:
            raise
        except Exception as exc:
            raise EvaluationError(
                f"the objective's evaluate_population raised {type(exc).__name__}: {exc} "
                f"(evaluations {chunk[0]}..{chunk[-1]}, generation {population.generation})",
                index=chunk[0],
                worker_traceback=traceback.format_exc(),
            ) from exc
        finally:
            with torch.no_grad():
                for buffer, saved in buffers:
                    buffer.copy_(saved)
        # non-finite values pass; the optimizer applies its ``nonfinite`` policy
        rows.extend(check_population_fitness(values, chunk, nonfinite="worst"))
        stats.extend(_batch_stats(objective, chunk))
    return rows, stats


def _batch_stats(objective: Any, chunk: list[int]) -> list[Any]:
    collect = getattr(objective, "collect_stats", None)
    batch = collect() if callable(collect) else None
    if batch is None:
        return [None] * len(chunk)
    if not isinstance(batch, (list, tuple)) or len(batch) != len(chunk):
        got = f"{len(batch)} entries" if isinstance(batch, (list, tuple)) else type(batch).__name__
        raise ValueError(
            "in the vectorised path objective.collect_stats() must return None or a list with one "
            f"entry per member of the batch ({len(chunk)}, evaluations {chunk[0]}..{chunk[-1]}), "
            f"got {got}"
        )
    return list(batch)
