"""Validation of :class:`~es_opt.ESOptimizer`'s own arguments, on the shared vocabulary of
:mod:`es_opt._validation`: each function raises ``TypeError``/``ValueError`` naming the argument
and the value, before anything is built."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from . import shaping as shaping_lib
from ._validation import check_int, check_real, is_real
from .model import Model

__all__ = [
    "check_model",
    "check_one_optimizer",
    "check_objective",
    "check_sigma",
    "check_n_samples",
    "check_seed",
    "check_weights",
    "check_shaping",
    "check_parameters",
    "check_optimizer_holds",
]


def check_model(model: Any) -> Model:
    """``model`` as an es_opt :class:`~es_opt.Model` (an ``nn.Module`` is wrapped)."""
    if isinstance(model, nn.Module):
        model = Model(model)
    if not isinstance(model, Model):
        raise TypeError(f"model must be an es_opt.Model or an nn.Module, got {type(model)}")
    return model


def check_one_optimizer(optimizer: Any, sgd_optimizer: Any) -> Any:
    """The inner optimizer, given as ``optimizer=`` or the ancestor's ``sgd_optimizer=``."""
    if optimizer is not None and sgd_optimizer is not None:
        raise ValueError("pass the inner optimizer as optimizer= or sgd_optimizer=, not both")
    return optimizer if optimizer is not None else sgd_optimizer


def check_objective(objective_fn: Any) -> None:
    if objective_fn is None or not callable(objective_fn):
        raise TypeError(
            "objective_fn must be an es_opt.Objective or a callable (model, samples) -> "
            f"score, got {type(objective_fn).__name__}"
        )


def check_sigma(sigma: Any) -> float:
    return check_real("sigma", sigma, low=0, low_open=True)


def check_n_samples(n_samples: Any, antithetic: bool = True) -> int:
    """``n_samples``: an int ≥ 2, even for a distribution of mirrored pairs (``antithetic``)."""
    return check_int("n_samples", n_samples, low=2, even=antithetic)


def check_seed(seed: Any) -> int:
    return check_int("seed", seed, low=0)


def check_weights(weights: Any) -> tuple[float, ...]:
    if isinstance(weights, torch.Tensor):
        weights = weights.tolist()
    if is_real(weights):
        weights = [weights]
    try:
        items = list(weights)
    except TypeError:
        raise TypeError(f"obj_weights must be a sequence of floats, got {weights!r}") from None
    if not all(is_real(w) for w in items):
        raise TypeError(f"obj_weights must be a sequence of floats, got {weights!r}")
    values = tuple(float(w) for w in items)
    if not values:
        raise ValueError("obj_weights must hold at least one weight, got an empty sequence")
    if not all(math.isfinite(w) for w in values):
        raise ValueError(f"obj_weights must be finite, got {list(values)}")
    if all(w == 0 for w in values):
        raise ValueError(f"obj_weights are all zero ({list(values)}): nothing would be optimised")
    return values


def check_shaping(shaping: Any) -> tuple[str, Callable[[torch.Tensor], torch.Tensor]]:
    if callable(shaping):
        return getattr(shaping, "__name__", "custom"), shaping
    if not isinstance(shaping, str):
        choices = ", ".join(repr(s) for s in (*shaping_lib.SHAPINGS, "top_pairs(k)"))
        raise ValueError(f"shaping must be one of {choices} or a function, got {shaping!r}")
    shape = shaping_lib.parse_shaping(shaping)
    return shape.__name__, shape


def check_parameters(model: Model) -> None:
    params = model.named_trainable_parameters()
    for name, param in params.items():
        if not param.is_floating_point():
            raise TypeError(
                f"parameter {name!r} is {param.dtype}: ES perturbs real floating-point "
                "parameters (float32, float64, float16, bfloat16); freeze it "
                "(requires_grad=False) or keep it as a buffer"
            )
    kinds = {(p.dtype, p.device) for p in params.values()}
    if len(kinds) > 1:
        raise ValueError(
            "all trainable parameters must share one dtype and device, got "
            f"{sorted(str(k) for k in kinds)}"
        )


def check_optimizer_holds(optimizer: Any, model: Model) -> None:
    if isinstance(optimizer, type):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer instance, got the class "
            f"{optimizer.__module__}.{optimizer.__qualname__}: build it over the model's "
            f"parameters, e.g. optimizer={optimizer.__name__}(net.parameters(), lr=0.01)"
        )
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__} "
            f"{optimizer!r:.60}"
        )
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    for name, param in model.named_trainable_parameters().items():
        if id(param) not in held:
            raise ValueError(
                f"the optimizer does not hold the model's parameter {name!r}: build it over "
                "model.parameters() (or net.parameters())"
            )
