"""The per-parameter σ of an :class:`~es_opt.ESOptimizer` run: one flat vector over all trainable
parameters (in the model's order), of which each generation perturbs, and updates, the slices of
the selected parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..perturbations import Dense
from . import distribution_from_config
from .base import SearchDistribution, check_sigma_vector

__all__ = ["initial_sigma_vector", "gather", "scatter", "check_family", "checked_sigma_vector"]


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
    """PGPE and SNES need dense perturbations: a low-rank member ``θ ± σ A Bᵀ/√r`` is not a draw
    from ``N(θ, diag σ²)`` (so neither σ update holds), and its batched forward pass needs one σ
    per matrix."""
    if distribution.adapts_sigma and not isinstance(family, Dense):
        raise ValueError(
            f"distribution={distribution.name!r} needs dense perturbations, got "
            f"perturbation={family!r}: a low-rank member is not a draw from N(θ, diag σ²), so "
            "the per-parameter σ update does not hold (use distribution='openai', optionally "
            "with a sigma schedule, or perturbation='dense')"
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


def generation_sigma(
    distribution: SearchDistribution,
    sigma: float,
    vector: torch.Tensor | None,
    generation: int,
    params: Mapping[str, torch.Tensor],
    names: Sequence[str],
) -> float | torch.Tensor:
    """The σ a generation perturbs ``names`` with: the selected slices of the σ vector (PGPE,
    SNES), or the scalar σ after the distribution's schedule (OpenAI-ES)."""
    if distribution.adapts_sigma:
        return gather(vector, params, names)
    return distribution.sigma_at(generation, sigma)


def restore(
    config: dict[str, Any],
    vector: torch.Tensor | None,
    current: SearchDistribution,
    family: Any,
    params: Mapping[str, torch.Tensor],
) -> tuple[SearchDistribution, torch.Tensor | None]:
    """The distribution and σ vector of a loaded state, checked against the model and the
    perturbation family (``current`` resolves a schedule function saved by its name)."""
    distribution = (
        current if config == current.config() else distribution_from_config(config, current)
    )
    check_family(distribution, family)
    return distribution, checked_sigma_vector(vector, params)
