"""Low-rank perturbations (EGGROLL): ``E_j = A_j B_jᵀ / √r`` for every matrix, dense for vectors.

Sarkar et al. 2025, "Evolution Strategies at the Hyperscale" (arXiv 2511.16652). For a weight
``W ∈ R^{m×n}`` (a tensor of more dimensions is viewed as ``shape[0] × rest``: a Conv weight as
``out × (in·kh·kw)``) pair ``j`` draws ``A_j ∈ R^{m×r}`` and ``B_j ∈ R^{n×r}`` with i.i.d.
``N(0, 1)`` entries and perturbs ``W ± σ A_j B_jᵀ / √r``: ``r(m + n)`` numbers instead of ``mn``.

Why it is a valid ES search distribution. Each entry ``E_ab = Σ_k A_ak B_bk / √r`` has mean 0 and
``E[E_ab E_cd] = (1/r) Σ_k E[A_ak A_ck] E[B_bk B_dk] = δ_ac δ_bd``: the entries are uncorrelated
with unit variance, exactly like dense noise. For a linear objective ``f(W) = ⟨G, W⟩`` the
antithetic difference is ``2σ⟨G, E_j⟩`` and ``E[⟨G, E⟩ E] = G``: the estimate is unbiased. (E is
not Gaussian; as ``r`` grows it tends to the dense distribution at rate O(1/r), and rank 1 already
trains well in the paper's experiments.)

Why the update is full rank. ``g_W = 1/(nσ) Σ_j (s⁺_j − s⁻_j) A_j B_jᵀ / √r`` is a sum of ``P``
rank-``r`` matrices: its rank is up to ``min(P r, m, n)``, full rank as soon as ``P r ≥ min(m, n)``.
It is computed as one matrix product, never expanding a single ``A_j B_jᵀ``::

    Σ_j w_j A_j B_jᵀ = [w_1 A_1, …, w_P A_P] · [B_1, …, B_P]ᵀ       (m × Pr) · (Pr × n)

The batched forward. A member's linear layer is ``x (W + σ A Bᵀ/√r)ᵀ + b = x Wᵀ + b +
(σ/√r) (x B) Aᵀ``: the base product ``x Wᵀ`` is shared by every member (one large matrix product
over all members' inputs) and each member adds a rank-``r`` correction (two thin batched
products), as batched LoRA inference does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .._spec import format_spec
from .base import Perturbation, check_noise, matrix_shape
from .counter_noise import counter_normals

__all__ = [
    "LowRank",
    "low_rank_delta",
    "low_rank_factors",
    "low_rank_linear",
    "low_rank_sum",
]


def low_rank_factors(
    noise: torch.Tensor, rows: int, cols: int, rank: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Splits ``[P, r(m + n)]`` noise into ``A`` (``[P, m, r]``, the first ``m r`` numbers) and
    ``B`` (``[P, n, r]``, the rest); views, no copy.

    Example:
        >>> a, b = low_rank_factors(torch.arange(10.0).reshape(1, 10), 3, 2, 2)
        >>> a.shape, b.shape, b[0, 0].tolist()
        (torch.Size([1, 3, 2]), torch.Size([1, 2, 2]), [6.0, 7.0])
    """
    expected = rank * (rows + cols)
    if noise.shape[-1] != expected:
        raise ValueError(
            f"noise has {noise.shape[-1]} numbers per pair; a rank-{rank} factor pair of a "
            f"{rows}×{cols} matrix needs {expected}"
        )
    pairs = noise.shape[0]  # not -1: an empty matrix (0 rows or columns) has 0-size factors
    a = noise[:, : rows * rank].reshape(pairs, rows, rank)
    b = noise[:, rows * rank :].reshape(pairs, cols, rank)
    return a, b


def low_rank_delta(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``E_j = A_j B_jᵀ / √r`` for every pair: ``[P, m, r]``, ``[P, n, r]`` → ``[P, m, n]``.

    Example:
        >>> low_rank_delta(torch.ones(1, 2, 1), torch.full((1, 3, 1), 2.0)).tolist()
        [[[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]]
    """
    return torch.bmm(a, b.transpose(1, 2)).mul_(1.0 / math.sqrt(a.shape[-1]))


def low_rank_sum(weights: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``Σ_j w_j A_j B_jᵀ / √r`` as one ``(m × Pr)·(Pr × n)`` matrix product (module docstring).

    Example:
        >>> a, b = torch.ones(2, 2, 1), torch.ones(2, 3, 1)
        >>> low_rank_sum(torch.tensor([1.0, -3.0]), a, b).tolist()
        [[-2.0, -2.0, -2.0], [-2.0, -2.0, -2.0]]
    """
    pairs, rows, rank = a.shape
    cols = b.shape[1]
    left = (a * weights.reshape(pairs, 1, 1)).permute(1, 0, 2).reshape(rows, pairs * rank)
    right = b.permute(1, 0, 2).reshape(cols, pairs * rank)
    return torch.mm(left, right.t()).mul_(1.0 / math.sqrt(rank))


def low_rank_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    a: torch.Tensor,
    b: torch.Tensor,
    scale: torch.Tensor,
    bias_delta: torch.Tensor | None = None,
) -> torch.Tensor:
    """A linear layer for ``M`` members sharing the base weight::

        y_i = x_i Wᵀ + b + (s_i / √r) (x_i B_i) A_iᵀ + s_i δ_i

    computed as one shared ``x Wᵀ + b`` over all members' rows plus two thin batched products.

    Args:
        x: ``[M, N, n]`` (one batch per member) or ``[N, n]`` (shared by all members).
        weight: ``W``, ``[m, n]``.
        bias: ``b``, ``[m]``, or ``None``.
        a: ``A``, ``[M, m, r]``.
        b: ``B``, ``[M, n, r]``.
        scale: ``s``, ``[M]``: the member's signed σ (``+σ`` or ``−σ``).
        bias_delta: ``δ``, ``[M, m]``: the bias noise of a perturbed bias, or ``None``.

    Returns:
        ``[M, N, m]``.

    Example:
        >>> x, w = torch.randn(2, 5, 3), torch.randn(4, 3)
        >>> a, b = torch.randn(2, 4, 1), torch.randn(2, 3, 1)
        >>> y = low_rank_linear(x, w, None, a, b, torch.tensor([0.1, -0.1]))
        >>> member = w + 0.1 * a[0] @ b[0].T
        >>> torch.allclose(y[0], x[0] @ member.T, atol=1e-5)
        True
    """
    members, rank = a.shape[0], a.shape[-1]
    if x.dim() == 3:
        flat = x.reshape(-1, x.shape[-1])
        base = torch.mm(flat, weight.t()) if bias is None else torch.addmm(bias, flat, weight.t())
        base = base.reshape(members, x.shape[1], weight.shape[0])
        projected = torch.bmm(x, b)  # [M, N, r]
    else:
        base = torch.mm(x, weight.t()) if bias is None else torch.addmm(bias, x, weight.t())
        projected = torch.matmul(x, b)  # [N, n] @ [M, n, r] -> [M, N, r]
    projected = projected * (scale.reshape(members, 1, 1) / math.sqrt(rank))
    if bias_delta is not None:
        base = base + (scale.reshape(members, 1) * bias_delta).unsqueeze(1)
    return torch.baddbmm(base, projected, a.transpose(1, 2))


@dataclass(frozen=True)
class LowRank(Perturbation):
    """EGGROLL's rank-``r`` perturbations ``A Bᵀ/√r`` of every tensor with two or more
    dimensions; vectors and scalars (biases, norm scales) get dense noise. Noise is counter-based
    (``"philox"``), drawn on the parameters' device.

    Args:
        rank: ``r`` ≥ 1; 1 suffices in practice (Sarkar et al. 2025).
        noise: ``"philox"``, the one scheme that draws each tensor's numbers on their own (the
            factors of a matrix do not depend on the other tensors' sizes).

    Example:
        >>> family = LowRank(rank=2)
        >>> family.noise_sizes([(4, 3), (4,)]), family.spec
        ([14, 4], 'lowrank(2)')
    """

    rank: int = 1
    noise: str = field(default="philox", repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"rank must be a positive int, got {self.rank!r}")
        if check_noise(self.noise) != "philox":
            raise ValueError(
                f"noise={self.noise!r} is not available for LowRank: low-rank perturbations "
                "draw counter-based noise ('philox')"
            )

    @property
    def spec(self) -> str:
        return format_spec("lowrank", self.rank)

    def noise_sizes(self, shapes: Sequence[Sequence[int]]) -> list[int]:
        sizes = []
        for shape in shapes:
            matrix = matrix_shape(shape)
            if matrix is None:
                sizes.append(math.prod(int(s) for s in shape))
            else:
                sizes.append(self.rank * (matrix[0] + matrix[1]))
        return sizes

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
        return counter_normals(
            seed,
            generation,
            pairs,
            self.noise_sizes(shapes),
            tensor_ids,
            dtype=dtype,
            device=device,
        )

    def factors(
        self, noise: torch.Tensor, shape: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(A, B)`` of one tensor's noise, or ``None`` for a vector (its noise is dense)."""
        matrix = matrix_shape(shape)
        if matrix is None:
            return None
        return low_rank_factors(noise, matrix[0], matrix[1], self.rank)

    def deltas(
        self, noise: Sequence[torch.Tensor], shapes: Sequence[Sequence[int]]
    ) -> list[torch.Tensor]:
        out = []
        for n, shape in zip(noise, shapes, strict=True):
            factors = self.factors(n, shape)
            delta = n if factors is None else low_rank_delta(*factors)
            out.append(delta.reshape(n.shape[0], *shape))
        return out

    def combine(
        self,
        weights: torch.Tensor,
        noise: Sequence[torch.Tensor],
        shapes: Sequence[Sequence[int]],
    ) -> list[torch.Tensor]:
        out = []
        for n, shape in zip(noise, shapes, strict=True):
            factors = self.factors(n, shape)
            total = weights @ n if factors is None else low_rank_sum(weights, *factors)
            out.append(total.reshape(tuple(shape)))
        return out
