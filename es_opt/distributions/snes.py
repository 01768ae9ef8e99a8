"""SNES: separable natural evolution strategies (Wierstra et al. 2014, JMLR 15, Algorithm 6), with
es_opt's antithetic pairs as mirrored samples."""

from __future__ import annotations

import math
from typing import Any

import torch

from .._validation import check_choice, check_real
from ..estimator import DEFAULT_BLOCK_ELEMENTS, NoiseRows, pair_moments
from .base import (
    AdaptiveDistribution,
    SearchDistribution,
    check_sigma_vector,
    check_stdev_bounds,
    clip_sigma,
    default_snes_stdev_lr,
)

__all__ = ["SNES", "snes_step", "nes_utilities", "UTILITIES"]

UTILITIES = ("nes", "shaped")


def nes_utilities(scores: torch.Tensor) -> torch.Tensor:
    """NES fitness shaping (Wierstra et al. 2014, §3.1): with ``λ`` values ranked from the best
    (``k = 1``) to the worst (``k = λ``),

    .. math:: u_k = \\frac{\\max(0, \\ln(\\lambda/2 + 1) - \\ln k)}
                          {\\sum_{l=1}^{\\lambda} \\max(0, \\ln(\\lambda/2 + 1) - \\ln l)}
                    - \\frac{1}{\\lambda}

    in the scores' own order. Tied scores share the mean of their utilities (so ties cannot
    favour the lower index); the utilities sum to 0.

    Example:
        >>> [round(u, 4) for u in nes_utilities(torch.tensor([3.0, 1.0, 2.0, 0.0])).tolist()]
        [0.4804, -0.25, 0.0196, -0.25]
        >>> nes_utilities(torch.tensor([1.0, 1.0, 1.0, 1.0])).abs().max().item() < 1e-15
        True
    """
    x = scores.to(torch.float64).flatten()
    n = x.numel()
    if n < 2:
        return torch.zeros_like(x)
    k = torch.arange(1, n + 1, dtype=torch.float64)
    raw = (math.log(n / 2 + 1) - torch.log(k)).clamp(min=0)
    by_rank = raw / raw.sum() - 1.0 / n  # utility of the k-th best
    _, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True)
    # k-th best = position n-k in ascending order; tied values take the mean of their block
    ascending = by_rank.flip(0)
    ends = torch.cumsum(counts, 0)
    starts = ends - counts
    block_sums = torch.cumsum(torch.cat([ascending.new_zeros(1), ascending]), 0)
    block_mean = (block_sums[ends] - block_sums[starts]) / counts.to(torch.float64)
    return block_mean[inverse]


def snes_step(
    scores: torch.Tensor,
    noise_rows: NoiseRows,
    sigma: torch.Tensor,
    *,
    stdev_lr: float,
    utilities: str = "nes",
    stdev_max_change: float | None = None,
    stdev_min: float | None = None,
    stdev_max: float | None = None,
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SNES update (Wierstra et al. 2014, Algorithm 6), as a pure function.

    The ``λ = 2P`` evaluations are the mirrored samples ``s_{2j} = z_j``, ``s_{2j+1} = −z_j``
    (members ``θ + σ ⊙ s_k``). Each evaluation gets its own utility ``u_k`` (its rank among all
    ``λ``, :func:`nes_utilities`; or, with ``utilities="shaped"``, the given scores divided by
    ``Σ|s|`` as EvoTorch does for other rankings), and Algorithm 6 applies unchanged::

        ∇_μ J = Σ_k u_k s_k          = Σ_j (u⁺_j − u⁻_j) z_j
        ∇_σ J = Σ_k u_k (s_k² − 1)   = Σ_j (u⁺_j + u⁻_j)(z_j² − 1)
        μ ← μ + η_μ σ ⊙ ∇_μ J        (the caller's optimizer: SGD with lr = η_μ = 1 is the paper)
        σ ← σ ⊙ exp(η_σ/2 · ∇_σ J)

    (the pair forms hold because ``(−z_j)² = z_j²``). Optional ``stdev_max_change`` /
    ``stdev_min`` / ``stdev_max`` clip σ as in :func:`~es_opt.distributions.base.clip_sigma`
    (off by default, as in the paper).

    Returns:
        ``(σ ⊙ ∇_μ J, σ')``, of ``sigma``'s dtype and device.
    """
    check_sigma_vector("sigma", sigma)
    x = scores.to(torch.float64).flatten()
    if x.numel() < 2 or x.numel() % 2:
        raise ValueError(f"scores must hold whole antithetic pairs, got {x.numel()} values")
    check_choice("utilities", utilities, UTILITIES)
    if utilities == "nes":
        u = nes_utilities(x)
    else:
        total = x.abs().sum()
        u = x / total if total > 0 else torch.zeros_like(x)
    first, second = pair_moments(
        u[0::2] - u[1::2],
        u[0::2] + u[1::2],
        noise_rows,
        dim=sigma.numel(),
        dtype=sigma.dtype,
        device=sigma.device,
        block_elements=block_elements,
    )
    new_sigma = clip_sigma(
        sigma,
        sigma * torch.exp(stdev_lr / 2 * second),
        max_change=stdev_max_change,
        low=stdev_min,
        high=stdev_max,
    )
    check_sigma_vector("SNES's updated sigma (lower stdev_lr or set stdev_min)", new_sigma)
    return sigma * first, new_sigma


class SNES(AdaptiveDistribution):
    """Separable NES (Wierstra et al. 2014, Algorithm 6): the centre follows the natural gradient
    ``σ ⊙ Σ u_k s_k`` through the inner torch optimizer, and log σ follows ``Σ u_k (s_k² − 1)``
    with learning rate ``η_σ`` (see :func:`snes_step`). O(d) memory.

    With ``torch.optim.SGD(params, lr=1.0)`` as the inner optimizer this is the paper's SNES
    (``η_μ = 1``); any other torch optimizer takes the natural gradient as its input.

    Args:
        stdev_lr: ``η_σ`` (> 0), or ``None`` for the paper's default ``(3 + ln d) / (5 √d)``
            with ``d`` the number of perturbed parameters.
        utilities: ``"nes"`` (default): the paper's rank utilities of the weighted scores;
            ``"shaped"``: the optimizer's shaped scores themselves (e.g. ``top_pairs(k)``),
            divided by their absolute sum.
        stdev_max_change, stdev_min, stdev_max: optional σ safeguards, as for
            :class:`~es_opt.distributions.PGPE` (off by default).

    Example:
        >>> from es_opt.estimator import dense_rows
        >>> snes = SNES(stdev_lr=0.5)
        >>> z = torch.tensor([[1.0, 0.0]])
        >>> gradient, sigma = snes.update(torch.tensor([1.0, 0.0]), dense_rows(z), torch.ones(2))
        >>> gradient.tolist()
        [1.0, 0.0]
    """

    name = "snes"

    def __init__(
        self,
        stdev_lr: float | None = None,
        utilities: str = "nes",
        stdev_max_change: float | None = None,
        stdev_min: float | None = None,
        stdev_max: float | None = None,
    ):
        self.stdev_lr = (
            None if stdev_lr is None else check_real("stdev_lr", stdev_lr, low=0, low_open=True)
        )
        self.utilities = check_choice("utilities", utilities, UTILITIES)
        self.stdev_min, self.stdev_max, self.stdev_max_change = check_stdev_bounds(
            stdev_min, stdev_max, stdev_max_change
        )

    def stdev_lr_for(self, dim: int) -> float:
        """``η_σ`` for ``dim`` perturbed parameters."""
        return default_snes_stdev_lr(dim) if self.stdev_lr is None else self.stdev_lr

    def update(
        self, scores: torch.Tensor, noise_rows: Any, sigma: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return snes_step(
            scores,
            noise_rows,
            sigma,
            stdev_lr=self.stdev_lr_for(sigma.numel()),
            utilities=self.utilities,
            stdev_max_change=self.stdev_max_change,
            stdev_min=self.stdev_min,
            stdev_max=self.stdev_max,
        )

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stdev_lr": self.stdev_lr,
            "utilities": self.utilities,
            "stdev_max_change": self.stdev_max_change,
            "stdev_min": self.stdev_min,
            "stdev_max": self.stdev_max,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], current: SearchDistribution | None = None) -> SNES:
        return cls(**{k: v for k, v in config.items() if k != "name"})
