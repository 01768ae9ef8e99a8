"""Members of an ESOptimizer population as the text objective evaluates them.

:class:`~es_opt.ESOptimizer` describes a generation by seeds (:class:`~es_opt.Population`);
its perturbation family (:mod:`es_opt.perturbations`) turns ``(seed, generation, pair, tensor)``
into noise. Evaluation ``i`` is ``θ + sign_i σ E_j`` with ``j = i // 2``. This module hands the
same members to the two evaluation modes of :class:`~es_opt.text.TextReward`:

- :func:`population_members`: the members' noise for :func:`~es_opt.text.batched_members` (a
  low-rank family's factors ``A, B`` unexpanded, with scale ``±σ/√r``; vectors, and every tensor
  of a dense family, as ``±σ ε``);
- :func:`member_deltas_of`: one member's perturbation per tensor, drawn tensor by tensor when
  the owning module runs (:func:`~es_opt.text.perturbed_in_place`). It needs noise whose tensors
  are independent of each other's draws: a low-rank family, or ``Dense(noise="philox")``.

Nothing but seeds is read: a worker rebuilds any member from the population it received.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..perturbations import LowRank
from .batched import DenseNoise, LowRankNoise, Noise

__all__ = ["member_deltas_of", "population_members"]


def _signs(population: Any, indices: Sequence[int]) -> torch.Tensor:
    center = population.center
    return torch.tensor(
        [population.sign(i) * population.sigma for i in indices],
        dtype=center.dtype,
        device=center.device,
    )


def population_members(population: Any, indices: Sequence[int]) -> dict[str, Noise]:
    """Name → the perturbations of evaluations ``indices`` (rows in that order), from the
    population's family and seeds.

    Example:
        >>> from es_opt import Population
        >>> from es_opt.perturbations import LowRank
        >>> pop = Population(0, 0, 0.1, 4, ("w",), (torch.Size([3, 2]),), torch.zeros(6),
        ...                  family=LowRank(rank=1))
        >>> noise = population_members(pop, [0, 3])
        >>> torch.allclose(noise["w"].delta(1).flatten(), pop.parameters(3))
        True
    """
    indices = list(indices)
    for index in indices:
        population._check_index(index)
    pairs = sorted({index // 2 for index in indices})
    row_of = {pair: row for row, pair in enumerate(pairs)}
    rows = torch.tensor([row_of[index // 2] for index in indices])
    scale = _signs(population, indices)
    family = population.family
    drawn = population.noise(pairs)
    if not isinstance(family, LowRank):
        deltas = family.deltas(drawn, population.shapes)
        return {
            name: DenseNoise(delta[rows], scale)
            for name, delta in zip(population.names, deltas, strict=True)
        }
    out: dict[str, Noise] = {}
    for name, noise, shape in zip(population.names, drawn, population.shapes, strict=True):
        factors = family.factors(noise, shape)
        if factors is None:
            out[name] = DenseNoise(noise[rows].reshape(len(indices), *shape), scale)
        elif len(shape) != 2:
            raise ValueError(
                f"parameter {name!r} of shape {tuple(shape)}: population-batched generation "
                "covers matrices (Linear, Conv1D, Embedding); evaluate in place instead"
            )
        else:
            a, b = factors
            out[name] = LowRankNoise(a[rows], b[rows], scale / math.sqrt(family.rank))
    return out


def member_deltas_of(population: Any, index: int) -> dict[str, Callable[[], torch.Tensor]]:
    """Name → a function that draws evaluation ``index``'s perturbation ``±σ E_j`` of that one
    tensor (nothing the size of the model is kept).

    Example:
        >>> from es_opt import Population
        >>> from es_opt.perturbations import Dense
        >>> pop = Population(0, 0, 0.1, 2, ("w", "b"), (torch.Size([2, 2]), torch.Size([2])),
        ...                  torch.zeros(6), family=Dense(noise="philox"))
        >>> d = member_deltas_of(pop, 1)
        >>> torch.allclose(torch.cat([d["w"]().flatten(), d["b"]()]), pop.parameters(1))
        True
    """
    population._check_index(index)
    family = population.family
    if getattr(population, "original_noise", False):
        raise ValueError(
            "in-place evaluation draws each tensor's noise on its own, which the original "
            "MT19937 scheme cannot (one stream runs through all tensors): use "
            "ESOptimizer(perturbation='lowrank') or ESOptimizer(noise='philox')"
        )
    pair, sign = index // 2, population.sign(index) * population.sigma
    center = population.center
    ids = population.ids
    out = {}
    for t, (name, shape) in enumerate(zip(population.names, population.shapes, strict=True)):

        def delta(t=t, shape=shape) -> torch.Tensor:
            noise = family.draw(
                population.seed,
                population.generation,
                [pair],
                [shape],
                [ids[t]],
                dtype=center.dtype,
                device=center.device,
            )
            return family.deltas(noise, [shape])[0][0].mul_(sign)

        out[name] = delta
    return out
