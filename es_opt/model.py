"""``Model``: an ``nn.Module`` wrapper that knows the net's layers and which of them ES perturbs.

A *layer* is a top-level child module that owns trainable parameters, in definition order.
Parameters registered directly on the wrapped module (not inside a child) form one extra layer,
named ``""``, placed first. Frozen parameters (``requires_grad=False``) and buffers are never
perturbed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .noise import LAYER_STREAM, derive_seed

__all__ = ["Model", "SamplingStrategy", "Layer"]


class SamplingStrategy(enum.Enum):
    """Which layers one ES step perturbs and updates.

    - ``ALL``: every trainable parameter, every step (the default).
    - ``BOTTOM_UP``: one layer per step, first to last, then again from the first.
    - ``TOP_DOWN``: one layer per step, last to first, cycling.
    - ``RANDOM``: one layer per step, drawn uniformly from a generator seeded with the optimizer's
      seed and the generation (reproducible, and the same in every process).

    Perturbing one layer at a time shrinks the search space per step (the estimator's variance
    grows with the number of perturbed parameters), at the price of more steps.
    """

    ALL = "all"
    BOTTOM_UP = "bottom_up"
    TOP_DOWN = "top_down"
    RANDOM = "random"


@dataclass(frozen=True)
class Layer:
    """A group of trainable parameters sampled together: ``names`` are keys of
    ``net.named_parameters()``."""

    name: str
    names: tuple[str, ...]


class Model:
    """Wraps an ``nn.Module`` for ES: calling the model calls the net.

    Args:
        net: the network to train.
        strategy: a :class:`SamplingStrategy` (or its value, e.g. ``"bottom_up"``).

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
        >>> model = Model(net=net, strategy=SamplingStrategy.BOTTOM_UP)
        >>> [layer.name for layer in model.layers]
        ['0', '2']
        >>> model(torch.zeros(1, 4)).shape
        torch.Size([1, 2])
    """

    def __init__(self, net: nn.Module, strategy: SamplingStrategy | str = SamplingStrategy.ALL):
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        try:
            strategy = SamplingStrategy(strategy)
        except ValueError:
            choices = ", ".join(s.name for s in SamplingStrategy)
            raise ValueError(f"strategy must be one of {choices}, got {strategy!r}") from None
        self.net = net
        self.strategy = strategy
        self.layers = _find_layers(net)
        if not self.layers:
            raise ValueError(
                f"net has no trainable parameters ({type(net).__name__}: every parameter has "
                "requires_grad=False, or it has none): there is nothing for ES to optimise"
            )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.net(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Calls the wrapped net."""
        return self.net(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Model(strategy={self.strategy.name}, layers={[lay.name for lay in self.layers]})"

    def named_trainable_parameters(self) -> dict[str, nn.Parameter]:
        """Every trainable parameter, by name, in the net's order."""
        return {n: p for n, p in self.net.named_parameters() if p.requires_grad}

    def parameters(self) -> list[nn.Parameter]:
        """The trainable parameters (what the inner optimizer must hold)."""
        return list(self.named_trainable_parameters().values())

    def selected_layers(self, step: int, seed: int) -> list[int]:
        """Indices into :attr:`layers` perturbed at ``step`` (the generation) under the strategy.

        Example:
            >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2))
            >>> m = Model(net, SamplingStrategy.TOP_DOWN)
            >>> [m.selected_layers(t, seed=0) for t in range(4)]
            [[2], [1], [0], [2]]
        """
        n = len(self.layers)
        if self.strategy is SamplingStrategy.ALL:
            return list(range(n))
        if self.strategy is SamplingStrategy.BOTTOM_UP:
            return [step % n]
        if self.strategy is SamplingStrategy.TOP_DOWN:
            return [n - 1 - step % n]
        gen = torch.Generator().manual_seed(derive_seed(seed, LAYER_STREAM, step))
        return [int(torch.randint(n, (1,), generator=gen))]

    def selected_layer_names(self, step: int, seed: int) -> tuple[str, ...]:
        """Names of the layers perturbed at ``step`` (what a step's result reports)."""
        return tuple(self.layers[i].name for i in self.selected_layers(step, seed))

    def selected_names(self, step: int, seed: int) -> tuple[str, ...]:
        """Names of the parameters perturbed at ``step``, in the net's order."""
        chosen = set()
        for i in self.selected_layers(step, seed):
            chosen.update(self.layers[i].names)
        return tuple(n for n in self.named_trainable_parameters() if n in chosen)


def _find_layers(net: nn.Module) -> list[Layer]:
    # a parameter shared by several modules (tied weights) has one name, where
    # net.named_parameters() first meets it, and belongs to that layer only
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    layers = []
    own = tuple(n for n, p in net.named_parameters(recurse=False) if n in trainable)
    if own:
        layers.append(Layer("", own))
    for child_name, child in net.named_children():
        names = tuple(
            name
            for name in (f"{child_name}.{n}" for n, _ in child.named_parameters())
            if name in trainable
        )
        if names:
            layers.append(Layer(child_name, names))
    return layers
