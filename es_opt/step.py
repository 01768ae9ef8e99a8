"""The ES step as one pure function: a generation's fitness and its population → the gradient.

It is the whole of the algorithm between evaluation and the inner optimizer, in one place:
fitness shaping (:mod:`es_opt.shaping`), objective weighting, and the antithetic estimate of the
population's perturbation family (:mod:`es_opt.estimator` for dense noise drawn per pair,
:meth:`es_opt.perturbations.Perturbation.estimate` otherwise). :class:`~es_opt.ESOptimizer`
calls it with a checked fitness matrix and hands ``−g`` to its inner torch optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .estimator import estimate_gradient
from .population import Population
from .shaping import weighted_scores

__all__ = ["es_gradient"]


def es_gradient(
    fitness: torch.Tensor,
    population: Population,
    obj_weights: Sequence[float],
    shaping: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """The whole ES step from fitness to gradient, as one pure function.

    1. shape each objective's column of ``fitness`` (``[n_evals, n_objectives]``, evaluation
       order) and sum them with ``obj_weights``: ``s_i = Σ_k w_k · shaping(F[:, k])_i``;
    2. estimate ``g = (s⁺ − s⁻)ᵀ E / (n σ)`` from the pairs' noise, rebuilt from the
       population's seeds a bounded block at a time (for a low-rank family, one matrix product
       ``(diag(s⁺ − s⁻) A)ᵀ B`` per matrix: :meth:`es_opt.perturbations.Perturbation.estimate`).

    Returns the flat gradient of the *maximised* objective over the population's selected
    parameters (split it with ``population.unflatten``). Nothing is changed.

    Example:
        >>> from es_opt.population import Population
        >>> from es_opt.shaping import centered_ranks
        >>> pop = Population(0, 0, 0.1, 4, ("w",), (torch.Size([3]),), torch.zeros(3))
        >>> F = torch.tensor([[1.0], [0.0], [0.0], [1.0]], dtype=torch.float64)
        >>> g = es_gradient(F, pop, [1.0], centered_ranks)
        >>> s = weighted_scores(F, [1.0])
        >>> expected = ((s[0] - s[1]) * pop.perturbation(0) + (s[2] - s[3]) * pop.perturbation(1))
        >>> torch.allclose(g, expected.float() / (4 * 0.1))
        True
    """
    scores = weighted_scores(fitness, obj_weights, shaping)
    center = population.center
    if not population.original_noise:  # the family's own estimate (low-rank: a GEMM per matrix)
        return population.family.estimate(
            scores,
            population.seed,
            population.generation,
            population.shapes,
            population.ids,
            sigma=population.sigma,
            dtype=center.dtype,
            device=center.device,
        )
    return estimate_gradient(
        scores,
        population.perturbations,
        sigma=population.sigma,
        dim=population.dim,
        dtype=center.dtype,
        device=center.device,
    )
