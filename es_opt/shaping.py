"""Fitness shaping: pure functions ``Tensor[n] -> Tensor[n]``, one per method, and the weighting
of several objectives into one score per evaluation.

Rank-based shaping (Wierstra et al. 2014; Salimans et al. 2017) makes the step invariant to any
strictly increasing transform of the fitness and bounds the influence of outliers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["centered_ranks", "z_score", "raw", "SHAPINGS", "weighted_scores"]


def centered_ranks(fitness: torch.Tensor) -> torch.Tensor:
    """Ranks scaled to ``[-0.5, 0.5]``; tied values share their average rank.

    ``rank_i / (n - 1) - 0.5`` with ranks counted from 0. The result sums to zero, is bounded by
    ±0.5 and depends only on the order of the values. A single value gets 0.

    Example:
        >>> centered_ranks(torch.tensor([10.0, -3.0, 10.0, 7.0])).tolist()
        [0.3333333333333333, -0.5, 0.3333333333333333, -0.16666666666666666]
    """
    x = fitness.to(torch.float64).flatten()
    n = x.numel()
    if n < 2:
        return torch.zeros_like(x)
    _, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True)
    counts = counts.to(torch.float64)
    first_rank = torch.cumsum(counts, 0) - counts
    average_rank = first_rank + (counts - 1.0) / 2.0
    return average_rank[inverse] / (n - 1) - 0.5


def z_score(fitness: torch.Tensor) -> torch.Tensor:
    """``(f - mean) / std`` (population std); all zeros when every value is the same.

    Example:
        >>> z_score(torch.tensor([1.0, 3.0])).tolist()
        [-1.0, 1.0]
    """
    x = fitness.to(torch.float64).flatten()
    centred = x - x.mean()
    std = centred.pow(2).mean().sqrt()
    if std == 0:
        return torch.zeros_like(x)
    return centred / std


def raw(fitness: torch.Tensor) -> torch.Tensor:
    """The fitness unchanged (as float64): the plain Monte-Carlo estimator.

    Example:
        >>> raw(torch.tensor([2.0, 5.0])).tolist()
        [2.0, 5.0]
    """
    return fitness.to(torch.float64).flatten().clone()


SHAPINGS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "centered_ranks": centered_ranks,
    "z_score": z_score,
    "raw": raw,
}


def weighted_scores(
    fitness: torch.Tensor,
    weights: Sequence[float] | torch.Tensor,
    shaping: Callable[[torch.Tensor], torch.Tensor] = centered_ranks,
) -> torch.Tensor:
    """Shapes each objective (column of ``fitness``, ``[n_evals, n_objectives]``) separately and
    sums them with ``weights``: ``s_i = Σ_k w_k · shaping(F[:, k])_i``.

    A negative weight minimises that objective.

    Example:
        >>> F = torch.tensor([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
        >>> weighted_scores(F, [1.0, -1.0]).tolist()
        [-0.5, 0.0, 0.5]
    """
    w = torch.as_tensor(weights, dtype=torch.float64)
    if fitness.dim() != 2 or fitness.shape[1] != w.numel():
        raise ValueError(
            f"fitness must have shape [n_evals, {w.numel()}] for {w.numel()} objective weights, "
            f"got {tuple(fitness.shape)}"
        )
    scores = torch.zeros(fitness.shape[0], dtype=torch.float64)
    for k in range(w.numel()):
        scores += w[k] * shaping(fitness[:, k])
    return scores
