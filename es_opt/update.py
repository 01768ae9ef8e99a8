"""The centre's update from one generation's fitness, as one function that both the main process
and a replaying worker run (:mod:`es_opt.evaluators._replay`), so that they compute the same bits.

The whole path from fitness to ``.grad`` is here and in the distribution's own file:

1. ``s_i = Σ_k w_k · shaping(F[:, k])_i`` (:func:`es_opt.shaping.weighted_scores`);
2. ``g, state' = distribution.step(s, population, population.state)``
   (:meth:`es_opt.distributions.SearchDistribution.step`: OpenAI-ES's antithetic estimate, PGPE's
   or SNES's update of the centre and σ, CMA-ES's recombination and adaptation);
3. each selected parameter's ``.grad`` is its slice of ``−g`` (the inner optimizer *minimises*),
   every other trainable parameter's ``None``, and ``optimizer.step()`` runs. If that raises,
   every ``.grad`` is put back and the error propagates: nothing else has changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .distributions import SearchDistribution
from .distributions.base import DistributionStep
from .population import Population
from .shaping import weighted_scores

__all__ = ["UpdateRule", "apply_update"]


@dataclass(frozen=True)
class UpdateRule:
    """Everything besides the inner optimizer that turns fitness into the centre's step: the
    objective weights, the fitness shaping and the search distribution."""

    obj_weights: tuple[float, ...]
    shaping: Callable[[torch.Tensor], torch.Tensor]
    distribution: SearchDistribution


def apply_update(
    params: Mapping[str, nn.Parameter],
    optimizer: Any,
    rule: UpdateRule,
    population: Population,
    fitness: torch.Tensor,
) -> DistributionStep:
    """One ES update of ``params`` (the model's trainable parameters by name) by ``optimizer``.

    Returns the distribution's step (the ascent direction ``g`` over the population's selected
    parameters and the distribution's next state); the caller keeps the state.

    Example:
        >>> from es_opt.distributions import OpenAIES
        >>> from es_opt.shaping import centered_ranks
        >>> w = nn.Parameter(torch.zeros(3))
        >>> pop = Population(0, 0, 0.1, 4, ("w",), (torch.Size([3]),), torch.zeros(3))
        >>> opt = torch.optim.SGD([w], lr=1.0)
        >>> F = torch.tensor([[1.0], [0.0], [0.0], [1.0]], dtype=torch.float64)
        >>> rule = UpdateRule((1.0,), centered_ranks, OpenAIES())
        >>> step = apply_update({"w": w}, opt, rule, pop, F)
        >>> torch.equal(w.detach(), step.gradient)  # SGD with lr 1 on −g moves by +g
        True
    """
    scores = weighted_scores(fitness, rule.obj_weights, rule.shaping)
    step = rule.distribution.step(scores, population, population.state)
    selected = dict(
        zip(population.names, population.unflatten(-step.gradient).values(), strict=True)
    )
    saved = {name: param.grad for name, param in params.items()}
    try:
        for name, param in params.items():
            param.grad = selected[name].clone() if name in selected else None
        optimizer.step()
    except BaseException:
        for name, param in params.items():
            param.grad = saved[name]
        raise
    return step


def selected_center(params: Mapping[str, torch.Tensor], names: Sequence[str]) -> torch.Tensor:
    """The flat centre of the named parameters, as :meth:`es_opt.ESOptimizer.ask` builds it."""
    return torch.cat([params[name].detach().reshape(-1) for name in names]).clone()
