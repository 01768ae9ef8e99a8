"""``Population``: one generation's perturbed parameter sets, described by seeds.

It is what :meth:`ESOptimizer.ask` returns and what every evaluator receives. It holds the center
θ (the selected parameters, flattened), σ, the seeds and the perturbation family, and rebuilds any
member on demand: evaluation ``i`` belongs to pair ``j = i // 2`` and is ``θ + σE_j`` for even
``i`` and ``θ − σE_j`` for odd ``i``, where ``E_j`` is the family's perturbation of pair ``j``
(dense: ``ε_j``; low-rank: ``A_j B_jᵀ/√r`` per matrix, see :mod:`es_opt.perturbations`).
A search distribution may map the noise (CMA-ES: ``θ ± σ B D z_j``) or draw one direction per
member instead of pairs (``θ + σ y_i``): :attr:`Population.noise_map`, :attr:`antithetic`.
Pickling it sends the center, the distribution's state and a few integers, never the
perturbations.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from . import noise
from .perturbations import Dense, Perturbation

__all__ = ["Population", "perturb"]


def perturb(center: torch.Tensor, eps: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """``center + eps * scale``, the one formula every backend uses.

    Two separate element-wise operations (no fused multiply-add), so a batched call with ``eps`` of
    shape ``[B, d]`` gives each row bit-identical to the single call.
    """
    return center + eps * scale


def _on(value: Any, device: torch.device | str) -> Any:
    """``value`` on ``device`` if it is a tensor (the same object when it is already there)."""
    return value.detach().to(device) if isinstance(value, torch.Tensor) else value


_NOISE_MAP = "_noise_map"
"""The attribute a population keeps its :attr:`Population.noise_map` under once computed."""


@dataclass(frozen=True)
class Population:
    """A generation's ``n_evals`` perturbed parameter sets (antithetic pairs), rebuilt from seeds.

    Example:
        >>> pop = Population(generation=0, seed=1, sigma=0.1, n_evals=4, names=("w",),
        ...                  shapes=(torch.Size([3]),), center=torch.zeros(3))
        >>> torch.equal(pop.parameters(0), -pop.parameters(1))
        True
        >>> pop.unflatten(pop.parameters(2))["w"].shape
        torch.Size([3])
    """

    generation: int
    seed: int
    sigma: float | torch.Tensor
    """σ of the generation: a float, or one value per selected parameter (PGPE, SNES; a flat
    ``[dim]`` tensor on the center's device: members are ``θ ± σ ⊙ ε_j``)."""
    n_evals: int
    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    center: torch.Tensor
    family: Perturbation = field(default_factory=Dense)
    tensor_ids: tuple[int, ...] | None = None
    """Each selected tensor's index among the model's trainable parameters (the counter word of
    counter-based noise, so a tensor's noise does not depend on which others are selected);
    ``None``: ``0, 1, …``."""
    distribution: Any = None
    """The search distribution the generation is drawn from (``None``: OpenAI-ES). It decides
    whether members come in mirrored pairs (:attr:`antithetic`) and how a member's direction is
    made from the family's noise (:attr:`noise_map`)."""
    state: Mapping[str, Any] = field(default_factory=dict)
    """The distribution's state the generation is drawn from (CMA-ES: σ, paths, ``C``, ``B``,
    ``D``; PGPE/SNES: the selected σ; OpenAI-ES: empty). It travels with the population."""

    def __post_init__(self) -> None:
        if isinstance(self.sigma, torch.Tensor):
            if self.center.numel() and self.sigma.shape != self.center.shape:
                raise ValueError(
                    f"a per-parameter sigma must have the center's shape {tuple(self.center.shape)}"
                    f", got {tuple(self.sigma.shape)}"
                )
            if not isinstance(self.family, Dense):
                raise ValueError(
                    f"a per-parameter sigma needs dense perturbations, got {self.family!r}"
                )

    def without_center(self) -> Population:
        """This population with an empty centre and σ and the distribution's state on the CPU:
        what a step message carries (the centre travels on its own, or not at all when a worker
        replays the update)."""
        moved = {id(self.sigma): _on(self.sigma, "cpu")}
        state = {key: moved.get(id(value), _on(value, "cpu")) for key, value in self.state.items()}
        return replace(
            self, center=self.center.new_empty(0).cpu(), sigma=moved[id(self.sigma)], state=state
        )

    def with_center(self, center: torch.Tensor) -> Population:
        """This population around ``center``, with σ and the state on ``center``'s device."""
        device = center.device
        moved = {id(self.sigma): _on(self.sigma, device)}
        state = {key: moved.get(id(value), _on(value, device)) for key, value in self.state.items()}
        return replace(self, center=center, sigma=moved[id(self.sigma)], state=state)

    @property
    def antithetic(self) -> bool:
        """Members in mirrored pairs (``θ ± σ y_j`` at ``2j``, ``2j + 1``; every distribution but
        CMA-ES without mirroring), or one independent draw per member (``θ + σ y_i``)."""
        return self.distribution is None or bool(self.distribution.antithetic)

    @property
    def noise_map(self) -> torch.Tensor | None:
        """How a member's direction ``y`` is made from the family's standard normal ``z``:
        ``None`` (``y = z``), a ``[dim]`` tensor ``D`` (``y = D ⊙ z``: separable CMA-ES) or a
        ``[dim, dim]`` matrix ``A`` (``y = A z``: CMA-ES, ``A = B·diag(D)``).

        Computed once per population and kept on it (CMA-ES's ``A`` costs ``d²`` work and memory,
        and every batch of members needs it); pickling leaves it out."""
        if self.distribution is None:
            return None
        if _NOISE_MAP not in self.__dict__:
            # not a field: replace() builds a population that computes its own, == ignores it
            object.__setattr__(self, _NOISE_MAP, self.distribution.noise_map(self.state))
        return self.__dict__[_NOISE_MAP]

    def __getstate__(self) -> dict[str, Any]:
        # the map is rebuilt from the state: a population travels without its d² numbers
        return {key: value for key, value in self.__dict__.items() if key != _NOISE_MAP}

    @property
    def n_draws(self) -> int:
        """Noise draws of the generation: one per pair, or one per member without mirroring."""
        return self.n_evals // 2 if self.antithetic else self.n_evals

    def draw_index(self, index: int) -> int:
        """The noise draw evaluation ``index`` is built from (its pair, or itself)."""
        return index // 2 if self.antithetic else index

    @property
    def original_noise(self) -> bool:
        """Dense perturbations with one MT19937 generator per pair (the original scheme)."""
        return isinstance(self.family, Dense) and self.family.noise == "mt19937"

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(range(len(self.names))) if self.tensor_ids is None else self.tensor_ids

    @property
    def n_pairs(self) -> int:
        return self.n_evals // 2

    @property
    def dim(self) -> int:
        return self.center.numel()

    def __len__(self) -> int:
        return self.n_evals

    def sign(self, index: int) -> float:
        """+1.0 for the first member of a pair (even index), −1.0 for the second (always +1.0
        without mirroring)."""
        return 1.0 if index % 2 == 0 or not self.antithetic else -1.0

    def directions(self, draws: Iterable[int]) -> torch.Tensor:
        """``y`` of several draws as a ``[len(draws), dim]`` matrix: the family's ``E_j``
        (:meth:`perturbations`) mapped by the distribution's :attr:`noise_map`."""
        eps = self.perturbations(draws)
        noise_map = self.noise_map
        if noise_map is None:
            return eps
        noise_map = noise_map.to(dtype=eps.dtype, device=eps.device)
        if noise_map.dim() == 1:
            return eps * noise_map
        # one matrix-vector product per draw: a matrix product over several rows rounds
        # differently with the number of rows, and a member must not depend on its batch
        return torch.stack([torch.mv(noise_map, row) for row in eps]) if len(eps) else eps

    def perturbation(self, pair: int) -> torch.Tensor:
        """``E_j`` of one pair, flat, on the center's device and dtype."""
        if not self.original_noise:
            return self.perturbations([pair])[0]
        eps = noise.perturbation(
            self.seed, self.generation, pair, self.dim, dtype=self.center.dtype
        )
        return eps.to(self.center.device)

    def perturbations(self, pairs: Iterable[int]) -> torch.Tensor:
        """``E_j`` of several pairs as a ``[len(pairs), dim]`` matrix (a low-rank family
        materialises its products here)."""
        if not self.original_noise:
            return self.family.flat_deltas(self.noise(pairs), self.shapes)
        eps = noise.perturbations(
            self.seed, self.generation, pairs, self.dim, dtype=self.center.dtype
        )
        return eps.to(self.center.device)

    def noise(self, pairs: Iterable[int]) -> list[torch.Tensor]:
        """The family's noise of ``pairs``, one ``[len(pairs), size]`` tensor per selected
        tensor (a low-rank family's factors, unexpanded), on the center's device."""
        return self.family.draw(
            self.seed,
            self.generation,
            list(pairs),
            self.shapes,
            self.ids,
            dtype=self.center.dtype,
            device=self.center.device,
        )

    def parameters(self, index: int) -> torch.Tensor:
        """The flat parameter vector of evaluation ``index``."""
        return self.stacked_parameters([index])[0]

    def stacked_parameters(self, indices: Sequence[int]) -> torch.Tensor:
        """``[len(indices), dim]`` flat parameter vectors; row ``r`` equals
        ``parameters(indices[r])`` bit for bit. Each pair's ε is drawn once: the two members of a
        pair share it, and drawing noise dominates small batched evaluations."""
        indices = list(indices)
        for index in indices:
            self.check_index(index)
        center = self.center
        first = indices[0] if indices else 0
        if not self.antithetic or self.noise_map is not None:
            return self._mapped_members(indices)
        if (
            first % 2 == 0
            and len(indices) % 2 == 0
            and indices == list(range(first, first + len(indices)))
        ):
            # whole pairs in order (the usual batch): both signs in one broadcast, no gathered
            # copy of ε; the same two element-wise operations as perturb(), so the same bits
            eps = self.perturbations(range(first // 2, (first + len(indices)) // 2))
            if isinstance(self.sigma, torch.Tensor):  # per parameter: [2, dim], exact negation
                signs = torch.stack([self.sigma, -self.sigma])
            else:
                signs = torch.tensor([[self.sigma], [-self.sigma]], dtype=center.dtype)
            return perturb(center, eps.unsqueeze(1), signs.to(center.device)).flatten(0, 1)
        pairs = sorted({index // 2 for index in indices})
        row_of = {pair: row for row, pair in enumerate(pairs)}
        eps = self.perturbations(pairs)
        rows = [row_of[index // 2] for index in indices]
        if rows != list(range(len(pairs))):
            eps = eps[rows]
        if isinstance(self.sigma, torch.Tensor):
            # ±σ row by row: the same values as the whole-pair path's stack, so the same bits
            signs = torch.tensor([self.sign(i) for i in indices], dtype=center.dtype)
            return perturb(center, eps, signs.to(center.device).unsqueeze(1) * self.sigma)
        scale = torch.tensor([self.sign(i) * self.sigma for i in indices], dtype=center.dtype)
        return perturb(center, eps, scale.unsqueeze(1).to(center.device))

    def _mapped_members(self, indices: list[int]) -> torch.Tensor:
        """``θ + sign_i σ y_{draw(i)}`` for a distribution that maps the noise or draws one
        direction per member (CMA-ES): one gathered product, row by row the same bits."""
        draws = sorted({self.draw_index(index) for index in indices})
        row_of = {draw: row for row, draw in enumerate(draws)}
        y = self.directions(draws)[[row_of[self.draw_index(index)] for index in indices]]
        center = self.center
        signs = torch.tensor([self.sign(i) for i in indices], dtype=center.dtype)
        scale = signs.to(center.device).unsqueeze(1)
        scale = scale * (self.sigma if isinstance(self.sigma, torch.Tensor) else float(self.sigma))
        return perturb(center, y, scale)

    def members(
        self, indices: Sequence[int], chunk_elements: int = 1 << 22
    ) -> Iterator[tuple[int, tuple[torch.Tensor, ...]]]:
        """Yields ``(index, (tensor per selected parameter))`` for each member of ``indices``,
        building the members a bounded batch at a time (``chunk_elements`` values: one
        :meth:`stacked_parameters` and one unflatten per batch, not per member)."""
        indices = list(indices)
        per_chunk = max(1, chunk_elements // max(1, self.dim))
        for start in range(0, len(indices), per_chunk):
            chunk = indices[start : start + per_chunk]
            pieces = self.unflatten(self.stacked_parameters(chunk)).values()
            # unbind makes every member's views in one call per parameter, not one per member
            yield from zip(chunk, zip(*(p.unbind(0) for p in pieces), strict=True), strict=True)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Splits a flat vector (or a ``[B, dim]`` batch) into named tensors of the parameters'
        shapes (views, no copy)."""
        batch = flat.shape[:-1]
        out, offset = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            size = shape.numel()
            out[name] = flat[..., offset : offset + size].reshape(batch + shape)  # 0-d: ()
            offset += size
        return out

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self.parameters(i) for i in range(self.n_evals))

    @contextmanager
    def loaded(self, net: nn.Module, index: int):
        """Loads evaluation ``index`` into ``net`` for the duration of the block, then puts the
        center back (also when the block raises).

        Example:
            >>> net = nn.Linear(2, 1)
            >>> pop = Population(0, 0, 0.5, 2, ("weight",), (torch.Size([1, 2]),),
            ...                  net.weight.detach().reshape(-1).clone())
            >>> with pop.loaded(net, 0):
            ...     moved = not torch.equal(net.weight.reshape(-1), pop.center)
            >>> moved, torch.equal(net.weight.reshape(-1), pop.center)
            (True, True)
        """
        targets = self.parameter_targets(net)
        try:
            self.copy_into(targets, self.parameters(index))
            yield net
        finally:
            self.copy_into(targets, self.center)

    def load_center(self, net: nn.Module) -> None:
        """Writes the center θ into ``net``'s selected parameters (in place)."""
        self.copy_into(self.parameter_targets(net), self.center)

    def parameter_targets(self, net: nn.Module) -> list[torch.Tensor]:
        """``net``'s selected parameters, in the order of :attr:`names` (the tensors a member's
        values are copied into)."""
        params = dict(net.named_parameters())
        missing = [n for n in self.names if n not in params]
        if missing:
            raise ValueError(f"the net has no parameter named {missing[0]!r}")
        return [params[n] for n in self.names]

    def copy_into(self, targets: list[torch.Tensor], flat: torch.Tensor) -> None:
        """Copies a flat vector (a member, or the center) into ``targets``, in place."""
        with torch.no_grad():
            for target, value in zip(targets, self.unflatten(flat).values(), strict=True):
                target.copy_(value)

    def check_index(self, index: int) -> None:
        """Raises ``IndexError`` unless ``0 <= index < n_evals``."""
        if not 0 <= index < self.n_evals:
            raise IndexError(
                f"evaluation index {index} out of range for {self.n_evals} evaluations"
            )
