"""An ESOptimizer population's members, in the two forms the text evaluators apply them.

:class:`~es_opt.Population` describes a generation by seeds, and its perturbation family
(:mod:`es_opt.perturbations`: counter-based Philox noise keyed by ``(seed, generation, draw,
tensor)``) turns them into noise. Evaluation ``i`` is ``θ + s_i y_{d(i)}`` with ``d(i)`` its noise
draw (:meth:`~es_opt.Population.draw_index`: the antithetic pair ``i // 2``), ``s_i = ±σ`` (its
sign, :meth:`~es_opt.Population.sign`) and ``y`` the family's ``E`` (dense ``ε``; low-rank
``A Bᵀ/√r`` per matrix), mapped by the distribution's noise map if it has one. This module only
re-arranges those numbers; it draws nothing of its own, so every member it describes is the
core's member of the same ``(seed, generation, index)``, bit for bit:

- :func:`population_members`: the members' perturbations for
  :func:`~es_opt.text.batched_members`: a low-rank family's factors ``A, B`` unexpanded with the
  signed σ (``LowRankNoise``), every other tensor as ``±σ y`` (``DenseNoise``);
- :func:`member_deltas_of`: one member's ``±σ y`` per tensor, drawn tensor by tensor when the
  owning module runs (:func:`~es_opt.text.perturbed_in_place`); :func:`member_values_of`: its
  values ``θ ± σ y`` (for a model whose centre has a higher precision than its weights: float32
  master weights). They need noise whose tensors are drawn independently of each other: a
  low-rank family, or ``Dense(noise="philox")``.

:func:`population_noise` and :func:`member_deltas` are the same for a mapping of parameters and
bare seeds (a population with the default distribution; ``tensor`` = the position in the mapping).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from ..perturbations import Dense, LowRank
from ..population import Population
from .batched import DenseNoise, LowRankNoise, Noise

__all__ = [
    "member_deltas",
    "member_deltas_of",
    "member_values_of",
    "population_members",
    "population_noise",
]

Delta = Callable[[], torch.Tensor]


def population_members(population: Population, indices: Sequence[int]) -> dict[str, Noise]:
    """Name → the perturbations of evaluations ``indices`` (rows in that order).

    Example:
        >>> from es_opt.perturbations import LowRank
        >>> pop = Population(0, 0, 0.1, 4, ("w",), (torch.Size([3, 2]),), torch.zeros(6),
        ...                  family=LowRank(rank=1))
        >>> noise = population_members(pop, [0, 3])
        >>> torch.equal(noise["w"].delta(1).flatten(), pop.parameters(3))
        True
    """
    indices = list(indices)
    for index in indices:
        population.check_index(index)
    center, sigma = population.center, population.sigma
    draws = sorted({population.draw_index(index) for index in indices})
    row_of = {draw: row for row, draw in enumerate(draws)}
    rows = torch.tensor([row_of[population.draw_index(i)] for i in indices], device=center.device)
    signs = [population.sign(index) for index in indices]
    per_parameter = isinstance(sigma, torch.Tensor)
    scale = torch.tensor(
        signs if per_parameter else [sign * sigma for sign in signs],
        dtype=center.dtype,
        device=center.device,
    )
    family = population.family
    if population.noise_map is None:  # y = E: the family's own tensors, no flat copy
        noise = population.noise(draws)
        if isinstance(family, LowRank):
            return _low_rank_members(population, noise, rows, scale)
        deltas = family.deltas(noise, population.shapes)
        directions = dict(zip(population.names, deltas, strict=True))
    else:  # y = A z or D ⊙ z mixes or scales the flat noise: the population's directions
        directions = population.unflatten(population.directions(draws))
    if not per_parameter:
        return {name: DenseNoise(y[rows], scale) for name, y in directions.items()}
    # θ ± σ ⊙ y: σ ⊙ y times ±1 has the bits of y times ±σ (a sign flip is exact)
    sigmas = population.unflatten(sigma)
    return {name: DenseNoise(y[rows] * sigmas[name], scale) for name, y in directions.items()}


def _low_rank_members(
    population: Population, noise: list[torch.Tensor], rows: torch.Tensor, scale: torch.Tensor
) -> dict[str, Noise]:
    family = population.family
    out: dict[str, Noise] = {}
    for name, drawn, shape in zip(population.names, noise, population.shapes, strict=True):
        factors = family.factors(drawn, shape)
        if factors is None:
            out[name] = DenseNoise(drawn[rows].reshape(len(rows), *shape), scale)
        elif len(shape) != 2:
            raise ValueError(
                f"parameter {name!r} of shape {tuple(shape)}: population-batched generation "
                "covers matrices (Linear, Conv1D, Embedding); evaluate in place instead"
            )
        else:
            a, b = factors
            out[name] = LowRankNoise(a[rows], b[rows], scale)
    return out


def member_deltas_of(population: Population, index: int) -> dict[str, Delta]:
    """Name → a function that builds evaluation ``index``'s perturbation ``±σ y`` of that one
    tensor each time it is called (nothing the size of the model is kept). A low-rank family's
    noise is drawn once per tensor and kept with the functions (the factors: ``r(m + n)``
    numbers per ``m × n`` matrix); dense noise is drawn again at every call.

    Example:
        >>> from es_opt.perturbations import Dense
        >>> pop = Population(0, 0, 0.1, 2, ("w", "b"), (torch.Size([2, 2]), torch.Size([2])),
        ...                  torch.zeros(6), family=Dense(noise="philox"))
        >>> d = member_deltas_of(pop, 1)
        >>> torch.equal(torch.cat([d["w"]().flatten(), d["b"]()]), pop.parameters(1))
        True
    """
    return _member_tensors(population, index, with_centre=False)


def member_values_of(population: Population, index: int) -> dict[str, Delta]:
    """Name → a function that builds evaluation ``index``'s value ``θ ± σ y`` of that one tensor
    (the centre's slice plus :func:`member_deltas_of`'s perturbation, in the centre's dtype):
    for ``perturbed_in_place(net, ..., values=True)``, which copies it into the parameter. So a
    float16 / bfloat16 model with float32 master weights computes with ``cast(θ ± σ y)``, the
    member :meth:`~es_opt.Population.loaded` writes, not with ``cast(θ) ± σ y``.

    Example:
        >>> from es_opt.perturbations import LowRank
        >>> pop = Population(0, 0, 0.1, 2, ("w",), (torch.Size([2, 3]),), torch.ones(6),
        ...                  family=LowRank(rank=1))
        >>> torch.equal(member_values_of(pop, 0)["w"]().flatten(), pop.parameters(0))
        True
    """
    return _member_tensors(population, index, with_centre=True)


def _member_tensors(population: Population, index: int, with_centre: bool) -> dict[str, Delta]:
    population.check_index(index)
    if population.original_noise:
        raise ValueError(
            "in-place evaluation draws each tensor's noise on its own, which the original "
            "MT19937 scheme cannot (one stream runs through all tensors): use "
            "ESOptimizer(perturbation='lowrank') or ESOptimizer(noise='philox')"
        )
    if population.noise_map is not None:
        raise ValueError(
            "in-place evaluation draws each tensor's noise on its own, but the search "
            "distribution maps the noise of all tensors together (y = A z or D ⊙ z): use "
            "TextReward(evaluation='batched')"
        )
    family, center, sigma = population.family, population.center, population.sigma
    draw, sign = population.draw_index(index), population.sign(index)
    sigmas = population.unflatten(sigma) if isinstance(sigma, torch.Tensor) else None
    centres = population.unflatten(center) if with_centre else None
    tensors = zip(population.names, population.shapes, population.ids, strict=True)
    kept: dict[str, list[torch.Tensor]] = {}
    out = {}
    for name, shape, tensor_id in tensors:

        def build(name=name, shape=shape, tensor_id=tensor_id) -> torch.Tensor:
            noise = kept.get(name)
            if noise is None:
                noise = family.draw(
                    population.seed,
                    population.generation,
                    [draw],
                    [shape],
                    [tensor_id],
                    dtype=center.dtype,
                    device=center.device,
                )
                if isinstance(family, LowRank):
                    kept[name] = noise
            y = family.deltas(noise, [shape])[0][0]
            factor = sign * sigma if sigmas is None else sigmas[name] * sign
            # the core's member: θ + (y · factor); kept noise stays as drawn
            delta = y * factor if name in kept else y.mul_(factor)
            return delta if centres is None else delta.add_(centres[name])

        out[name] = build
    return out


def population_noise(
    params: Mapping[str, torch.Tensor],
    *,
    seed: int,
    generation: int,
    indices: Sequence[int],
    sigma: float,
    rank: int | None = 1,
) -> dict[str, Noise]:
    """:func:`population_members` of the population over ``params`` drawn from bare seeds.

    Args:
        params: name → parameter, in a fixed order (the tensor id is the position).
        seed / generation: the run's seed and the ES generation.
        indices: evaluation indices (pair ``i // 2``, sign ``+`` for even ``i``).
        sigma: σ.
        rank: ``r`` of :class:`~es_opt.perturbations.LowRank`, or ``None`` for
            ``Dense(noise="philox")``.

    Example:
        >>> w = {"w": torch.zeros(4, 3), "b": torch.zeros(4)}
        >>> noise = population_noise(w, seed=0, generation=0, indices=[0, 1], sigma=0.1)
        >>> torch.equal(noise["w"].delta(0), -noise["w"].delta(1))
        True
        >>> type(noise["b"]).__name__
        'DenseNoise'
    """
    indices = list(indices)
    population = _seeded(params, seed, generation, max(indices, default=-1) + 1, sigma, rank)
    return population_members(population, indices)


def member_deltas(
    params: Mapping[str, torch.Tensor],
    *,
    seed: int,
    generation: int,
    index: int,
    sigma: float,
    rank: int | None = None,
) -> dict[str, Delta]:
    """:func:`member_deltas_of` of the population over ``params`` drawn from bare seeds
    (arguments as :func:`population_noise`).

    Example:
        >>> w = {"w": torch.zeros(4, 3)}
        >>> d = member_deltas(w, seed=0, generation=0, index=1, sigma=0.1)["w"]()
        >>> torch.equal(d, population_noise(w, seed=0, generation=0, indices=[1], sigma=0.1,
        ...                                 rank=None)["w"].delta(0))
        True
    """
    return member_deltas_of(_seeded(params, seed, generation, index + 1, sigma, rank), index)


def _seeded(
    params: Mapping[str, torch.Tensor],
    seed: int,
    generation: int,
    n_evals: int,
    sigma: float,
    rank: int | None,
) -> Population:
    """The population over ``params``. Its centre is never read here: a zero-stride placeholder
    of the parameters' size, dtype and device stands for it (no copy of the model)."""
    if not params:
        raise ValueError("params must name at least one parameter, got an empty mapping")
    first = next(iter(params.values()))
    shapes = tuple(torch.Size(p.shape) for p in params.values())
    dim = sum(shape.numel() for shape in shapes)
    center = torch.zeros((), dtype=first.dtype, device=first.device).expand(dim)
    family = Dense(noise="philox") if rank is None else LowRank(rank=rank)
    return Population(
        generation, seed, sigma, n_evals, tuple(params), shapes, center, family=family
    )
