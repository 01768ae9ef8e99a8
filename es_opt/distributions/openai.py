"""OpenAI-ES: a scalar σ, the centre's gradient from antithetic pairs (Salimans et al. 2017), and an
optional σ schedule (constant, exponential decay with a floor, or a function)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .base import DistributionStep, SearchDistribution
from .schedules import SigmaSchedule, make_schedule, schedule_from_config

__all__ = ["OpenAIES", "openai_es_gradient"]


def openai_es_gradient(scores: torch.Tensor, population: Any) -> torch.Tensor:
    """``g = 1/(n σ) Σ_j (s⁺_j − s⁻_j) E_j`` for the population's ``P`` pairs, ``n = 2P``
    evaluations (Salimans et al. 2017, eq. 1 with mirrored sampling), with ``E_j`` rebuilt from
    the population's seeds a bounded block at a time by the family's estimate
    (:meth:`es_opt.perturbations.Perturbation.estimate`; dense: the flat noise rows through
    :func:`es_opt.estimator.estimate_gradient`, the original arithmetic bit for bit; low-rank:
    one ``(diag(s⁺ − s⁻) A)ᵀ B`` product per matrix).

    Example:
        >>> from es_opt.population import Population
        >>> pop = Population(0, 0, 0.5, 4, ("w",), (torch.Size([2]),), torch.zeros(2))
        >>> scores = torch.tensor([1.0, 0.0, 0.0, 1.0])
        >>> g = openai_es_gradient(scores, pop)
        >>> torch.allclose(g, (pop.perturbation(0) - pop.perturbation(1)) / (4 * 0.5))
        True
    """
    return population.family.estimate(scores, population)


class OpenAIES(SearchDistribution):
    """OpenAI-ES (Salimans et al. 2017): members ``θ ± σ_g z_j`` with one scalar σ, and the centre's
    ascent direction

    .. math:: g = \\frac{1}{n \\sigma_g} \\sum_{j=1}^{P} (s^+_j - s^-_j)\\, z_j

    where ``s`` are the shaped scores (centered ranks by default; ``top_pairs(k)`` makes it ARS,
    Mania et al. 2018). σ does not learn; ``sigma_schedule`` may move it with the generation:
    ``σ_g = schedule(g, σ)`` with ``σ = ESOptimizer.sigma``.

    Args:
        sigma_schedule: ``None``/``"constant"`` (default), a
            :class:`~es_opt.distributions.schedules.SigmaSchedule` such as
            ``ExponentialDecay(rate=0.999, floor=0.01)``, or a function ``(generation, sigma) ->
            σ`` (saved by name; resuming needs the same function).

    Example:
        >>> from es_opt.distributions import ExponentialDecay
        >>> es = OpenAIES(sigma_schedule=ExponentialDecay(rate=0.9, floor=0.05))
        >>> round(es.sigma_at(2, 0.1), 6), es.sigma_at(50, 0.1)
        (0.081, 0.05)
    """

    name = "openai"
    adapts_sigma = False

    def __init__(self, sigma_schedule: Any = None):
        self.sigma_schedule: SigmaSchedule = make_schedule(sigma_schedule)

    def sigma_at(self, generation: int, sigma: float) -> float:
        return self.sigma_schedule(generation, sigma)

    def step(
        self, scores: torch.Tensor, population: Any, state: Mapping[str, Any]
    ) -> DistributionStep:
        if isinstance(population.sigma, torch.Tensor):
            raise TypeError("OpenAIES uses a scalar sigma, got a tensor")
        return DistributionStep(gradient=openai_es_gradient(scores, population))

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "sigma_schedule": self.sigma_schedule.config()}

    @classmethod
    def from_config(
        cls, config: dict[str, Any], current: SearchDistribution | None = None
    ) -> OpenAIES:
        current_schedule = current.sigma_schedule if isinstance(current, OpenAIES) else None
        schedule = config.get("sigma_schedule", {"kind": "constant"})
        return cls(sigma_schedule=schedule_from_config(schedule, current_schedule))
