"""Members' perturbations drawn from seeds, one independent stream per tensor.

Evaluation ``i`` is member ``sign · σ · ε_j`` of antithetic pair ``j = i // 2`` (``+`` for even
``i``). For tensor ``t`` (its index in the list of perturbed parameters) the numbers come from a
``torch.Generator`` seeded with ``derive_seed(seed, TEXT_NOISE_STREAM, generation, j, t)``: two
tensors never share a stream, even when they have the same shape. (Seeding every tensor with the
member's seed, as some ES fine-tuning code does, gives all same-shaped layers *identical* noise:
the perturbations of the 24 attention blocks of a model then move together, and the search
explores one direction where it should explore 24.)

- low-rank (EGGROLL, Sarkar et al. 2025, arXiv 2511.16652): a matrix ``W: [p, q]`` (a tensor of
  more dimensions is its matrix view ``[shape[0], rest]``) gets ``E = A Bᵀ`` with
  ``A: [p, r]``, ``B: [q, r]`` standard normal and the scale ``σ/√r``; vectors get dense noise;
- dense (OpenAI-ES; Qiu et al. 2025, arXiv 2509.24372): every tensor gets ``ε`` of its shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch

from ..noise import derive_seed
from .batched import DenseNoise, LowRankNoise, Noise

__all__ = ["TEXT_NOISE_STREAM", "member_deltas", "population_noise", "tensor_seed"]

TEXT_NOISE_STREAM = 102


def tensor_seed(seed: int, generation: int, pair: int, tensor: int) -> int:
    """The seed of one tensor's noise for one antithetic pair.

    Example:
        >>> tensor_seed(0, 1, 2, 3) != tensor_seed(0, 1, 2, 4)
        True
    """
    return derive_seed(seed, TEXT_NOISE_STREAM, generation, pair, tensor)


def _draw(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _matrix_shape(shape: torch.Size) -> tuple[int, int] | None:
    if len(shape) < 2:
        return None
    return shape[0], math.prod(shape[1:])


def population_noise(
    params: Mapping[str, torch.Tensor],
    *,
    seed: int,
    generation: int,
    indices: Sequence[int],
    sigma: float,
    rank: int | None = 1,
) -> dict[str, Noise]:
    """The perturbations of evaluations ``indices`` for :func:`~es_opt.text.batched_members`.

    Args:
        params: name → parameter, in a fixed order (the tensor index is the position).
        seed / generation: the run's seed and the ES generation.
        indices: evaluation indices (pair ``i // 2``, sign ``+`` for even ``i``).
        sigma: σ.
        rank: ``r`` of the low-rank family, or ``None`` for dense noise everywhere.

    Example:
        >>> w = {"w": torch.zeros(4, 3), "b": torch.zeros(4)}
        >>> noise = population_noise(w, seed=0, generation=0, indices=[0, 1], sigma=0.1)
        >>> torch.allclose(noise["w"].delta(0), -noise["w"].delta(1))
        True
        >>> type(noise["b"]).__name__
        'DenseNoise'
    """
    indices = list(indices)
    signs = torch.tensor([1.0 if i % 2 == 0 else -1.0 for i in indices])
    out: dict[str, Noise] = {}
    for tensor, (name, param) in enumerate(params.items()):
        matrix = _matrix_shape(param.shape) if rank is not None else None
        seeds = [tensor_seed(seed, generation, i // 2, tensor) for i in indices]
        device = param.device
        if matrix is None:
            eps = torch.stack([_draw(s, tuple(param.shape)) for s in seeds])
            out[name] = DenseNoise(eps.to(device), (signs * sigma).to(device))
            continue
        (p, q), r = matrix, int(rank)
        factors = torch.stack([_draw(s, (p + q, r)) for s in seeds])
        a = factors[:, :p]
        b = factors[:, p:]
        if len(param.shape) > 2:  # the matrix view: A B^T reshaped to the tensor
            raise ValueError(
                f"low-rank noise for {name!r} of shape {tuple(param.shape)}: only matrices are "
                "covered by the population-batched forward; pass rank=None (dense noise)"
            )
        scale = signs * (sigma / math.sqrt(r))
        out[name] = LowRankNoise(a.to(device), b.to(device), scale.to(device))
    return out


def member_deltas(
    params: Mapping[str, torch.Tensor],
    *,
    seed: int,
    generation: int,
    index: int,
    sigma: float,
    rank: int | None = None,
) -> dict[str, Callable[[], torch.Tensor]]:
    """Perturbations of evaluation ``index`` for :func:`~es_opt.text.perturbed_in_place`: name →
    a function that rebuilds the tensor's ``±σε`` (dense, or ``±σ A Bᵀ/√r``) from its seed each
    time it is called, so nothing the size of the model is kept.

    Example:
        >>> w = {"w": torch.zeros(4, 3)}
        >>> d = member_deltas(w, seed=0, generation=0, index=1, sigma=0.1)["w"]()
        >>> torch.equal(d, population_noise(w, seed=0, generation=0, indices=[1], sigma=0.1,
        ...                                 rank=None)["w"].delta(0))
        True
    """
    sign = 1.0 if index % 2 == 0 else -1.0
    out = {}
    for tensor, (name, param) in enumerate(params.items()):
        tensor_seed_value = tensor_seed(seed, generation, index // 2, tensor)
        matrix = _matrix_shape(param.shape) if rank is not None else None

        def delta(
            s=tensor_seed_value, shape=tuple(param.shape), matrix=matrix, device=param.device
        ):
            if matrix is None:  # in place: one tensor-sized temporary, no more
                return _draw(s, shape).mul_(sign * sigma).to(device)
            (p, q), r = matrix, int(rank)
            factors = _draw(s, (p + q, r))
            scale = sign * (sigma / math.sqrt(r))
            return (factors[:p] @ factors[p:].T).mul_(scale).reshape(shape).to(device)

        out[name] = delta
    return out
