"""The two sums over antithetic pairs that every adaptive search distribution needs.

For pairs ``j`` with standard normal noise ``z_j ∈ R^d`` (the member pair is ``θ ± σ ⊙ z_j``) and
per-pair weights ``a_j``, ``b_j``::

    first  = Σ_j a_j z_j                 (drives the centre)
    second = Σ_j b_j (z_j ⊙ z_j − 1)     (drives σ)

Both are linear in the rows of ``Z = [z_1; …; z_P]``, so they are computed a bounded block of
rows at a time, each block two matrix products: memory stays O(block × d) however many pairs
there are (the same bound as :func:`es_opt.estimator.estimate_gradient`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["pair_moments", "dense_rows", "DEFAULT_BLOCK_ELEMENTS"]

DEFAULT_BLOCK_ELEMENTS = 1 << 22  # 16 MB of float32 noise per block

NoiseRows = Callable[[range], torch.Tensor]


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
    second_weights: torch.Tensor,
    noise_rows: NoiseRows,
    *,
    dim: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Σ_j a_j z_j, Σ_j b_j (z_j² − 1))`` with ``a = first_weights``, ``b = second_weights``
    and ``noise_rows(range)`` giving the rows ``z_j`` of those pairs.

    Example:
        >>> Z = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
        >>> first, second = pair_moments(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0]),
        ...                              dense_rows(Z), dim=2)
        >>> first.tolist(), second.tolist()
        ([1.0, 0.0], [-1.0, 3.0])
    """
    n_pairs = first_weights.numel()
    if second_weights.numel() != n_pairs:
        raise ValueError(
            f"first_weights and second_weights must have one value per pair, got "
            f"{n_pairs} and {second_weights.numel()}"
        )
    first = torch.zeros(dim, dtype=dtype, device=device)
    second = torch.zeros(dim, dtype=dtype, device=device)
    a = first_weights.to(device=device, dtype=dtype)
    b = second_weights.to(device=device, dtype=dtype)
    block = max(1, block_elements // max(1, dim))
    for start in range(0, n_pairs, block):
        stop = min(n_pairs, start + block)
        z = noise_rows(range(start, stop)).to(device=device, dtype=dtype)
        first += a[start:stop] @ z
        # Σ b_j (z_j² − 1) = bᵀ(Z⊙Z) − Σ b_j: one product, no [block, d] temporary besides Z⊙Z
        second += b[start:stop] @ z.square() - b[start:stop].sum()
    return first, second
