"""``Objective`` (what the user maximises), ``Samples`` (what it needs each step), and the
validation of what an objective returns."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from .model import Model

__all__ = ["Objective", "Samples", "as_fitness_row"]


@dataclass
class Samples:
    """Base dataclass for whatever an objective needs in one step: a minibatch, environment
    seeds, ... Subclass it and add fields; the same instance is handed to every evaluation of the
    step (and sent once per worker per step by the parallel backends).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Batch(Samples):
        ...     inputs: torch.Tensor
        ...     targets: torch.Tensor
        >>> Batch(torch.zeros(2, 3), torch.zeros(2)).inputs.shape
        torch.Size([2, 3])
    """


class Objective:
    """What ES maximises. Subclass it and implement ``__call__(model, samples)``, returning one
    score (a float), or several (a sequence of floats or a 1-D tensor) for multi-objective runs.

    Each call sees the model with one perturbation loaded; it must not keep references to the
    parameters. Any plain callable with the same signature (a function, a lambda) is accepted too.

    Optional hooks, for objectives that carry state between generations (e.g. observation
    normalisation in :mod:`es_opt.rl`); the defaults do nothing:

    - ``generation_state()`` → a picklable value sent to every worker before a generation, and
      ``set_generation_state(state)`` applies it there;
    - ``collect_stats()`` → a picklable value describing the evaluation that just ran (called after
      every evaluation, in the process that ran it), and ``merge_stats(stats)`` receives the list
      of them in evaluation order once the step has succeeded;
    - ``state_dict()`` / ``load_state_dict(state)`` are saved in ``ESOptimizer.state_dict()``.

    Example:
        >>> class NegativeDistance(Objective):
        ...     def __call__(self, model, samples):
        ...         return -float(sum(p.square().sum() for p in model.parameters()))
    """

    def __call__(self, model: Model, samples: Any) -> float | Sequence[float] | torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(model, samples)")

    def generation_state(self) -> Any:
        return None

    def set_generation_state(self, state: Any) -> None:
        return None

    def collect_stats(self) -> Any:
        return None

    def merge_stats(self, stats: list[Any]) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


def as_fitness_row(value: Any, *, index: int | None = None) -> torch.Tensor:
    """Converts what an objective returned into a 1-D float64 tensor, or raises ``ValueError`` /
    ``TypeError`` naming the evaluation.

    Accepted: a real number, a sequence of real numbers, a 0-d or 1-D tensor or array. Rejected:
    strings, booleans, 2-D values, empty values, NaN and infinities.

    Example:
        >>> as_fitness_row(3).tolist(), as_fitness_row([1.0, 2.5]).tolist()
        ([3.0], [1.0, 2.5])
    """
    where = "the objective" if index is None else f"the objective (evaluation {index})"
    if isinstance(value, (str, bytes, bool, np.bool_)) or value is None:
        raise TypeError(
            f"{where} must return a float, a sequence of floats or a 1-D tensor, "
            f"got {type(value).__name__} {value!r:.60}"
        )
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):  # the common case, checked without a tensor op
            raise ValueError(
                f"{where} returned a non-finite value ({number}): fitness must be finite; "
                "clip or replace NaN/inf scores inside the objective"
            )
        return torch.tensor((number,), dtype=torch.float64)
    elif isinstance(value, (torch.Tensor, np.ndarray)):
        tensor = torch.as_tensor(value)
        if tensor.dtype == torch.bool or not (tensor.is_floating_point() or _is_int(tensor)):
            raise TypeError(f"{where} returned a tensor of dtype {tensor.dtype}; need real numbers")
        if tensor.dim() > 1:
            raise ValueError(
                f"{where} returned a {tensor.dim()}-D tensor of shape {tuple(tensor.shape)}; "
                "return a float or a 1-D tensor with one value per objective"
            )
        row = tensor.detach().to("cpu", torch.float64).reshape(-1)
    elif isinstance(value, Sequence):
        items = list(value)
        for item in items:
            if isinstance(item, (str, bytes, bool, np.bool_)) or not isinstance(
                item, (numbers.Real, torch.Tensor, np.ndarray)
            ):
                raise TypeError(
                    f"{where} returned a sequence containing {type(item).__name__} {item!r:.40}; "
                    "every value must be a real number"
                )
        row = torch.tensor([float(item) for item in items], dtype=torch.float64)
    else:
        raise TypeError(
            f"{where} must return a float, a sequence of floats or a 1-D tensor, "
            f"got {type(value).__name__}"
        )
    if row.numel() == 0:
        raise ValueError(f"{where} returned no value; return at least one score")
    if not bool(torch.isfinite(row).all()):
        bad = [v for v in row.tolist() if not math.isfinite(v)]
        raise ValueError(
            f"{where} returned a non-finite value ({bad[0]}): fitness must be finite; "
            "clip or replace NaN/inf scores inside the objective"
        )
    return row


def _is_int(tensor: torch.Tensor) -> bool:
    return tensor.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
