"""The centre's update from one generation's fitness, as one function that both the main process
and a replaying worker run (:mod:`es_opt.evaluators._replay`), so that they compute the same bits.

With ``F`` the checked fitness matrix of a population and ``g, σ' = search_step(F, …)`` the
search distribution's step (:func:`es_opt.distributions.search_step`), the update sets each
selected parameter's ``.grad`` to its slice of ``−g`` (the inner optimizer *minimises*), every
other trainable parameter's to ``None``, and calls ``optimizer.step()``. If that raises, every
``.grad`` is put back and the error propagates: nothing else has changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .distributions import SearchDistribution, search_step
from .distributions.base import DistributionStep
from .population import Population

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
    parameters and, for PGPE/SNES, their next σ); the caller keeps σ.

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
    step = search_step(fitness, population, rule.obj_weights, rule.shaping, rule.distribution)
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
