"""The cross-entropy method (CEM) with a diagonal Gaussian (Rubinstein 1999; de Boer et al. 2005,
"A tutorial on the cross-entropy method"), as a search distribution: the elite fraction of the
members refits the mean and the per-parameter σ."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from .._validation import check_real
from ._ranking import weighted_noise_moments
from .base import (
    AdaptiveDistribution,
    DistributionStep,
    SearchDistribution,
    check_sigma_vector,
    check_stdev_bounds,
    clip_sigma,
)

__all__ = ["CEM", "cem_update", "elite_count"]


def elite_count(n_samples: int, elite_fraction: float) -> int:
    """``⌊ρ λ⌋`` members refit the distribution (``λ = n_samples``, ``ρ = elite_fraction``).

    Example:
        >>> elite_count(100, 0.1), elite_count(10, 0.25)
        (10, 2)
    """
    return math.floor(n_samples * elite_fraction + 1e-9)


def cem_update(
    scores: torch.Tensor,
    noise_rows: Any,
    sigma: torch.Tensor,
    *,
    antithetic: bool,
    elite_fraction: float,
    stdev_max_change: float | None = None,
    stdev_min: float | None = None,
    stdev_max: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One CEM update of a diagonal Gaussian, as a pure function.

    Members are ``x_i = θ + σ ⊙ s_i z_i`` (``s_i = ±1`` in mirrored pairs, else +1); the
    ``E = ⌊ρ λ⌋`` highest scores are the elite (ties to the lower index), and the distribution
    is refit to them by maximum likelihood::

        θ'  = 1/E Σ_e x_e             = θ + σ ⊙ ẑ,        ẑ = 1/E Σ_e s_e z_e
        σ'² = 1/E Σ_e (x_e − θ')²     = σ² ⊙ (1/E Σ_e z_e² − ẑ²)

    then ``σ'`` is clipped as :func:`~es_opt.distributions.base.clip_sigma` does (each entry
    within ``σ (1 ± stdev_max_change)``, then within ``[stdev_min, stdev_max]``).

    Returns:
        ``(σ ⊙ ẑ, σ')`` (the centre's step and the next σ), of ``sigma``'s dtype and device.

    Raises:
        ValueError: if an entry of σ' is 0 or not finite (an elite that agrees exactly in some
            coordinate: set ``stdev_min``); nothing is changed.
    """
    check_sigma_vector("sigma", sigma)
    x = scores.to(torch.float64).flatten()
    n_elite = elite_count(x.numel(), elite_fraction)
    if n_elite < 1:
        raise ValueError(
            f"elite_fraction={elite_fraction} of {x.numel()} members selects no elite member"
        )
    order = torch.argsort(x, descending=True, stable=True)[:n_elite]
    if antithetic:
        draws, signs = order // 2, torch.where(order % 2 == 0, 1.0, -1.0).to(torch.float64)
    else:
        draws, signs = order, torch.ones(n_elite, dtype=torch.float64)
    weights = torch.full((n_elite,), 1.0 / n_elite, dtype=torch.float64)
    z_mean, z_square = weighted_noise_moments(
        weights, draws, signs, noise_rows, sigma.numel(), device=sigma.device
    )
    sigma64 = sigma.to(torch.float64)
    spread = (z_square - z_mean.square()).clamp(min=0).sqrt()
    new_sigma = clip_sigma(
        sigma64,
        sigma64 * spread,
        max_change=stdev_max_change,
        low=stdev_min,
        high=stdev_max,
    ).to(sigma.dtype)
    check_sigma_vector("CEM's updated sigma (set stdev_min or stdev_max_change)", new_sigma)
    return (sigma64 * z_mean).to(sigma.dtype), new_sigma


class CEM(AdaptiveDistribution):
    """The cross-entropy method with a diagonal Gaussian (equations in :func:`cem_update`): the
    best ``⌊ρ λ⌋`` members refit the centre (their mean) and the per-parameter σ (their
    standard deviation). With ``torch.optim.SGD(params, lr=1.0)`` the centre is the elite mean.

    The simple baseline of EvoTorch's ``CEM`` (its ``parenthood_ratio`` is ``elite_fraction``,
    its ``stdev_max_change`` the same clip). O(d) memory; σ is one value per parameter, as for
    PGPE and SNES.

    Args:
        elite_fraction: ``ρ`` in (0, 1]: the share of members that refit the distribution.
            0.5 by default: a smaller elite shrinks σ faster than the centre moves (on a 5-d
            sphere from distance 4.5 with σ₀ = 1 and 40 members, ρ = 0.1, 0.25, 0.5 stall at
            distances 1.3, 1.2 and 0.6), so CEM needs σ₀ about the distance to the optimum.
        antithetic: mirrored pairs ``θ ± σ ⊙ z_j`` (the default, as every es_opt distribution
            but the CMA family; both members of a pair may be elite), or independent members.
            Measured at d = 10, λ = 100, 3 seeds (``benchmarks/bbob.py --part mirrored``):
            0.95× the evaluations to 1e-8 on the sphere, 0.97× on an ellipsoid of condition 10⁶.
        stdev_max_change, stdev_min, stdev_max: σ safeguards as for
            :class:`~es_opt.distributions.PGPE` (off by default).

    Example:
        >>> CEM(elite_fraction=0.1).check(n_samples=10, dim=4)
        Traceback (most recent call last):
        ...
        ValueError: distribution='cem' needs at least 2 elite members (elite_fraction=0.1 of n_samples=10 gives 1)
    """  # noqa: E501

    name = "cem"

    def __init__(
        self,
        elite_fraction: float = 0.5,
        *,
        antithetic: bool = True,
        stdev_max_change: float | None = None,
        stdev_min: float | None = None,
        stdev_max: float | None = None,
    ):
        self.elite_fraction = check_real(
            "elite_fraction", elite_fraction, low=0, high=1, low_open=True
        )
        if not isinstance(antithetic, bool):
            raise TypeError(f"antithetic must be a bool, got {antithetic!r}")
        self.antithetic = antithetic
        self.stdev_min, self.stdev_max, self.stdev_max_change = check_stdev_bounds(
            stdev_min, stdev_max, stdev_max_change
        )

    def check(self, n_samples: int, dim: int) -> None:
        if self.antithetic and n_samples % 2:
            raise ValueError(
                f"distribution='cem' with antithetic=True needs an even n_samples, got {n_samples}"
            )
        elite = elite_count(n_samples, self.elite_fraction)
        if elite < 2:
            raise ValueError(
                f"distribution='cem' needs at least 2 elite members (elite_fraction="
                f"{self.elite_fraction} of n_samples={n_samples} gives {elite})"
            )

    def step(
        self, scores: torch.Tensor, population: Any, state: Mapping[str, Any]
    ) -> DistributionStep:
        sigma = state["sigma"]
        gradient, new_sigma = cem_update(
            scores,
            population.perturbations,
            sigma,
            antithetic=population.antithetic,
            elite_fraction=self.elite_fraction,
            stdev_max_change=self.stdev_max_change,
            stdev_min=self.stdev_min,
            stdev_max=self.stdev_max,
        )
        return DistributionStep(gradient=gradient, state={"sigma": new_sigma})

    def update(
        self, scores: torch.Tensor, noise_rows: Any, sigma: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return cem_update(
            scores,
            noise_rows,
            sigma,
            antithetic=self.antithetic,
            elite_fraction=self.elite_fraction,
            stdev_max_change=self.stdev_max_change,
            stdev_min=self.stdev_min,
            stdev_max=self.stdev_max,
        )

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "elite_fraction": self.elite_fraction,
            "antithetic": self.antithetic,
            "stdev_max_change": self.stdev_max_change,
            "stdev_min": self.stdev_min,
            "stdev_max": self.stdev_max,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], current: SearchDistribution | None = None) -> CEM:
        return cls(**{k: v for k, v in config.items() if k != "name"})
