"""Fitness shaping: pure functions ``Tensor[n] -> Tensor[n]``, one per method, and the weighting
of several objectives into one score per evaluation.

Rank-based shaping (Wierstra et al. 2014; Salimans et al. 2017) makes the step invariant to any
strictly increasing transform of the fitness and bounds the influence of outliers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ._spec import Form, format_spec, parse_spec

__all__ = [
    "centered_ranks",
    "centered_ranks_ordinal",
    "z_score",
    "raw",
    "TopPairs",
    "SHAPINGS",
    "FORMS",
    "parse_shaping",
    "weighted_scores",
]


def centered_ranks(fitness: torch.Tensor) -> torch.Tensor:
    """Ranks scaled to ``[-0.5, 0.5]``; tied values share their average rank.

    ``rank_i / (n - 1) - 0.5`` with ranks counted from 0. The result sums to zero, is bounded by
    ±0.5 and depends only on the order of the values. A single value gets 0.

    Example:
        >>> [round(v, 4) for v in centered_ranks(torch.tensor([10.0, -3.0, 10.0, 7.0])).tolist()]
        [0.3333, -0.5, 0.3333, -0.1667]
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


def centered_ranks_ordinal(fitness: torch.Tensor) -> torch.Tensor:
    """Ranks scaled to ``[-0.5, 0.5]``, tied values ranked by position (the earlier one lower).

    The centered ranks of OpenAI's ES code and EvoTorch (an ``argsort`` of the fitness), where
    :func:`centered_ranks` gives tied values their average. The difference shows when many
    evaluations tie, e.g. an accuracy over a fixed set: with average ranks an antithetic pair
    whose members tie does not move the centre; with ordinal ranks its minus member (at the odd
    index) ranks just above its plus member, so the pair takes a small step along ``-ε``, a
    zero-mean random direction that keeps a normalised optimizer (ClipUp) exploring a plateau.
    The result is a permutation of ``i / (n - 1) - 0.5``, ``i = 0 … n-1``.

    Example:
        >>> ranks = centered_ranks_ordinal(torch.tensor([10.0, -3.0, 10.0, 7.0]))
        >>> [round(v, 4) for v in ranks.tolist()]
        [0.1667, -0.5, 0.5, -0.1667]
    """
    x = fitness.to(torch.float64).flatten()
    n = x.numel()
    if n < 2:
        return torch.zeros_like(x)
    order = torch.argsort(x, stable=True)
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(n, dtype=torch.float64) / (n - 1) - 0.5
    return ranks


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


@dataclass(frozen=True)
class TopPairs:
    """Augmented Random Search's top-direction shaping (Mania et al. 2018, ARS V1-t / V2-t).

    Keeps the ``k`` antithetic pairs whose better member, ``max(f⁺, f⁻)``, is highest, divides
    their fitness by the standard deviation of the ``2k`` kept values and gives every other pair
    0. Scores are in evaluation order (``+`` at even indices, as everywhere in es_opt) and are
    scaled by ``P / k`` (``P`` pairs), so that the estimator's ``1 / (n σ)`` becomes
    ``1 / (2 k σ)``: the mean over the kept pairs. ARS's update ``α / (k σ_R) Σ (r⁺ − r⁻) δ``
    is then SGD (no momentum) with ``lr = 2 σ α``.

    Dropping the pairs whose both members did poorly cuts the noise of the estimate on tasks
    where most directions are useless, e.g. MuJoCo locomotion. Ties in ``max(f⁺, f⁻)`` keep the
    lower pair index. ``k >= P`` keeps every pair (ARS V1 / V2).

    As a string: ``shaping="top_pairs(8)"``, its :attr:`spec` and ``__name__`` (what
    ``ESOptimizer.state_dict`` stores).

    Example:
        >>> shape = TopPairs(1)
        >>> shape(torch.tensor([1.0, 3.0, 10.0, 6.0])).tolist()  # pair 1 has the best member
        [0.0, 0.0, 10.0, 6.0]
    """

    k: int

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"TopPairs needs a positive int k (pairs kept), got {self.k!r}")

    @property
    def spec(self) -> str:
        """``"top_pairs(k)"``."""
        return format_spec("top_pairs", self.k)

    @property
    def __name__(self) -> str:  # a shaping function's name is what a state dict records
        return self.spec

    def __call__(self, fitness: torch.Tensor) -> torch.Tensor:
        x = fitness.to(torch.float64).flatten()
        if x.numel() % 2:
            raise ValueError(
                f"TopPairs needs antithetic pairs (an even number of values), got {x.numel()}"
            )
        plus, minus = x[0::2], x[1::2]
        n_pairs = plus.numel()
        k = min(self.k, n_pairs)
        best = torch.maximum(plus, minus)
        kept = torch.sort(torch.argsort(best, descending=True, stable=True)[:k]).values
        values = torch.stack([plus[kept], minus[kept]], dim=1)  # [k, 2]
        out = torch.zeros_like(x)
        std = values.std(unbiased=False)
        if std == 0:
            return out
        values = values / std * (n_pairs / k)
        out[2 * kept] = values[:, 0]
        out[2 * kept + 1] = values[:, 1]
        return out


SHAPINGS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "centered_ranks": centered_ranks,
    "centered_ranks_ordinal": centered_ranks_ordinal,
    "z_score": z_score,
    "raw": raw,
}


FORMS = (*(Form(name) for name in SHAPINGS), Form("top_pairs", "k"))
"""The string forms of ``shaping`` (the grammar of :mod:`es_opt._spec`)."""


def parse_shaping(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The shaping a name stands for: a key of :data:`SHAPINGS` or ``"top_pairs(k)"``.

    Raises:
        ValueError: any other string, naming ``shaping`` and the value.

    Example:
        >>> parse_shaping("top_pairs(4)")
        TopPairs(k=4)
        >>> parse_shaping("top_pairs(")
        Traceback (most recent call last):
        ...
        ValueError: shaping must be one of 'centered_ranks', 'centered_ranks_ordinal', 'z_score', 'raw', 'top_pairs(k)' or a function, got 'top_pairs('
    """  # noqa: E501
    form, k = parse_spec(name, "shaping", FORMS, alternatives=" or a function")
    return TopPairs(k) if form.name == "top_pairs" else SHAPINGS[form.name]


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
