"""The perturbation-family contract: how a member's noise is drawn, turned into a parameter change
and folded back into the gradient estimate.

An ES step with antithetic pairs perturbs the selected tensors ``θ = (W_1, …, W_k)`` of member
``(j, ±)`` to ``θ ± σ E_j``, where ``E_j`` is built from pair ``j``'s noise, and estimates the
gradient of the Gaussian-smoothed objective as::

    g = 1 / (n σ) · Σ_j (s⁺_j − s⁻_j) E_j            n = 2P evaluations, P pairs

A family decides what ``E_j`` is. :class:`~es_opt.perturbations.Dense` draws every entry
(``E_j = ε_j``, Salimans et al. 2017); :class:`~es_opt.perturbations.LowRank` draws, for every
tensor of two or more dimensions viewed as an ``m × n`` matrix, ``E_j = A_j B_jᵀ / √r`` with
``A_j ∈ R^{m×r}``, ``B_j ∈ R^{n×r}`` (Sarkar et al. 2025, "Evolution Strategies at the
Hyperscale", arXiv 2511.16652). In both, the entries of ``E_j`` have zero mean, unit variance and
are uncorrelated, so ``E[⟨G, E⟩ E] = G`` and ``g`` is unbiased for a linear objective.

A family is configuration only; its methods are pure functions of their arguments. Noise is a
function of ``(seed, generation, pair, tensor)``, so a worker rebuilds any member from integers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..estimator import DEFAULT_BLOCK_ELEMENTS, pair_blocks

__all__ = ["NOISE_SCHEMES", "Perturbation", "check_noise", "matrix_shape"]

NOISE_SCHEMES = ("mt19937", "philox")
"""``"mt19937"``: one MT19937 generator per pair, seeded by a BLAKE2b hash of
``(seed, generation, pair)`` (:mod:`es_opt.noise`; the original scheme). ``"philox"``: the
counter-based generator of :mod:`es_opt.perturbations.counter_noise`."""


def check_noise(noise: str) -> str:
    """``noise`` if it names a scheme of :data:`NOISE_SCHEMES`, else a ``ValueError``.

    Example:
        >>> check_noise("philox")
        'philox'
    """
    if noise not in NOISE_SCHEMES:
        raise ValueError(f"noise must be one of {', '.join(NOISE_SCHEMES)}, got {noise!r}")
    return noise


def matrix_shape(shape: Sequence[int]) -> tuple[int, int] | None:
    """The ``m × n`` matrix view of a tensor of two or more dimensions (``shape[0]`` rows, the
    rest flattened, as a Conv weight ``[out, in, kh, kw]`` is ``out × (in·kh·kw)``), or ``None``
    for a vector or a scalar.

    Example:
        >>> matrix_shape((16, 3, 5, 5)), matrix_shape((7,))
        ((16, 75), None)
    """
    if len(shape) < 2:
        return None
    rows = int(shape[0])
    cols = 1
    for size in shape[1:]:
        cols *= int(size)
    return rows, cols


class Perturbation:
    """Base class of perturbation families (see the module docstring).

    Subclasses are frozen dataclasses of their configuration (the noise scheme included: it is
    part of the family) and define :attr:`spec`, :meth:`noise_sizes`, :meth:`draw`,
    :meth:`deltas` and :meth:`combine`; :meth:`estimate` and :meth:`flat_deltas` are built on
    them.

    Attributes:
        noise: the noise scheme, one of :data:`NOISE_SCHEMES`.
    """

    noise: str = "philox"

    @property
    def spec(self) -> str:
        """The family as a string (``"dense"``, ``"lowrank(1)"``, the grammar of
        :mod:`es_opt._spec`), for ``state_dict`` and CLIs; the noise scheme is saved beside it."""
        raise NotImplementedError

    def noise_sizes(self, shapes: Sequence[Sequence[int]]) -> list[int]:
        """Normal numbers one pair draws for each tensor."""
        raise NotImplementedError

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
        """The noise of ``pairs``: one ``[len(pairs), noise_sizes[t]]`` tensor per tensor ``t``.
        Row ``r`` depends only on ``(seed, generation, pairs[r], tensor_ids[t])`` (and, for the
        ``"mt19937"`` scheme, on the other tensors' sizes)."""
        raise NotImplementedError

    def deltas(
        self, noise: Sequence[torch.Tensor], shapes: Sequence[Sequence[int]]
    ) -> list[torch.Tensor]:
        """``E_j`` per tensor: ``[P, *shape]`` for each tensor, from :meth:`draw`'s noise."""
        raise NotImplementedError

    def combine(
        self,
        weights: torch.Tensor,
        noise: Sequence[torch.Tensor],
        shapes: Sequence[Sequence[int]],
    ) -> list[torch.Tensor]:
        """``Σ_j weights_j E_j`` per tensor (each of the tensor's shape), without building the
        ``E_j`` when the family can avoid it."""
        raise NotImplementedError

    def flat_deltas(
        self, noise: Sequence[torch.Tensor], shapes: Sequence[Sequence[int]]
    ) -> torch.Tensor:
        """``E_j`` flattened and concatenated over tensors: ``[P, d]``."""
        parts = [delta.reshape(delta.shape[0], -1) for delta in self.deltas(noise, shapes)]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def estimate(
        self, scores: torch.Tensor, population: Any, *, block_elements: int = DEFAULT_BLOCK_ELEMENTS
    ) -> torch.Tensor:
        """The flat gradient estimate ``g = 1/(nσ) Σ_j (s⁺_j − s⁻_j) E_j`` (``[d]``, tensors
        concatenated in order) from scores in evaluation order (``+`` at even indices), for a
        :class:`~es_opt.population.Population` drawn from this family (its seeds, shapes,
        tensor ids, σ, dtype and device).

        Noise is drawn a block of pairs at a time (at most ``block_elements`` normals), so
        memory stays bounded however large the population."""
        if scores.dim() != 1 or scores.numel() % 2:
            raise ValueError(
                f"scores must be 1-D with an even length, got shape {tuple(scores.shape)}"
            )
        center, shapes = population.center, population.shapes
        diffs = (scores[0::2] - scores[1::2]).to(device=center.device, dtype=center.dtype)
        total: list[torch.Tensor] | None = None
        per_pair = sum(self.noise_sizes(shapes))
        for pairs in pair_blocks(diffs.numel(), per_pair, block_elements):
            part = self.combine(diffs[pairs.start : pairs.stop], population.noise(pairs), shapes)
            total = part if total is None else [a.add_(b) for a, b in zip(total, part, strict=True)]
        if total is None:
            total = [
                torch.zeros(tuple(s), dtype=center.dtype, device=center.device) for s in shapes
            ]
        flat = torch.cat([t.reshape(-1) for t in total])
        return flat / (scores.numel() * population.sigma)

    def __str__(self) -> str:
        return self.spec
