"""PGPE: policy gradients with parameter-based exploration, with symmetric sampling and a
per-parameter σ (Sehnke et al. 2010; the variant of Toklu et al. 2020, nnaisense/pgpelib)."""

from __future__ import annotations

from typing import Any

import torch

from ..estimator import DEFAULT_BLOCK_ELEMENTS, NoiseRows, pair_moments
from .base import (
    AdaptiveDistribution,
    SearchDistribution,
    check_learning_rate,
    check_sigma_vector,
    check_stdev_bounds,
    clip_sigma,
)

__all__ = ["PGPE", "pgpe_step"]


def pgpe_step(
    scores: torch.Tensor,
    noise_rows: NoiseRows,
    sigma: torch.Tensor,
    *,
    stdev_lr: float,
    stdev_max_change: float | None = 0.2,
    stdev_min: float | None = None,
    stdev_max: float | None = None,
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One PGPE update with symmetric sampling, as a pure function.

    With ``P`` pairs ``θ ± ε_j``, ``ε_j = σ ⊙ z_j`` (``z_j`` standard normal), shaped scores
    ``s⁺_j, s⁻_j`` and the baseline ``b`` = the mean of all ``2P`` scores (0 for centered ranks;
    Sehnke et al. 2010, eqs. for symmetric sampling; Toklu et al. 2020)::

        ∇_θ = 1/P Σ_j (s⁺_j − s⁻_j)/2 · ε_j                  = σ ⊙ 1/P Σ_j a'_j z_j
        ∇_σ = 1/P Σ_j ((s⁺_j + s⁻_j)/2 − b) · (ε_j² − σ²)/σ  = σ ⊙ 1/P Σ_j b'_j (z_j² − 1)
        σ'  = clip(σ + η_σ ∇_σ)

    where the clip keeps each entry within ``σ (1 ± stdev_max_change)`` and then within
    ``[stdev_min, stdev_max]``. The centre's step is left to the caller's torch optimizer (in
    pgpelib and EvoTorch: ClipUp or Adam on ``∇_θ``). Both sums come from
    :func:`~es_opt.estimator.pair_moments`, a bounded block of pairs at a time.

    Note ``∇_θ`` is the likelihood-ratio gradient times σ² (pgpelib's convention): with plain SGD
    it is OpenAI-ES's step scaled by σ²; with ClipUp or Adam the scale cancels.

    Returns:
        ``(∇_θ, σ')``, both of ``sigma``'s dtype and device.

    Raises:
        ValueError: if σ' has an entry ≤ 0 or non-finite (possible only without
            ``stdev_max_change``); nothing is changed.
    """
    check_sigma_vector("sigma", sigma)
    x = scores.to(torch.float64).flatten()
    if x.numel() < 2 or x.numel() % 2:
        raise ValueError(f"scores must hold whole antithetic pairs, got {x.numel()} values")
    plus, minus = x[0::2], x[1::2]
    n_pairs = plus.numel()
    baseline = x.mean()
    first_weights = (plus - minus) / 2 / n_pairs
    second_weights = ((plus + minus) / 2 - baseline) / n_pairs
    first, second = pair_moments(
        first_weights,
        second_weights,
        noise_rows,
        dim=sigma.numel(),
        dtype=sigma.dtype,
        device=sigma.device,
        block_elements=block_elements,
    )
    grad_center = sigma * first
    grad_sigma = sigma * second
    new_sigma = clip_sigma(
        sigma,
        sigma + stdev_lr * grad_sigma,
        max_change=stdev_max_change,
        low=stdev_min,
        high=stdev_max,
    )
    check_sigma_vector("PGPE's updated sigma (set stdev_max_change or stdev_min)", new_sigma)
    return grad_center, new_sigma


class PGPE(AdaptiveDistribution):
    """PGPE with symmetric sampling (Sehnke et al. 2010) and the stdev safeguards of Toklu et al.
    2020 (pgpelib, EvoTorch): the centre and a per-parameter σ are both updated from the same
    antithetic pairs (see :func:`pgpe_step` for the equations).

    es_opt's antithetic pairs *are* PGPE's symmetric sampling, and its default shaping (centered
    ranks) is the ranking pgpelib and EvoTorch use with PGPE. The centre's learning rate is the
    inner torch optimizer's: Toklu et al. pair PGPE with ClipUp
    (``es_opt.optim.ClipUp(params, lr=0.15 * 0.75, max_speed=0.15)`` is EvoTorch's RL recipe).
    The initial σ is ``ESOptimizer(sigma=...)`` for every parameter.

    Args:
        stdev_lr: σ learning rate ``η_σ`` (>= 0; 0 keeps σ fixed). pgpelib's default 0.1.
        stdev_max_change: largest relative change of σ per step, in (0, 1), or ``None``. 0.2 by
            default, as in pgpelib and EvoTorch.
        stdev_min, stdev_max: bounds on every entry of σ (> 0, ``stdev_min <= stdev_max``), or
            ``None``.

    Example:
        >>> from es_opt.estimator import dense_rows
        >>> pgpe = PGPE(stdev_lr=0.1)
        >>> z = torch.tensor([[1.0, 0.0]])
        >>> gradient, sigma = pgpe.update(torch.tensor([0.5, -0.5]), dense_rows(z), torch.ones(2))
        >>> gradient.tolist(), sigma.tolist()
        ([0.5, 0.0], [1.0, 1.0])
    """

    name = "pgpe"

    def __init__(
        self,
        stdev_lr: float = 0.1,
        stdev_max_change: float | None = 0.2,
        stdev_min: float | None = None,
        stdev_max: float | None = None,
    ):
        self.stdev_lr = check_learning_rate("stdev_lr", stdev_lr)
        self.stdev_min, self.stdev_max, self.stdev_max_change = check_stdev_bounds(
            stdev_min, stdev_max, stdev_max_change
        )

    def update(
        self, scores: torch.Tensor, noise_rows: Any, sigma: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return pgpe_step(
            scores,
            noise_rows,
            sigma,
            stdev_lr=self.stdev_lr,
            stdev_max_change=self.stdev_max_change,
            stdev_min=self.stdev_min,
            stdev_max=self.stdev_max,
        )

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stdev_lr": self.stdev_lr,
            "stdev_max_change": self.stdev_max_change,
            "stdev_min": self.stdev_min,
            "stdev_max": self.stdev_max,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], current: SearchDistribution | None = None) -> PGPE:
        return cls(**{k: v for k, v in config.items() if k != "name"})
