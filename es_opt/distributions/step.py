"""The ES step from fitness to (centre's gradient, next σ) for any search distribution, as one
pure function: what :meth:`es_opt.ESOptimizer.tell` applies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from ..shaping import weighted_scores
from ..step import es_gradient
from .base import DistributionStep, SearchDistribution

if TYPE_CHECKING:
    from ..population import Population

__all__ = ["search_step"]


def search_step(
    fitness: torch.Tensor,
    population: Population,
    obj_weights: Sequence[float],
    shaping: Callable[[torch.Tensor], torch.Tensor],
    distribution: SearchDistribution,
) -> DistributionStep:
    """Shapes and weights the fitness (``s_i = Σ_k w_k · shaping(F[:, k])_i``), then lets the
    distribution turn the scores and the population's noise into the centre's ascent direction
    and, for PGPE and SNES, the next σ of the selected parameters. Nothing is changed.

    OpenAI-ES (any σ schedule) is exactly :func:`es_opt.step.es_gradient` with the
    generation's σ, so a default run keeps its bits and every perturbation family works.

    Example:
        >>> from es_opt.distributions import PGPE, OpenAIES
        >>> from es_opt.population import Population
        >>> from es_opt.shaping import centered_ranks
        >>> pop = Population(0, 0, torch.full((3,), 0.1), 4, ("w",), (torch.Size([3]),),
        ...                  torch.zeros(3))
        >>> F = torch.tensor([[1.0], [0.0], [0.0], [1.0]])
        >>> step = search_step(F, pop, [1.0], centered_ranks, PGPE())
        >>> step.sigma.shape
        torch.Size([3])
    """
    if not distribution.adapts_sigma:
        return DistributionStep(es_gradient(fitness, population, obj_weights, shaping), None)
    center = population.center
    return distribution.step(
        weighted_scores(fitness, obj_weights, shaping),
        population.perturbations,
        sigma=population.sigma,
        dim=population.dim,
        dtype=center.dtype,
        device=center.device,
    )
