"""Evaluating many members of a population in one call with ``torch.func``.

:class:`StackedModel` stacks the selected parameters of several members (``[B, *shape]`` each),
shares everything else (non-selected and frozen parameters, buffers), and applies the net to a
batch of inputs with ``torch.func.vmap`` over ``torch.func.functional_call``: a population of 200
MLPs becomes a handful of batched matrix products.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.func import functional_call, vmap

from .model import Model
from .population import Population

__all__ = ["StackedModel"]


class StackedModel:
    """``B`` members of a population applied at once.

    Args:
        model: the wrapped net (its current parameters are the center).
        population: the generation.
        indices: which evaluations to stack (``B = len(indices)``).

    Calling it with ``inputs`` shared by every member (``per_member=False``, shape ``[N, ...]``)
    or one input batch per member (``per_member=True``, shape ``[B, N, ...]``) returns outputs of
    shape ``[B, N, ...]``; member ``b`` equals the net with ``population.parameters(indices[b])``
    loaded, to float round-off.

    Example:
        >>> from torch import nn
        >>> net = nn.Linear(3, 2)
        >>> center = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        >>> pop = Population(0, 0, 0.1, 4, ("weight", "bias"),
        ...                  (net.weight.shape, net.bias.shape), center)
        >>> StackedModel(Model(net), pop, range(4))(torch.zeros(5, 3)).shape
        torch.Size([4, 5, 2])
    """

    def __init__(self, model: Model, population: Population, indices: Sequence[int]):
        self.model = model
        self.indices = list(indices)
        self.stacked = population.unflatten(population.stacked_parameters(self.indices))
        net = model.net
        self.shared = {
            name: param.detach()
            for name, param in net.named_parameters()
            if name not in self.stacked
        }
        self.shared.update(dict(net.named_buffers()))

    def __len__(self) -> int:
        return len(self.indices)

    def _call(self, stacked: dict[str, torch.Tensor], inputs: Any) -> Any:
        return functional_call(self.model.net, {**self.shared, **stacked}, (inputs,))

    def __call__(self, inputs: Any, *, per_member: bool = False) -> Any:
        in_dims = (0, 0 if per_member else None)
        with torch.no_grad():
            return vmap(self._call, in_dims=in_dims)(self.stacked, inputs)
