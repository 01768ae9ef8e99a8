"""Separable CMA-ES: CMA-ES with a diagonal covariance matrix, O(d) memory and time per member
(Ros & Hansen 2008, "A simple modification in CMA-ES achieving linear time and space
complexity", PPSN X), as a search distribution.

Members are ``θ + σ D ⊙ z`` with ``C = diag(D²)``; the state is σ, the paths and the diagonal.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .._validation import check_int, check_real
from ._ranking import ranked_candidates, weighted_noise_moments
from .base import DistributionStep, SearchDistribution
from .cma import check_candidates
from .cma_parameters import CMAParameters, check_weights, sep_cma_parameters

__all__ = ["SepCMAES", "sep_cma_initial_state", "sep_cma_update"]


def sep_cma_initial_state(
    dim: int, sigma: float, *, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """σ, ``p_σ = p_c = 0``, the diagonal ``C = 1`` and ``D = √C`` (float64 on ``device``) and
    the number of updates so far.

    Example:
        >>> sorted(sep_cma_initial_state(3, 0.5))
        ['C', 'D', 'generation', 'p_c', 'p_sigma', 'sigma']
    """
    check_int("dim", dim, low=1)
    sigma = check_real("sigma", sigma, low=0, low_open=True)
    f64 = {"dtype": torch.float64, "device": device}
    return {
        "sigma": torch.tensor(sigma, **f64),
        "p_sigma": torch.zeros(dim, **f64),
        "p_c": torch.zeros(dim, **f64),
        "C": torch.ones(dim, **f64),
        "D": torch.ones(dim, **f64),
        "generation": torch.tensor(0, dtype=torch.int64, device=device),
    }


def sep_cma_update(
    state: Mapping[str, torch.Tensor],
    z_mean: torch.Tensor,
    z_square_mean: torch.Tensor,
    params: CMAParameters,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One separable CMA-ES update (Ros & Hansen 2008) from two weighted sums over the ``μ``
    best candidates' noise, ``⟨z⟩_w = Σ_i w_i s_i z_i`` and ``⟨z²⟩_w = Σ_i w_i z_i²``
    (candidate ``i`` is ``m + σ D ⊙ s_i z_i``), as a pure function. With the constants of
    :func:`~es_opt.distributions.cma_parameters.sep_cma_parameters` and ``g`` earlier updates::

        ⟨y⟩_w = D ⊙ ⟨z⟩_w                       (m' = m + c_m σ ⟨y⟩_w, returned)
        p_σ'  = (1 − c_σ) p_σ + √(c_σ (2 − c_σ) μ_eff) ⟨z⟩_w        (C^{-1/2} ⟨y⟩_w = ⟨z⟩_w)
        σ'    = σ exp(c_σ/d_σ (‖p_σ'‖ / χ_n − 1))
        h_σ   = [‖p_σ'‖ / √(1 − (1 − c_σ)^{2(g+1)}) < (1.4 + 2/(n + 1)) χ_n]
        p_c'  = (1 − c_c) p_c + h_σ √(c_c (2 − c_c) μ_eff) ⟨y⟩_w
        C'    = (1 + c_1 δ(h_σ) − c_1 − c_μ Σ_j w_j) C + c_1 p_c'² + c_μ C ⊙ ⟨z²⟩_w,  D' = √C'

    (``Σ_i w_i y_i² = D² ⊙ ⟨z²⟩_w``, with active CMA-ES's ``w°_i = w_i n / ‖z_i‖²`` for the
    negative weights: :func:`~es_opt.distributions._ranking.weighted_noise_moments`;
    ``δ(h_σ) = (1 − h_σ) c_c (2 − c_c)``). Every operation is
    element-wise: O(d).

    Returns:
        ``(⟨y⟩_w, next state)`` in float64; nothing is modified in place.
    """
    n = params.dim
    if z_mean.shape != (n,) or z_square_mean.shape != (n,):
        raise ValueError(
            f"z_mean and z_square_mean must have shape ({n},), got {tuple(z_mean.shape)} and "
            f"{tuple(z_square_mean.shape)}"
        )
    D, C, sigma = state["D"], state["C"], state["sigma"]
    cs, cc = params.c_sigma, params.c_c
    y_w = D * z_mean
    p_sigma = (1 - cs) * state["p_sigma"] + math.sqrt(cs * (2 - cs) * params.mu_eff) * z_mean
    norm = torch.linalg.vector_norm(p_sigma)
    new_sigma = sigma * torch.exp(cs / params.d_sigma * (norm / params.chi_n - 1))
    g = int(state["generation"]) + 1
    h_sigma = float(norm / math.sqrt(1 - (1 - cs) ** (2 * g)) < (1.4 + 2 / (n + 1)) * params.chi_n)
    p_c = (1 - cc) * state["p_c"] + h_sigma * math.sqrt(cc * (2 - cc) * params.mu_eff) * y_w
    stall = params.c_1 * (1 - h_sigma) * cc * (2 - cc)
    decay = 1 + stall - params.c_1 - params.c_mu * params.weight_sum
    new_C = decay * C + params.c_1 * p_c.square() + params.c_mu * C * z_square_mean
    return y_w, {
        "sigma": new_sigma,
        "p_sigma": p_sigma,
        "p_c": p_c,
        "C": new_C,
        "D": new_C.sqrt(),
        "generation": state["generation"] + 1,
    }


class SepCMAES(SearchDistribution):
    """Separable CMA-ES (Ros & Hansen 2008; equations in :func:`sep_cma_update`): a diagonal
    covariance learned ``(n + 2)/3`` times faster than full CMA-ES learns its ``C``, O(d)
    memory and time, so it scales to networks of millions of parameters. Members are
    ``θ + σ D ⊙ z``, independent (``antithetic=False``, the default) or in mirrored pairs with
    pairwise selection. With ``torch.optim.SGD(params, lr=1.0)`` the centre follows the
    algorithm's mean update exactly.

    Args:
        antithetic: mirrored pairs ``θ ± σ D ⊙ z_j`` with pairwise selection (even
            ``n_samples``) instead of independent members.
        active: negative weights for the candidates after the ``μ`` best in the update of
            ``C`` (active CMA-ES, as pycma's ``CMA_diagonal`` does by default); ``None`` (the
            default): on unless ``weights`` are given. On BBOB at d = 10 (15 instances) the
            plain update's ECDF area was 0.968 times pycma's diagonal variant's, losing on the
            ill-conditioned functions (f2, f12, f13) where the negative update shrinks the
            variance of bad directions.
        weights: the ``μ`` positive recombination weights (non-increasing, summing to 1)
            instead of the default ones.

    Example:
        >>> SepCMAES().check(n_samples=1, dim=10)
        Traceback (most recent call last):
        ...
        ValueError: distribution='sep_cma' needs at least 2 ranked candidates, got n_samples=1 (1)
    """

    name = "sep_cma"
    full_model = True

    def __init__(
        self,
        *,
        antithetic: bool = False,
        active: bool | None = None,
        weights: Sequence[float] | None = None,
    ):
        if active is None:
            active = weights is None
        if not isinstance(antithetic, bool) or not isinstance(active, bool):
            raise TypeError(f"antithetic and active must be bools, got {antithetic!r}, {active!r}")
        self.antithetic = antithetic
        self.active = active
        self.weights = None if weights is None else check_weights(weights)
        if self.weights is not None and active:
            raise ValueError("weights and active=True cannot be combined: give one of them")

    def candidates(self, n_samples: int) -> int:
        """How many members are ranked: ``n_samples``, or one per pair when mirrored."""
        return n_samples // 2 if self.antithetic else n_samples

    def check(self, n_samples: int, dim: int) -> None:
        check_candidates(self.name, self, n_samples)

    def parameters(self, dim: int, n_samples: int) -> CMAParameters:
        """The constants of a generation of ``n_samples`` members over ``dim`` parameters."""
        return _parameters(dim, self.candidates(n_samples), self.active, self.weights)

    def init_state(
        self,
        sigma: float,
        dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> dict[str, Any]:
        return sep_cma_initial_state(dim, sigma, device=device)

    def sigma_of(self, state: Mapping[str, Any], generation: int, sigma: float) -> float:
        return float(state["sigma"])

    def noise_map(self, state: Mapping[str, Any]) -> torch.Tensor:
        return state["D"]

    def step(
        self, scores: torch.Tensor, population: Any, state: Mapping[str, Any]
    ) -> DistributionStep:
        draws, signs = ranked_candidates(scores, population.antithetic)
        params = self.parameters(population.dim, population.n_evals)
        weights = torch.tensor(params.weights, dtype=torch.float64)
        z_mean, z_square_mean = weighted_noise_moments(
            weights,
            draws,
            signs,
            population.perturbations,
            population.dim,
            device=state["D"].device,
        )
        y_w, new_state = sep_cma_update(state, z_mean, z_square_mean, params)
        center = population.center
        gradient = (params.c_m * state["sigma"] * y_w).to(dtype=center.dtype, device=center.device)
        return DistributionStep(gradient=gradient, state=new_state)

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "antithetic": self.antithetic,
            "active": self.active,
            "weights": None if self.weights is None else list(self.weights),
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], current: SearchDistribution | None = None
    ) -> SepCMAES:
        # a config saved before ``active`` existed ran the plain update
        return cls(**{"active": False, **{k: v for k, v in config.items() if k != "name"}})


@functools.lru_cache(maxsize=64)
def _parameters(
    dim: int, candidates: int, active: bool, weights: tuple[float, ...] | None
) -> CMAParameters:
    return sep_cma_parameters(dim, candidates, active=active, weights=weights)
