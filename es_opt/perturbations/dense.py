"""Dense perturbations: every entry of every selected tensor gets its own normal number.

``E_j = ε_j`` with ``ε_j ~ N(0, I_d)`` (Salimans et al. 2017, "Evolution Strategies as a Scalable
Alternative to Reinforcement Learning"). A pair costs ``d`` normal numbers, a member is
``θ ± σ ε_j``, and the estimate is the matrix product ``(s⁺ − s⁻)ᵀ [ε_1; …; ε_P] / (n σ)`` built a
bounded block of rows at a time (:func:`es_opt.estimator.estimate_gradient`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .. import noise as mt_noise
from .._spec import format_spec
from ..estimator import DEFAULT_BLOCK_ELEMENTS, estimate_gradient
from .base import Perturbation, check_noise
from .counter_noise import counter_normals

__all__ = ["Dense"]


def _numel(shape: Sequence[int]) -> int:
    count = 1
    for size in shape:
        count *= int(size)
    return count


@dataclass(frozen=True)
class Dense(Perturbation):
    """Full-rank Gaussian noise on every selected entry.

    Args:
        noise: ``"mt19937"`` (the default: one MT19937 generator per pair over the flattened
            selected parameters, exactly the original es_opt noise) or ``"philox"``
            (counter-based, drawn on the parameters' device, one tensor at a time so a tensor's
            noise does not depend on which other tensors are selected).

    Example:
        >>> family = Dense()
        >>> noise = family.draw(0, 0, [0, 1], [(2, 3), (3,)], [0, 1])
        >>> [tuple(n.shape) for n in noise], family.spec
        ([(2, 6), (2, 3)], 'dense')
    """

    noise: str = "mt19937"

    def __post_init__(self) -> None:
        check_noise(self.noise)

    @property
    def spec(self) -> str:
        return format_spec("dense")

    def noise_sizes(self, shapes: Sequence[Sequence[int]]) -> list[int]:
        return [_numel(shape) for shape in shapes]

    def draw(
        self,
        seed: int,
        generation: int,
        pairs: Sequence[int],
        shapes: Sequence[Sequence[int]],
        tensor_ids: Sequence[int],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> list[torch.Tensor]:
        sizes = self.noise_sizes(shapes)
        if self.noise == "philox":
            return counter_normals(
                seed, generation, pairs, sizes, tensor_ids, dtype=dtype, device=device
            )
        flat = mt_noise.perturbations(seed, generation, pairs, sum(sizes), dtype=dtype)
        return list(torch.split(flat.to(device), sizes, dim=1))

    def deltas(
        self, noise: Sequence[torch.Tensor], shapes: Sequence[Sequence[int]]
    ) -> list[torch.Tensor]:
        return [n.reshape(n.shape[0], *shape) for n, shape in zip(noise, shapes, strict=True)]

    def combine(
        self,
        weights: torch.Tensor,
        noise: Sequence[torch.Tensor],
        shapes: Sequence[Sequence[int]],
    ) -> list[torch.Tensor]:
        return [(weights @ n).reshape(tuple(shape)) for n, shape in zip(noise, shapes, strict=True)]

    def estimate(
        self, scores: torch.Tensor, population: Any, *, block_elements: int = DEFAULT_BLOCK_ELEMENTS
    ) -> torch.Tensor:
        """As :meth:`Perturbation.estimate`, through
        :func:`~es_opt.estimator.estimate_gradient` on the population's flat noise rows (for
        ``"mt19937"`` the very arithmetic of the original estimate, bit for bit)."""
        center = population.center
        return estimate_gradient(
            scores,
            population.perturbations,
            sigma=population.sigma,
            dim=population.dim,
            dtype=center.dtype,
            device=center.device,
            block_elements=block_elements,
        )
