"""What changes an :class:`~es_opt.ESOptimizer` run besides an update of the centre: a generation
skipped because no member had a finite fitness (``nonfinite="worst"``), and a restart.

A skipped generation advances only the generation counter, so the next generation draws new
members; the centre, the inner optimizer's state, ``.grad`` and the search distribution's state
(σ, paths, covariance) stay exactly as they were.

A restart (:func:`restart`, as IPOP/BIPOP restarts need: :mod:`es_opt.training.restarts`) starts
a new run of the same optimizer: the search distribution's state as at construction with a new
σ (CMA-ES: ``m`` = the new centre, ``C = I``, ``p_σ = p_c = 0``; PGPE/SNES: σ everywhere), a new
population size, a new centre, the inner optimizer's per-parameter state (moments, slow
weights) cleared. The generation counter keeps counting, so the new run draws new noise.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch

from ._arguments import check_sigma
from .distributions import _run_state as run_state
from .population import Population
from .result import StepResult

__all__ = ["restart", "skip_generation"]


def skip_generation(
    es: Any,
    population: Population,
    fitness: torch.Tensor,
    bad: torch.Tensor,
    eval_time: float,
    start: float,
) -> StepResult:
    """Ends the step of ``population`` (whose ``fitness`` is non-finite for every member,
    ``bad`` all true) without an update, warns, and returns its :class:`StepResult`
    (``grad_norm`` 0, ``nonfinite`` = the population size, statistics NaN)."""
    warnings.warn(
        f"generation {population.generation}: every fitness value is non-finite; the centre "
        "and the search distribution's state are unchanged (nonfinite='worst')",
        RuntimeWarning,
        stacklevel=4,
    )
    es.state = replace(es.state, generation=es.generation + 1, n_objectives=fitness.shape[1])
    es._pending = None
    layers = es.model.selected_layer_names(population.generation, es.seed)
    step_time = time.perf_counter() - start
    return StepResult.of(
        population.generation, fitness, torch.zeros(1), eval_time, step_time, layers, bad
    )


def restart(
    es: Any,
    *,
    sigma: float | None = None,
    n_samples: int | None = None,
    center: Mapping[str, torch.Tensor] | None = None,
    reset_optimizer: bool = True,
) -> None:
    """Starts a new run of the :class:`~es_opt.ESOptimizer` ``es``: afterwards its state is
    that of a new ``ESOptimizer`` built with this ``sigma``, ``n_samples`` and the parameters
    ``center``, except for the generation counter, which keeps counting (the new run draws new
    noise) and the objective's own state (e.g. an observation normaliser), which is kept.

    Args:
        es: the optimizer.
        sigma: the new run's σ₀ (``None``: ``es.sigma``); the search distribution's state
            (``ESState.sigma_vector``, ``ESState.distribution_state``) starts afresh from it.
        n_samples: the new population size (``None``: unchanged); checked as
            ``es.n_samples = n_samples`` checks it (even for mirrored pairs, accepted by the
            distribution).
        center: the new centre: ``{name: tensor}`` for every trainable parameter of the model
            (the names of ``net.named_parameters()``), shapes as the parameters'; cast to the
            dtype the inner optimizer steps (the float32 master copy of a float16/bfloat16
            parameter keeps the full value). ``None`` keeps the parameters.
        reset_optimizer: clear the inner optimizer's per-parameter state (and that of an
            optimizer it wraps, e.g. :class:`~es_opt.optim.Lookahead`'s inner one), so its
            moments, step counts and slow weights start again; its parameter groups (lr,
            betas, as a schedule left them) stay.

    Every argument is checked before anything changes.

    Example:
        >>> import es_opt
        >>> net = torch.nn.Linear(2, 1)
        >>> es = es_opt.ESOptimizer(net, objective_fn=lambda m, s: 0.0, n_samples=4, sigma=0.1)
        >>> _ = es.gradient_step()
        >>> zero = {name: torch.zeros_like(p) for name, p in net.named_parameters()}
        >>> restart(es, sigma=0.5, n_samples=8, center=zero)
        >>> es.sigma, es.n_samples, es.generation, float(net.weight.detach().abs().sum())
        (0.5, 8, 1, 0.0)
    """
    sigma = es.sigma if sigma is None else check_sigma(sigma)
    n_samples = (
        es.n_samples if n_samples is None else run_state.check_population_size(es, n_samples)
    )
    if not isinstance(reset_optimizer, bool):
        raise TypeError(f"reset_optimizer must be True or False, got {reset_optimizer!r}")
    params = es._master.parameters()  # float32 master copies of a low-precision net
    values = None if center is None else _checked_center(center, params)
    distribution = es.distribution
    sigma_vector = run_state.initial_sigma_vector(distribution, sigma, params)
    distribution_state = run_state.initial_state(distribution, sigma, params)
    if values is not None:
        with torch.no_grad():
            for name, value in values.items():
                params[name].copy_(value)
        if es._master.enabled:
            es._master.push()  # the net holds the cast of the new master copies
    if reset_optimizer:
        _clear_state(es.optimizer)
    es.state = replace(
        es.state,
        sigma=sigma,
        n_samples=n_samples,
        sigma_vector=sigma_vector,
        distribution_state=distribution_state,
    )
    es._pending = None


def _checked_center(center: Any, params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``center`` as finite tensors of the parameters' shapes, dtypes and devices, one for every
    trainable parameter and for nothing else."""
    if not isinstance(center, Mapping):
        raise TypeError(
            f"center must be a mapping name -> tensor of the trainable parameters, got "
            f"{type(center).__name__}"
        )
    missing, unexpected = sorted(set(params) - set(center)), sorted(set(center) - set(params))
    if missing or unexpected:
        raise ValueError(
            f"center must hold every trainable parameter and nothing else: missing {missing}, "
            f"unexpected {unexpected}"
        )
    values = {}
    for name, param in params.items():
        value = center[name]
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"center[{name!r}] must be a tensor, got {type(value).__name__}")
        if value.shape != param.shape:
            raise ValueError(
                f"center[{name!r}] must have the parameter's shape {tuple(param.shape)}, got "
                f"{tuple(value.shape)}"
            )
        value = value.detach().to(device=param.device, dtype=param.dtype)
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"center[{name!r}] must be finite, got a NaN or infinite value")
        values[name] = value
    return values


def _clear_state(optimizer: torch.optim.Optimizer) -> None:
    """Empties the per-parameter state of ``optimizer`` and of the optimizers it wraps."""
    seen: set[int] = set()
    while isinstance(optimizer, torch.optim.Optimizer) and id(optimizer) not in seen:
        seen.add(id(optimizer))
        optimizer.state.clear()
        optimizer = getattr(optimizer, "optimizer", None)
