"""Selection for the CMA-ES family: which members are ranked, in what order, and the weighted sums
over their noise a bounded block at a time.

Without mirroring every member ``θ + σ y_i`` is a candidate. With mirrored pairs
``θ ± σ y_j`` only the better member of each pair is (*pairwise selection*, Auger, Brockhoff &
Hansen 2011, "Mirrored sampling in evolution strategies with weighted recombination", GECCO):
ranking both members would let ``y_j`` and ``−y_j`` both enter the recombination, where they
cancel and bias the step size down. The ``P`` pair winners are then ranked and recombined with
the default weights of a population of ``P``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["ranked_candidates", "weighted_noise_moments"]

NoiseRows = Callable[[range], torch.Tensor]

DEFAULT_BLOCK_ELEMENTS = 1 << 22


def ranked_candidates(scores: torch.Tensor, antithetic: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(draws, signs)`` of the ranked candidates, best first: candidate ``k`` is the member
    ``θ + signs[k] σ y_{draws[k]}``. Higher scores are better; ties go to the lower evaluation
    index (within a pair, to the ``+`` member).

    Example:
        >>> draws, signs = ranked_candidates(torch.tensor([0.0, 3.0, 2.0, 1.0]), antithetic=True)
        >>> draws.tolist(), signs.tolist()
        ([0, 1], [-1.0, 1.0])
        >>> ranked_candidates(torch.tensor([0.0, 3.0, 2.0]), antithetic=False)[0].tolist()
        [1, 2, 0]
    """
    x = scores.to(torch.float64).flatten()
    if not antithetic:
        order = torch.argsort(x, descending=True, stable=True)
        return order, torch.ones(order.numel(), dtype=torch.float64)
    if x.numel() % 2:
        raise ValueError(f"mirrored sampling needs whole pairs, got {x.numel()} scores")
    plus, minus = x[0::2], x[1::2]
    minus_wins = minus > plus
    best = torch.where(minus_wins, minus, plus)
    # among equal winners the lower pair (hence the lower evaluation index) comes first
    order = torch.argsort(best, descending=True, stable=True)
    signs = torch.where(minus_wins[order], -1.0, 1.0).to(torch.float64)
    return order, signs


def weighted_noise_moments(
    weights: torch.Tensor,
    draws: torch.Tensor,
    signs: torch.Tensor,
    noise_rows: Callable[[list[int]], torch.Tensor],
    dim: int,
    *,
    device: torch.device | str = "cpu",
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Σ_{w_k>0} w_k s_k z_k, Σ_k w°_k z_k²)`` over the candidates with a non-zero weight, in
    float64 on ``device``, reading ``noise_rows(draws)`` (the standard normal ``z`` of those
    draws) a bounded block of rows at a time: O(block × d) memory however many members there are.
    Negative (active) weights enter only the second sum, scaled as active CMA-ES scales them,
    ``w°_k = w_k d / ‖z_k‖²`` (``‖C^{-1/2} y_k‖ = ‖z_k‖`` for a diagonal ``C``); positive ones
    are used as they are.

    Example:
        >>> z = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
        >>> first, second = weighted_noise_moments(torch.tensor([0.75, 0.25]),
        ...     torch.tensor([1, 0]), torch.tensor([1.0, -1.0]), lambda rows: z[rows], 2)
        >>> first.tolist(), second.tolist()
        ([2.0, 2.5], [7.0, 13.0])
    """
    keep = torch.nonzero(weights != 0).flatten()
    first = torch.zeros(dim, dtype=torch.float64, device=device)
    second = torch.zeros(dim, dtype=torch.float64, device=device)
    block = max(1, block_elements // max(1, dim))
    for start in range(0, keep.numel(), block):
        rows = keep[start : start + block]
        z = noise_rows(draws[rows].tolist()).to(device=device, dtype=torch.float64)
        w = weights[rows].to(device=device, dtype=torch.float64)
        square = z.square()
        first += (w.clamp(min=0) * signs[rows].to(device)) @ z
        if bool((w < 0).any()):  # active weights: only then the rows' squared norms
            w = torch.where(w < 0, w * dim / square.sum(dim=1), w)
        second += w @ square
    return first, second
