"""The one validator of fitness values, wherever they come from: an objective's ``__call__`` (one
member), its ``evaluate_population`` (a batch of members), or a user's ``tell()`` (the whole
generation).

Every error names where the value came from and which evaluation, and every non-finite value is
refused with the same advice: fitness must be finite, because one NaN in the ranks or in the
estimate would silently spoil the step.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "as_fitness_row",
    "check_population_fitness",
    "check_fitness_matrix",
    "stack_rows",
    "NONFINITE_POLICIES",
    "check_nonfinite_policy",
    "rank_nonfinite_last",
]

NONFINITE_POLICIES = ("raise", "worst")
"""What a non-finite fitness value does: ``"raise"`` (an error naming the evaluation, nothing
changes) or ``"worst"`` (the member ranks below every finite one, :func:`rank_nonfinite_last`)."""

NOT_FINITE_ADVICE = (
    "fitness must be finite; clip or replace NaN/inf scores inside the objective, or pass "
    "nonfinite='worst' to rank such members below every finite one"
)


def _not_finite(where: str, value: float, evaluation: int | None = None) -> ValueError:
    at = "" if evaluation is None else f" for evaluation {evaluation}"
    return ValueError(f"{where} returned a non-finite value ({value}){at}: {NOT_FINITE_ADVICE}")


def _first_non_finite(values: torch.Tensor) -> int | None:
    """Row of the first non-finite value of a ``[n, k]`` tensor, or ``None``."""
    finite = torch.isfinite(values).all(dim=1)
    if bool(finite.all()):
        return None
    return int((~finite).nonzero()[0])


def _bad_value(row: torch.Tensor) -> float:
    return next(v for v in row.tolist() if not math.isfinite(v))


def as_fitness_row(
    value: Any, *, index: int | None = None, nonfinite: str = "raise"
) -> torch.Tensor:
    """What an objective returned for one member, as a 1-D float64 tensor, or ``ValueError`` /
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
        if not math.isfinite(number) and nonfinite == "raise":  # checked without a tensor op
            raise _not_finite(where, number)
        return torch.tensor((number,), dtype=torch.float64)
    if isinstance(value, (torch.Tensor, np.ndarray)):
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
        for item in value:
            if isinstance(item, (str, bytes, bool, np.bool_)) or not isinstance(
                item, (numbers.Real, torch.Tensor, np.ndarray)
            ):
                raise TypeError(
                    f"{where} returned a sequence containing {type(item).__name__} {item!r:.40}; "
                    "every value must be a real number"
                )
        row = torch.tensor([float(item) for item in value], dtype=torch.float64)
    else:
        raise TypeError(
            f"{where} must return a float, a sequence of floats or a 1-D tensor, "
            f"got {type(value).__name__}"
        )
    if row.numel() == 0:
        raise ValueError(f"{where} returned no value; return at least one score")
    if nonfinite == "raise" and _first_non_finite(row.unsqueeze(0)) is not None:
        raise _not_finite(where, _bad_value(row))
    return row


def _is_int(tensor: torch.Tensor) -> bool:
    return tensor.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _as_real_tensor(values: Any, where: str, expected: str) -> torch.Tensor:
    if not isinstance(values, torch.Tensor):
        if isinstance(values, (str, bytes)) or values is None:
            raise TypeError(f"{where} must be a {expected} tensor, got {type(values).__name__}")
        try:
            values = torch.as_tensor(values)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"{where} must be a {expected} tensor, got {type(values).__name__}"
            ) from None
    if values.dtype == torch.bool or values.is_complex():
        raise TypeError(f"{where} is a tensor of dtype {values.dtype}; need real numbers")
    values = values.detach().to("cpu", torch.float64)
    return values.unsqueeze(1) if values.dim() == 1 else values


def check_population_fitness(
    values: Any, indices: Sequence[int], *, nonfinite: str = "raise"
) -> list[torch.Tensor]:
    """What ``evaluate_population`` returned for the members ``indices``, as one float64 row per
    member; errors name the evaluation index.

    Example:
        >>> [row.tolist() for row in check_population_fitness(torch.tensor([1.0, 2.0]), [6, 7])]
        [[1.0], [2.0]]
    """
    where = "objective.evaluate_population"
    n = len(indices)
    values = _as_real_tensor(values, f"the value {where} returned", "[B, n_objectives]")
    if values.dim() != 2 or values.shape[0] != n or values.shape[1] == 0:
        raise ValueError(
            f"{where} returned shape {tuple(values.shape)} for {n} members (evaluations "
            f"{indices[0]}..{indices[-1]}); it must return [{n}, n_objectives] (or [{n}])"
        )
    row = _first_non_finite(values) if nonfinite == "raise" else None
    if row is not None:
        raise _not_finite(where, _bad_value(values[row]), indices[row])
    return list(values.unbind(0))


def check_fitness_matrix(
    fitness: Any,
    n_evals: int,
    obj_weights: Sequence[float],
    *,
    nonfinite: str = "raise",
    source: str = "the fitness",
) -> torch.Tensor:
    """The fitness of a whole generation (``[n_evals, n_objectives]``, or ``[n_evals]`` for one
    objective), as float64 on the CPU, checked before anything of the step changes: one value
    per weight of ``obj_weights`` in every row; under ``nonfinite="raise"`` every value finite
    (the error names ``source`` and the evaluation).

    Example:
        >>> check_fitness_matrix([1.0, 2.0], n_evals=2, obj_weights=[1.0]).tolist()
        [[1.0], [2.0]]
        >>> check_fitness_matrix([1.0, float("nan")], n_evals=2, obj_weights=[1.0])
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: the fitness returned a non-finite value (nan) for evaluation 1: ...
    """
    values = _as_real_tensor(fitness, "fitness", f"[{n_evals}, n_objectives]")
    if values.dim() != 2 or values.shape[0] != n_evals:
        raise ValueError(
            f"fitness must have shape [{n_evals}, n_objectives] (or [{n_evals}]), "
            f"got {tuple(values.shape)}"
        )
    row = _first_non_finite(values) if nonfinite == "raise" else None
    if row is not None:
        raise _not_finite(source, _bad_value(values[row]), row)
    if values.shape[1] != len(obj_weights):
        raise ValueError(
            f"obj_weights has {len(obj_weights)} weight(s) {list(obj_weights)} but the objective "
            f"returns {values.shape[1]} value(s) per evaluation"
        )
    return values


def stack_rows(rows: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stacks fitness rows into ``[n_evals, n_objectives]``; a varying number of values is an error
    that names the first evaluation that differs.

    Example:
        >>> stack_rows([torch.tensor([1.0]), torch.tensor([2.0])]).shape
        torch.Size([2, 1])
    """
    width = rows[0].numel()
    for index, row in enumerate(rows):
        if row.numel() != width:
            raise ValueError(
                f"the objective returned {row.numel()} values at evaluation {index} but {width} "
                "at evaluation 0: it must return the same number of values every time"
            )
    return torch.stack(list(rows))


def check_nonfinite_policy(nonfinite: Any) -> str:
    """``nonfinite`` if it names a policy of :data:`NONFINITE_POLICIES`.

    Example:
        >>> check_nonfinite_policy("skip")
        Traceback (most recent call last):
        ...
        ValueError: nonfinite must be 'raise' or 'worst', got 'skip'
    """
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError(f"nonfinite must be 'raise' or 'worst', got {nonfinite!r}")
    return nonfinite


def rank_nonfinite_last(
    fitness: torch.Tensor, obj_weights: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``nonfinite="worst"`` policy (as evosax does): every member with a NaN or ±inf in
    any objective gets, in every objective, a finite value worse than all finite members' —
    below the column's finite minimum for a weight ≥ 0 (maximised), above its maximum for a
    negative weight — so under any shaping and weights it ranks below every finite member::

        worst_k = min_k − max(span_k, |min_k|, 1)   (w_k ≥ 0),  max_k + max(span_k, |max_k|, 1)

    with ``min_k``, ``max_k``, ``span_k`` over the finite members. Returns ``(fitness, bad)``,
    ``bad`` the ``[n_evals]`` mask of such members; when every member is bad the fitness is
    returned unchanged (the caller skips the generation).

    Example:
        >>> F = torch.tensor([[1.0], [float("nan")], [3.0]], dtype=torch.float64)
        >>> fixed, bad = rank_nonfinite_last(F, [1.0])
        >>> fixed.flatten().tolist(), bad.tolist()
        ([1.0, -1.0, 3.0], [False, True, False])
    """
    bad = ~torch.isfinite(fitness).all(dim=1)
    if not bool(bad.any()) or bool(bad.all()):
        return fitness, bad
    good = fitness[~bad]
    low, high = good.min(dim=0).values, good.max(dim=0).values
    span = high - low
    weights = torch.as_tensor(list(obj_weights), dtype=fitness.dtype)
    below = low - torch.maximum(torch.maximum(span, low.abs()), torch.ones_like(low))
    above = high + torch.maximum(torch.maximum(span, high.abs()), torch.ones_like(high))
    finite_max = torch.finfo(fitness.dtype).max
    worst = torch.where(weights >= 0, below, above).clamp(-finite_max, finite_max)
    out = fitness.clone()
    out[bad] = worst
    return out, bad
