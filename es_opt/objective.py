"""``Objective`` (what the user maximises) and ``Samples`` (what it needs each step). What an
objective returns is validated by :mod:`es_opt.fitness`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .fitness import as_fitness_row

if TYPE_CHECKING:
    from .model import Model

__all__ = ["Objective", "Samples", "as_fitness_row"]


@dataclass
class Samples:
    """Base dataclass for whatever an objective needs in one step: a minibatch, environment
    seeds, ... Subclass it and add fields; the same instance is handed to every evaluation of the
    step (and sent once per worker per step by the parallel backends).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Batch(Samples):
        ...     inputs: torch.Tensor
        ...     targets: torch.Tensor
        >>> Batch(torch.zeros(2, 3), torch.zeros(2)).inputs.shape
        torch.Size([2, 3])
    """


class Objective:
    """What ES maximises. Subclass it and implement ``__call__(model, samples)``, returning one
    score (a float), or several (a sequence of floats or a 1-D tensor) for multi-objective runs.

    Each call sees the model with one perturbation loaded; it must not keep references to the
    parameters. Any plain callable with the same signature (a function, a lambda) is accepted too.

    Optional hooks, for objectives that carry state between generations (e.g. observation
    normalisation in :mod:`es_opt.rl`); the defaults do nothing:

    - ``generation_state()`` → a picklable value sent to every worker before a generation, and
      ``set_generation_state(state)`` applies it there;
    - ``collect_stats()`` → a picklable value describing the evaluation that just ran (called after
      every evaluation, in the process that ran it), and ``merge_stats(stats)`` receives the list
      of them in evaluation order once the step has succeeded;
    - ``state_dict()`` / ``load_state_dict(state)`` are saved in ``ESOptimizer.state_dict()``.

    Example:
        >>> class NegativeDistance(Objective):
        ...     def __call__(self, model, samples):
        ...         return -float(sum(p.square().sum() for p in model.parameters()))
    """

    def __call__(self, model: Model, samples: Any) -> float | Sequence[float] | torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(model, samples)")

    def generation_state(self) -> Any:
        return None

    def set_generation_state(self, state: Any) -> None:
        return None

    def collect_stats(self) -> Any:
        return None

    def merge_stats(self, stats: list[Any]) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None
