"""CMA-ES: the covariance matrix adaptation evolution strategy (Hansen's tutorial,
arXiv:1604.00772, with its default parameters), as a search distribution.

Members are ``θ + σ y``, ``y = B D z`` with ``z`` the perturbation family's standard normal
noise and ``C = B D² Bᵀ``; the state (σ, the paths ``p_σ``, ``p_c``, ``C``, ``B``, ``D``) does not
depend on θ, and the centre moves through the inner torch optimizer: the step's gradient is
CMA's mean shift ``c_m σ ⟨y⟩_w``, so ``torch.optim.SGD(params, lr=1.0)`` is CMA-ES itself.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch

from .._validation import check_int, check_real
from ._ranking import ranked_candidates
from .base import DistributionStep, SearchDistribution
from .cma_parameters import MIN_POPULATION, CMAParameters, check_weights, cma_parameters

__all__ = ["CMAES", "cma_initial_state", "cma_update", "cma_noise_map", "MAX_DIM"]

MAX_DIM = 10_000
"""Full CMA-ES's default dimension limit. ``C`` and ``B`` are dense float64 ``d × d`` matrices:
16 d² bytes (1.6 GB at d = 10⁴, 160 GB at 10⁵), each eigendecomposition costs O(d³) (about a
minute at d = 10⁴ on two CPU cores, amortised over ``⌈1/(10 d (c_1 + c_μ))⌉`` ≈ 70 generations
there) and each update O(λ d²)."""


def cma_initial_state(
    dim: int, sigma: float, *, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """The state at generation 0: ``σ = sigma``, ``p_σ = p_c = 0``, ``C = B = I``, ``D = 1``
    (float64 on ``device``; ``generation`` counts the updates, ``eigen_generation`` is the
    generation of the last eigendecomposition).

    Example:
        >>> sorted(cma_initial_state(3, 0.5))
        ['B', 'C', 'D', 'eigen_generation', 'generation', 'p_c', 'p_sigma', 'sigma']
    """
    check_int("dim", dim, low=1)
    sigma = check_real("sigma", sigma, low=0, low_open=True)
    f64 = {"dtype": torch.float64, "device": device}
    return {
        "sigma": torch.tensor(sigma, **f64),
        "p_sigma": torch.zeros(dim, **f64),
        "p_c": torch.zeros(dim, **f64),
        "C": torch.eye(dim, **f64),
        "B": torch.eye(dim, **f64),
        "D": torch.ones(dim, **f64),
        "generation": torch.tensor(0, dtype=torch.int64, device=device),
        "eigen_generation": torch.tensor(0, dtype=torch.int64, device=device),
    }


def cma_noise_map(state: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``A = B·diag(D)``, so that ``y = A z ~ N(0, C)``."""
    return state["B"] * state["D"]


def _eigen(C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(C, B, D)`` with ``C`` symmetrised and ``C = B diag(D²) Bᵀ`` (eigenvalues that round-off
    pushed to ≤ 0 are raised to a tiny fraction of the largest)."""
    C = (C + C.T) / 2
    eigenvalues, B = torch.linalg.eigh(C)
    floor = eigenvalues.max().clamp(min=0) * 1e-20 + torch.finfo(torch.float64).tiny
    return C, B, eigenvalues.clamp(min=floor).sqrt()


def cma_update(
    state: Mapping[str, torch.Tensor], z: torch.Tensor, params: CMAParameters
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One CMA-ES update from the ranked candidates' noise, as a pure function.

    ``z`` holds, best first, the signed standard normal noise ``z_k`` of the ranked candidates
    (candidate ``k`` is ``m + σ y_k`` with ``y_k = B D z_k``); rows whose weight is 0 may be
    omitted from the end. With the weights and constants of ``params``
    (:func:`~es_opt.distributions.cma_parameters.cma_parameters`) and ``g`` the number of
    earlier updates (Hansen's tutorial, eqs. 39–47)::

        ⟨y⟩_w = Σ_{i≤μ} w_i y_i = B D ⟨z⟩_w
        m'    = m + c_m σ ⟨y⟩_w                                   (returned: the caller moves m)
        p_σ'  = (1 − c_σ) p_σ + √(c_σ (2 − c_σ) μ_eff) C^{-1/2} ⟨y⟩_w,   C^{-1/2} ⟨y⟩_w = B ⟨z⟩_w
        σ'    = σ exp(c_σ/d_σ (‖p_σ'‖ / χ_n − 1))
        h_σ   = [‖p_σ'‖ / √(1 − (1 − c_σ)^{2(g+1)}) < (1.4 + 2/(n + 1)) χ_n]
        p_c'  = (1 − c_c) p_c + h_σ √(c_c (2 − c_c) μ_eff) ⟨y⟩_w
        w°_i  = w_i (w_i ≥ 0),   w_i n / ‖C^{-1/2} y_i‖² = w_i n / ‖z_i‖² (w_i < 0)
        C'    = (1 + c_1 δ(h_σ) − c_1 − c_μ Σ_j w_j) C + c_1 p_c' p_c'ᵀ + c_μ Σ_i w°_i y_i y_iᵀ
        δ(h_σ) = (1 − h_σ) c_c (2 − c_c)

    and ``B, D`` are recomputed from ``C'`` (``C' = B D² Bᵀ``) once ``params.eigen_interval``
    updates have passed since the last eigendecomposition; until then sampling and ``C^{-1/2}``
    use the previous ``B, D``, as in the tutorial.

    Returns:
        ``(⟨y⟩_w, next state)``: float64; nothing is modified in place.
    """
    all_weights = _weights(params.weights, z.device)
    if z.dim() != 2 or z.shape[1] != params.dim or bool((all_weights[z.shape[0] :] != 0).any()):
        needed = int((all_weights != 0).sum())
        raise ValueError(
            f"z must hold the {needed} best candidates' noise as a [k, {params.dim}] matrix, "
            f"got shape {tuple(z.shape)}"
        )
    weights = all_weights[: z.shape[0]]
    n = params.dim
    keep = weights != 0
    z, weights = z[keep], weights[keep]
    B, D, sigma = state["B"], state["D"], state["sigma"]
    positive = weights > 0
    z_w = weights[positive] @ z[positive]
    A = B * D
    y = z @ A.T
    y_w = weights[positive] @ y[positive]
    cs, cc = params.c_sigma, params.c_c
    p_sigma = (1 - cs) * state["p_sigma"] + math.sqrt(cs * (2 - cs) * params.mu_eff) * (B @ z_w)
    norm = torch.linalg.vector_norm(p_sigma)
    new_sigma = sigma * torch.exp(cs / params.d_sigma * (norm / params.chi_n - 1))
    g = int(state["generation"]) + 1
    h_sigma = float(norm / math.sqrt(1 - (1 - cs) ** (2 * g)) < (1.4 + 2 / (n + 1)) * params.chi_n)
    p_c = (1 - cc) * state["p_c"] + h_sigma * math.sqrt(cc * (2 - cc) * params.mu_eff) * y_w
    w_circ = torch.where(weights < 0, weights * n / z.square().sum(dim=1), weights)
    stall = params.c_1 * (1 - h_sigma) * cc * (2 - cc)
    decay = 1 + stall - params.c_1 - params.c_mu * params.weight_sum
    # one new d × d tensor, updated in place (the state's C is left as it was)
    C = state["C"] * decay
    C.addr_(p_c, p_c, alpha=params.c_1)
    C.addmm_(y.T * w_circ, y, alpha=params.c_mu)
    out = {
        "sigma": new_sigma,
        "p_sigma": p_sigma,
        "p_c": p_c,
        "C": C,
        "B": B,
        "D": D,
        "generation": state["generation"] + 1,
        "eigen_generation": state["eigen_generation"],
    }
    if g - int(state["eigen_generation"]) >= params.eigen_interval:
        out["C"], out["B"], out["D"] = _eigen(C)
        out["eigen_generation"] = out["generation"].clone()
    return y_w, out


class CMAES(SearchDistribution):
    """CMA-ES (Hansen's tutorial, arXiv:1604.00772; see :func:`cma_update` for the equations)
    with one member per draw (``antithetic=False``, the default) or mirrored pairs ``θ ± σ y_j``
    with pairwise selection (only the better member of each pair is ranked; Auger, Brockhoff &
    Hansen 2011).

    ``ESOptimizer(n_samples=λ)`` sets the population; ``sigma`` is the initial σ. With
    ``torch.optim.SGD(params, lr=1.0)`` as the inner optimizer the centre follows CMA's mean
    update exactly; any other torch optimizer takes ``c_m σ ⟨y⟩_w`` as its ascent direction.
    Every trainable parameter is modelled jointly (``C`` is ``d × d``): the dimension is limited
    to ``max_dim`` (:data:`MAX_DIM` by default); past it use ``distribution="sep_cma"``.

    Args:
        antithetic: mirrored pairs with pairwise selection (``n_samples`` even) instead of
            independent members.
        active: negative weights for the worse half (active CMA-ES, the default weights of the
            tutorial's Table 1; ``None``: on unless ``weights`` are given), or ``False`` for the
            zeros of the plain algorithm. On BBOB (f1–f24, d = 5 and 10, instances 1–2, 10³ d
            evaluations, ``benchmarks/bbob.py``) the plain weights reach an ECDF area 0.93 times
            pycma's, the active ones 1.00–1.06 times.
        weights: the ``μ`` positive recombination weights (non-increasing, summing to 1)
            instead of the default ``ln((λ+1)/2) − ln i``, normalised.
        max_dim: the largest dimension accepted (memory 16 d² bytes, eigendecomposition O(d³)).
        eigen_interval: generations between eigendecompositions (``None``: the tutorial's
            ``max(1, ⌈1/(10 d (c_1 + c_μ))⌉)``, as pycma).

    Example:
        >>> cma = CMAES()
        >>> cma.check(n_samples=3, dim=2)
        >>> cma.check(n_samples=10, dim=20_000)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: distribution='cma' models a dense 20000 × 20000 covariance...
    """

    name = "cma"
    full_model = True

    def __init__(
        self,
        *,
        antithetic: bool = False,
        active: bool | None = None,
        weights: Sequence[float] | None = None,
        max_dim: int = MAX_DIM,
        eigen_interval: int | None = None,
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
        self.max_dim = check_int("max_dim", max_dim, low=1)
        self.eigen_interval = (
            None if eigen_interval is None else check_int("eigen_interval", eigen_interval, low=1)
        )

    def candidates(self, n_samples: int) -> int:
        """How many members are ranked: ``n_samples``, or one per pair when mirrored."""
        return n_samples // 2 if self.antithetic else n_samples

    def check(self, n_samples: int, dim: int) -> None:
        if dim > self.max_dim:
            raise ValueError(
                f"distribution='cma' models a dense {dim} × {dim} covariance "
                f"({16 * dim * dim / 1e9:.1f} GB for C and B, an O(d³) eigendecomposition), "
                f"past max_dim={self.max_dim}: use distribution='sep_cma' (separable CMA-ES, "
                "O(d) memory and time) or the low-rank family "
                "(perturbation='lowrank(r)' with distribution='openai'), or raise max_dim"
            )
        check_candidates("cma", self, n_samples)

    def parameters(self, dim: int, n_samples: int) -> CMAParameters:
        """The constants of a generation of ``n_samples`` members over ``dim`` parameters."""
        return _parameters(
            dim, self.candidates(n_samples), self.active, self.weights, self.eigen_interval
        )

    def init_state(
        self,
        sigma: float,
        dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> dict[str, Any]:
        return cma_initial_state(dim, sigma, device=device)

    def sigma_of(self, state: Mapping[str, Any], generation: int, sigma: float) -> float:
        return float(state["sigma"])

    def noise_map(self, state: Mapping[str, Any]) -> torch.Tensor:
        return cma_noise_map(state)

    def step(
        self, scores: torch.Tensor, population: Any, state: Mapping[str, Any]
    ) -> DistributionStep:
        draws, signs = ranked_candidates(scores, population.antithetic)
        params = self.parameters(population.dim, population.n_evals)
        count = params.mu if not self.active else params.population_size
        draws, signs = draws[:count], signs[:count]
        z = population.perturbations(draws.tolist()).to(torch.float64)
        z = z * signs.to(z.device).unsqueeze(1)
        y_w, new_state = cma_update(state, z, params)
        center = population.center
        gradient = (params.c_m * state["sigma"] * y_w).to(dtype=center.dtype, device=center.device)
        return DistributionStep(gradient=gradient, state=new_state)

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "antithetic": self.antithetic,
            "active": self.active,
            "weights": None if self.weights is None else list(self.weights),
            "max_dim": self.max_dim,
            "eigen_interval": self.eigen_interval,
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], current: SearchDistribution | None = None
    ) -> CMAES:
        return cls(**{k: v for k, v in config.items() if k != "name"})


def check_candidates(name: str, distribution: Any, n_samples: int) -> None:
    """Raises ``ValueError`` unless ``n_samples`` members give enough ranked candidates for the
    distribution's weights (whole pairs when mirrored)."""
    if distribution.antithetic and n_samples % 2:
        raise ValueError(
            f"distribution={name!r} with antithetic=True needs an even n_samples (mirrored "
            f"pairs), got {n_samples}"
        )
    candidates = distribution.candidates(n_samples)
    needed = max(MIN_POPULATION, len(distribution.weights or ()))
    if candidates < needed:
        what = "mirrored pairs" if distribution.antithetic else "ranked candidates"
        raise ValueError(
            f"distribution={name!r} needs at least {needed} {what}, got n_samples={n_samples} "
            f"({candidates})"
        )


@functools.lru_cache(maxsize=64)
def _weights(weights: tuple[float, ...], device: torch.device) -> torch.Tensor:
    return torch.tensor(weights, dtype=torch.float64, device=device)


@functools.lru_cache(maxsize=64)
def _parameters(
    dim: int,
    candidates: int,
    active: bool,
    weights: tuple[float, ...] | None,
    interval: int | None,
) -> CMAParameters:
    params = cma_parameters(dim, candidates, active=active, weights=weights)
    return params if interval is None else replace(params, eigen_interval=interval)
