"""When a CMA-ES run has stopped making progress: the standard termination criteria (Hansen's
tutorial, arXiv:1604.00772, Appendix B.3; Hansen 2009, BIPOP-CMA-ES) that trigger a restart.

Each criterion reads the run's history of per-generation best and median values and the
distribution's state (σ and ``C`` or its diagonal; for CEM/PGPE/SNES the per-parameter σ):

``tolfun``      the best values of the last ``10 + ⌈30 n/λ⌉`` generations and all values of the
                current one lie within ``tolfun``
``tolx``        every coordinate's standard deviation ``σ √C_ii`` and ``σ |p_c,i|`` below ``tolx``
``noeffectaxis`` adding ``0.1 σ D_i b_i`` (principal axis ``i = g mod n``) leaves the mean unchanged
``noeffectcoord`` adding ``0.2 σ √C_ii`` to some coordinate leaves it unchanged
``conditioncov`` the condition number of ``C`` above ``tolconditioncov``
``tolstagnation`` over the last 20 % (at least ``120 + 30 n/λ``) generations, the median of the most
                recent 30 % of the best and of the median values is no better than of the first 30 %
``maxiter``     ``100 + 150 (n + 3)² / √λ`` generations (pycma's default), or the given cap
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

__all__ = ["StopConditions", "stop_reasons", "coordinate_stds"]


@dataclass(frozen=True)
class StopConditions:
    """Thresholds of the termination criteria (see the module docstring); ``None`` turns a
    criterion off, ``maxiter=None`` uses pycma's default.

    Example:
        >>> StopConditions(tolfun=1e-12).tolfun
        1e-12
    """

    tolfun: float | None = 1e-11
    tolx: float | None = 1e-11
    tolconditioncov: float | None = 1e14
    noeffectaxis: bool = True
    noeffectcoord: bool = True
    tolstagnation: bool = True
    maxiter: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def coordinate_stds(state: Mapping[str, Any], sigma: float | torch.Tensor) -> torch.Tensor:
    """Each coordinate's standard deviation ``σ √C_ii`` (a full ``C``), ``σ D`` (a diagonal) or
    the per-parameter σ itself."""
    if "C" in state and state["C"].dim() == 2:
        return float(state["sigma"]) * state["C"].diagonal().sqrt()
    if "D" in state:
        return float(state["sigma"]) * state["D"]
    return torch.as_tensor(sigma, dtype=torch.float64).flatten()


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _stagnates(best: Sequence[float], median: Sequence[float], dim: int, lam: int) -> bool:
    window = max(120 + 30 * dim / lam, 0.2 * len(best))
    if len(best) < window or len(best) < 120 + 30 * dim / lam:
        return False
    recent = int(min(window, 20_000))
    part = max(1, int(0.3 * recent))
    tail_best, tail_median = best[-recent:], median[-recent:]
    return _median(tail_best[-part:]) >= _median(tail_best[:part]) and _median(
        tail_median[-part:]
    ) >= _median(tail_median[:part])


def stop_reasons(
    conditions: StopConditions,
    *,
    state: Mapping[str, Any],
    sigma: float | torch.Tensor,
    mean: torch.Tensor,
    best: Sequence[float],
    median: Sequence[float],
    current_range: float,
    n_samples: int,
) -> list[str]:
    """The names of the criteria that hold after a generation (empty: keep going).

    Args:
        conditions: the thresholds.
        state: the distribution's state (``sigma``, ``C``/``D``/``B``, ``p_c`` where it has them).
        sigma: the σ the next generation would be drawn with.
        mean: the centre.
        best, median: per generation so far, the best and the median value (lower is better).
        current_range: max − min of the last generation's values.
        n_samples: members per generation ``λ``.

    Example:
        >>> from es_opt.distributions.cma import cma_initial_state
        >>> stop_reasons(StopConditions(), state=cma_initial_state(2, 1e-13), sigma=1e-13,
        ...              mean=torch.zeros(2), best=[1.0], median=[1.0], current_range=0.0,
        ...              n_samples=6)
        ['tolx']
    """
    dim, generation = mean.numel(), len(best)
    reasons = []
    history = 10 + math.ceil(30 * dim / n_samples)
    if conditions.tolfun is not None and generation >= history:
        recent = best[-history:]
        if max(recent) - min(recent) < conditions.tolfun and current_range < conditions.tolfun:
            reasons.append("tolfun")
    stds = coordinate_stds(state, sigma)
    if conditions.tolx is not None and bool((stds < conditions.tolx).all()):
        p_c = state.get("p_c")
        if p_c is None or bool((float(state["sigma"]) * p_c.abs() < conditions.tolx).all()):
            reasons.append("tolx")
    if conditions.noeffectaxis and "B" in state:
        i = generation % dim
        axis = 0.1 * float(state["sigma"]) * state["D"][i] * state["B"][:, i]
        if bool((mean + axis.to(mean.dtype) == mean).all()):
            reasons.append("noeffectaxis")
    if conditions.noeffectcoord and bool((mean + 0.2 * stds.to(mean.dtype) == mean).any()):
        reasons.append("noeffectcoord")
    if conditions.tolconditioncov is not None and "D" in state:
        D = state["D"]
        if float((D.max() / D.min()) ** 2) > conditions.tolconditioncov:
            reasons.append("conditioncov")
    if conditions.tolstagnation and _stagnates(best, median, dim, n_samples):
        reasons.append("tolstagnation")
    maxiter = conditions.maxiter
    if maxiter is None:
        maxiter = 100 + 150 * (dim + 3) ** 2 / math.sqrt(n_samples)
    if generation >= maxiter:
        reasons.append("maxiter")
    return reasons
