"""The antithetic ES gradient estimate, a pure function on tensors.

For ``P`` pairs (``n = 2P`` evaluations) with shaped scores ``s⁺_j = s_{2j}``, ``s⁻_j = s_{2j+1}``::

    g = 1 / (n σ) · Σ_j (s⁺_j − s⁻_j) ε_j = (s⁺ − s⁻)ᵀ E / (n σ)

which, for raw scores of a linear f(θ) = w·θ, is an unbiased estimate of w (Salimans et al. 2017,
eq. 1 with mirrored sampling). ``E`` is built a bounded block of rows at a time, so memory stays
O(block × parameters) however large the population; each block is one matrix product.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["estimate_gradient", "pair_differences"]

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
