"""The search distribution's state over an :class:`~es_opt.ESOptimizer` run.

Two kinds: PGPE's / SNES's per-parameter σ is one flat vector over all trainable parameters (in
the model's order, ``ESState.sigma_vector``), of which each generation perturbs, and updates, the
slices of the selected parameters (layer sampling works); any other distribution's state
(CMA-ES: σ, paths, covariance factors) is ``ESState.distribution_state`` over the whole model,
which such a distribution (``full_model``) needs selected every generation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .._arguments import check_n_samples
from ..perturbations import Dense
from . import distribution_from_config
from .base import SearchDistribution, check_sigma_vector

__all__ = [
    "check_family",
    "check_model",
    "checked_sigma_vector",
    "gather",
    "generation_state",
    "initial_sigma_vector",
    "initial_state",
    "next_state",
    "scatter",
]


def _slices(params: Mapping[str, torch.Tensor]) -> dict[str, slice]:
    out, offset = {}, 0
    for name, param in params.items():
        out[name] = slice(offset, offset + param.numel())
        offset += param.numel()
    return out


def initial_sigma_vector(
    distribution: SearchDistribution, sigma: float, params: Mapping[str, torch.Tensor]
) -> torch.Tensor | None:
    """``sigma`` for every trainable parameter when the distribution adapts σ, else ``None``."""
    if not distribution.adapts_sigma:
        return None
    first = next(iter(params.values()))
    total = sum(p.numel() for p in params.values())
    return torch.full((total,), float(sigma), dtype=first.dtype, device=first.device)


def gather(
    vector: torch.Tensor, params: Mapping[str, torch.Tensor], names: Sequence[str]
) -> torch.Tensor:
    """The σ of the selected parameters ``names``, flat in their order (a new tensor)."""
    slices = _slices(params)
    return torch.cat([vector[slices[name]] for name in names])


def scatter(
    vector: torch.Tensor,
    params: Mapping[str, torch.Tensor],
    names: Sequence[str],
    values: torch.Tensor,
) -> torch.Tensor:
    """A copy of ``vector`` whose slices of ``names`` hold ``values`` (flat, in their order)."""
    slices, out, offset = _slices(params), vector.clone(), 0
    for name in names:
        size = slices[name].stop - slices[name].start
        out[slices[name]] = values[offset : offset + size]
        offset += size
    return out


def check_family(distribution: SearchDistribution, family: Any) -> None:
    """PGPE, SNES, CEM and the CMA-ES family need dense perturbations: a low-rank member
    ``θ ± σ A Bᵀ/√r`` is not a draw from a Gaussian ``N(θ, σ² C)`` (so no σ or covariance update
    holds), and its batched forward pass needs one σ per matrix."""
    if (distribution.adapts_sigma or distribution.full_model) and not isinstance(family, Dense):
        raise ValueError(
            f"distribution={distribution.name!r} needs dense perturbations, got "
            f"perturbation={family!r}: a low-rank member is not a draw from a Gaussian "
            "N(θ, σ² C), so the distribution's update does not hold (use distribution='openai', "
            "optionally with a sigma schedule, or perturbation='dense')"
        )


def checked_sigma_vector(
    vector: torch.Tensor | None, params: Mapping[str, torch.Tensor]
) -> torch.Tensor | None:
    """A saved σ vector moved to the parameters' dtype and device, after checking it has one
    value per trainable parameter."""
    if vector is None:
        return None
    total = sum(p.numel() for p in params.values())
    if vector.dim() != 1 or vector.numel() != total:
        raise ValueError(
            f"sigma_vector must hold one value per trainable parameter ({total} parameters), "
            f"got {vector.numel()}"
        )
    first = next(iter(params.values()))
    return check_sigma_vector("sigma_vector", vector.to(dtype=first.dtype, device=first.device))


def check_model(distribution: SearchDistribution, model: Any, n_samples: int) -> None:
    """The distribution's own checks of the population size and dimension, and, for a
    distribution of the whole model (CMA-ES), that every generation selects every parameter."""
    params = model.named_trainable_parameters()
    distribution.check(n_samples, sum(p.numel() for p in params.values()))
    if distribution.full_model and model.strategy.value != "all":
        raise ValueError(
            f"distribution={distribution.name!r} adapts a covariance over all trainable "
            f"parameters, so it needs SamplingStrategy.ALL, got strategy={model.strategy.value!r}"
        )


def check_population_size(es: Any, n_samples: Any) -> int:
    """A new ``n_samples`` for the run of ``es`` (an :class:`~es_opt.ESOptimizer`): an int ≥ 2,
    even for mirrored pairs, and one the distribution accepts for the model's dimension."""
    n_samples = check_n_samples(n_samples, es.distribution.antithetic)
    check_model(es.distribution, es.model, n_samples)
    return n_samples


def initial_state(
    distribution: SearchDistribution, sigma: float, params: Mapping[str, torch.Tensor]
) -> dict[str, Any]:
    """The distribution's state at generation 0 over all trainable parameters (empty for
    OpenAI-ES, and for PGPE / SNES, whose σ is the separate vector)."""
    if distribution.adapts_sigma:
        return {}
    first = next(iter(params.values()))
    total = sum(p.numel() for p in params.values())
    return distribution.init_state(sigma, total, dtype=first.dtype, device=first.device)


def generation_state(
    distribution: SearchDistribution,
    state: Any,
    generation: int,
    params: Mapping[str, torch.Tensor],
    names: Sequence[str],
) -> dict[str, Any]:
    """The state a generation is drawn from: ``{"sigma": selected slices of the σ vector}`` for
    PGPE / SNES, the run's distribution state otherwise."""
    if distribution.adapts_sigma:
        return {"sigma": gather(state.sigma_vector, params, names)}
    return state.distribution_state


def next_state(
    distribution: SearchDistribution,
    state: Any,
    params: Mapping[str, torch.Tensor],
    names: Sequence[str],
    step_state: Mapping[str, Any],
) -> tuple[torch.Tensor | None, dict[str, Any]]:
    """``(sigma_vector, distribution_state)`` after a step whose distribution returned
    ``step_state``."""
    if distribution.adapts_sigma:
        return scatter(state.sigma_vector, params, names, step_state["sigma"]), {}
    return state.sigma_vector, dict(step_state)


def restore(
    config: dict[str, Any],
    vector: torch.Tensor | None,
    saved_state: Mapping[str, Any],
    current: SearchDistribution,
    family: Any,
    params: Mapping[str, torch.Tensor],
) -> tuple[SearchDistribution, torch.Tensor | None, dict[str, Any]]:
    """The distribution, σ vector and distribution state of a loaded state, checked against
    the model and the perturbation family (``current`` resolves a schedule function saved by its
    name)."""
    distribution = (
        current if config == current.config() else distribution_from_config(config, current)
    )
    check_family(distribution, family)
    state: dict[str, Any] = {}
    if not distribution.adapts_sigma:
        total = sum(p.numel() for p in params.values())
        state = distribution.check_state(saved_state, total)
    return distribution, checked_sigma_vector(vector, params), state
