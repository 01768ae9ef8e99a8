"""The antithetic ES gradient estimate, a pure function on tensors.

For ``P`` pairs (``n = 2P`` evaluations) with shaped scores ``s⁺_j = s_{2j}``, ``s⁻_j = s_{2j+1}``::

    g = 1 / (n σ) · Σ_j (s⁺_j − s⁻_j) ε_j = (s⁺ − s⁻)ᵀ E / (n σ)

which, for raw scores of a linear f(θ) = w·θ, is an unbiased estimate of w (Salimans et al. 2017,
eq. 1 with mirrored sampling). ``E`` is built a bounded block of rows at a time, so memory stays
O(block × parameters) however large the population; each block is one matrix product.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from .shaping import weighted_scores

if TYPE_CHECKING:
    from .population import Population

__all__ = ["es_gradient", "estimate_gradient", "pair_differences"]

DEFAULT_BLOCK_ELEMENTS = 1 << 22  # 16 MB of float32 noise per block


def pair_differences(scores: torch.Tensor) -> torch.Tensor:
    """``s⁺_j − s⁻_j`` for every pair, from scores in evaluation order (``+`` at even indices).

    Example:
        >>> pair_differences(torch.tensor([3.0, 1.0, 0.0, 2.0])).tolist()
        [2.0, -2.0]
    """
    if scores.dim() != 1 or scores.numel() % 2:
        raise ValueError(f"scores must be 1-D with an even length, got shape {tuple(scores.shape)}")
    return scores[0::2] - scores[1::2]


def estimate_gradient(
    scores: torch.Tensor,
    noise_rows: Callable[[range], torch.Tensor],
    *,
    sigma: float,
    dim: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> torch.Tensor:
    """``g = (s⁺ − s⁻)ᵀ E / (n σ)``, with ``noise_rows(range)`` giving the rows of ``E``.

    Example:
        >>> E = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> estimate_gradient(torch.tensor([1.0, 0.0, 0.0, 1.0]), lambda r: E[r.start:r.stop],
        ...                   sigma=0.5, dim=2).tolist()
        [0.5, -0.5]
    """
    diffs = pair_differences(scores)
    n_evals = scores.numel()
    n_pairs = diffs.numel()
    gradient = torch.zeros(dim, dtype=dtype, device=device)
    block = max(1, block_elements // max(1, dim))
    for start in range(0, n_pairs, block):
        rows = range(start, min(n_pairs, start + block))
        weights = diffs[rows.start : rows.stop].to(device=device, dtype=dtype)
        gradient += weights @ noise_rows(rows)
    return gradient / (n_evals * sigma)


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
