"""The sums over antithetic pairs that every ES estimate is made of, as pure functions on tensors,
computed a bounded block of pairs at a time.

For ``P`` pairs (``n = 2P`` evaluations) with shaped scores ``s⁺_j = s_{2j}``, ``s⁻_j = s_{2j+1}``
and standard normal (or family) noise rows ``z_j``, the antithetic estimate is::

    g = 1 / (n σ) · Σ_j (s⁺_j − s⁻_j) z_j = (s⁺ − s⁻)ᵀ Z / (n σ)

which, for raw scores of a linear f(θ) = w·θ, is an unbiased estimate of w (Salimans et al. 2017,
eq. 1 with mirrored sampling). Adaptive distributions (PGPE, SNES) also need a second sum,
``Σ_j b_j (z_j ⊙ z_j − 1)``, which drives σ. Both are linear in the rows of ``Z``, so they are
built a block of rows at a time (:func:`pair_blocks`, the one block loop: this module's sums and a
family's own estimate, :meth:`es_opt.perturbations.Perturbation.estimate`, use it): memory stays
O(block × parameters) however large the population, and each block is one matrix product.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

__all__ = [
    "DEFAULT_BLOCK_ELEMENTS",
    "NoiseRows",
    "dense_rows",
    "estimate_gradient",
    "pair_blocks",
    "pair_differences",
    "pair_moments",
]

DEFAULT_BLOCK_ELEMENTS = 1 << 22  # 16 MB of float32 noise per block

NoiseRows = Callable[[range], torch.Tensor]
"""``range -> Tensor[len(range), dim]``: the noise rows of those pairs."""


def pair_blocks(
    n_pairs: int, per_pair: int, block_elements: int = DEFAULT_BLOCK_ELEMENTS
) -> Iterator[range]:
    """Consecutive ranges of pairs covering ``0 … n_pairs − 1``, each holding at most
    ``block_elements`` noise values (at least one pair) when a pair draws ``per_pair`` of them.

    Example:
        >>> [list(r) for r in pair_blocks(5, per_pair=3, block_elements=6)]
        [[0, 1], [2, 3], [4]]
    """
    block = max(1, block_elements // max(1, per_pair))
    for start in range(0, n_pairs, block):
        yield range(start, min(n_pairs, start + block))


def pair_differences(scores: torch.Tensor) -> torch.Tensor:
    """``s⁺_j − s⁻_j`` for every pair, from scores in evaluation order (``+`` at even indices).

    Example:
        >>> pair_differences(torch.tensor([3.0, 1.0, 0.0, 2.0])).tolist()
        [2.0, -2.0]
    """
    if scores.dim() != 1 or scores.numel() % 2:
        raise ValueError(f"scores must be 1-D with an even length, got shape {tuple(scores.shape)}")
    return scores[0::2] - scores[1::2]


def dense_rows(eps: torch.Tensor) -> NoiseRows:
    """``noise_rows`` for a dense ``[P, d]`` matrix of per-pair noise.

    Example:
        >>> dense_rows(torch.eye(3))(range(1, 3)).tolist()
        [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    if eps.dim() != 2:
        raise ValueError(f"eps must be a [pairs, dim] matrix, got shape {tuple(eps.shape)}")
    return lambda rows: eps[rows.start : rows.stop]


def pair_moments(
    first_weights: torch.Tensor,
    second_weights: torch.Tensor | None,
    noise_rows: NoiseRows,
    *,
    dim: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(Σ_j a_j z_j, Σ_j b_j (z_j² − 1))`` with ``a = first_weights``, ``b = second_weights``
    (``None``: the second sum is skipped and returned as ``None``) and ``noise_rows(range)``
    giving the rows ``z_j`` of those pairs.

    Example:
        >>> Z = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
        >>> first, second = pair_moments(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0]),
        ...                              dense_rows(Z), dim=2)
        >>> first.tolist(), second.tolist()
        ([1.0, 0.0], [-1.0, 3.0])
    """
    n_pairs = first_weights.numel()
    if second_weights is not None and second_weights.numel() != n_pairs:
        raise ValueError(
            f"first_weights and second_weights must have one value per pair, got "
            f"{n_pairs} and {second_weights.numel()}"
        )
    first = torch.zeros(dim, dtype=dtype, device=device)
    second = None if second_weights is None else torch.zeros(dim, dtype=dtype, device=device)
    a = first_weights.to(device=device, dtype=dtype)
    b = None if second_weights is None else second_weights.to(device=device, dtype=dtype)
    for rows in pair_blocks(n_pairs, dim, block_elements):
        z = noise_rows(rows).to(device=device, dtype=dtype)
        first += a[rows.start : rows.stop] @ z
        if b is not None:
            # Σ b_j (z_j² − 1) = bᵀ(Z⊙Z) − Σ b_j: one product, no temporary besides Z⊙Z
            part = b[rows.start : rows.stop]
            second += part @ z.square() - part.sum()
    return first, second


def estimate_gradient(
    scores: torch.Tensor,
    noise_rows: NoiseRows,
    *,
    sigma: float,
    dim: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> torch.Tensor:
    """``g = (s⁺ − s⁻)ᵀ Z / (n σ)``, with ``noise_rows(range)`` giving the rows of ``Z``.

    Example:
        >>> E = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> estimate_gradient(torch.tensor([1.0, 0.0, 0.0, 1.0]), lambda r: E[r.start:r.stop],
        ...                   sigma=0.5, dim=2).tolist()
        [0.5, -0.5]
    """
    diffs = pair_differences(scores)
    gradient, _ = pair_moments(
        diffs, None, noise_rows, dim=dim, dtype=dtype, device=device, block_elements=block_elements
    )
    return gradient / (scores.numel() * sigma)
