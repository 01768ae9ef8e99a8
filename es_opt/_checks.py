"""Validation of ESOptimizer's arguments: each function raises ``TypeError``/``ValueError`` naming
the argument and the value, before anything is built."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from . import shaping as shaping_lib
from .model import Model

DEFAULT_LR = 1e-2
"""Learning rate of the default inner optimizer (RangerLite), as OpenAI's ES used Adam at 0.01."""

DEFAULT_BETAS = (0.9, 0.9)
"""Betas of the default inner optimizer. RAdam's rectifier ramps the step up over roughly
``2 / (1 − β2)`` steps: with RangerLite's own β2 = 0.999 an ES run moves at a fraction of its
learning rate for its first hundreds of generations (measured: CartPole failed to improve for ~100
generations), while β2 = 0.9 reaches full speed within ~20."""


def is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_sigma(sigma: Any) -> float:
    if not is_real(sigma):
        raise TypeError(f"sigma must be a positive float, got {type(sigma).__name__} {sigma!r}")
    if not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a finite number > 0, got {sigma}")
    return float(sigma)


def check_n_samples(n_samples: Any) -> int:
    if not isinstance(n_samples, numbers.Integral) or isinstance(n_samples, bool):
        raise TypeError(
            f"n_samples must be an even int >= 2, got {type(n_samples).__name__} {n_samples!r}"
        )
    if n_samples < 2 or n_samples % 2:
        raise ValueError(
            f"n_samples must be an even int >= 2 (n_samples / 2 antithetic pairs), got {n_samples}"
        )
    return int(n_samples)


def check_seed(seed: Any) -> int:
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def check_weights(weights: Any) -> tuple[float, ...]:
    if isinstance(weights, torch.Tensor):
        weights = weights.tolist()
    if is_real(weights):
        weights = [weights]
    try:
        values = tuple(float(w) for w in weights if is_real(w) or raise_weight(w))
    except TypeError:
        raise TypeError(f"obj_weights must be a sequence of floats, got {weights!r}") from None
    if not values:
        raise ValueError("obj_weights must hold at least one weight, got an empty sequence")
    if not all(math.isfinite(w) for w in values):
        raise ValueError(f"obj_weights must be finite, got {list(values)}")
    if all(w == 0 for w in values):
        raise ValueError(f"obj_weights are all zero ({list(values)}): nothing would be optimised")
    return values


def raise_weight(w: Any) -> bool:
    raise TypeError(f"weight {w!r}")


def check_shaping(shaping: Any) -> tuple[str, Callable[[torch.Tensor], torch.Tensor]]:
    if callable(shaping):
        return getattr(shaping, "__name__", "custom"), shaping
    shape = shaping_lib.parse_shaping(shaping) if isinstance(shaping, str) else None
    if shape is None:
        choices = ", ".join(repr(s) for s in (*shaping_lib.SHAPINGS, "top_pairs(k)"))
        raise ValueError(f"shaping must be one of {choices} or a function, got {shaping!r}")
    return shaping.replace(" ", ""), shape


def check_parameters(model: Model) -> None:
    params = model.named_trainable_parameters()
    kinds = {(p.dtype, p.device) for p in params.values()}
    if len(kinds) > 1:
        raise ValueError(
            "all trainable parameters must share one dtype and device, got "
            f"{sorted(str(k) for k in kinds)}"
        )


def check_optimizer_holds(optimizer: Any, model: Model) -> None:
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer)}")
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    for name, param in model.named_trainable_parameters().items():
        if id(param) not in held:
            raise ValueError(
                f"the optimizer does not hold the model's parameter {name!r}: build it over "
                "model.parameters() (or net.parameters())"
            )


def default_optimizer(params: list[nn.Parameter]) -> torch.optim.Optimizer:
    from .optim import RangerLite

    return RangerLite(params, lr=DEFAULT_LR, betas=DEFAULT_BETAS)
