"""The inner optimizer :class:`~es_opt.ESOptimizer` uses when none is given, and its settings."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .ranger_lite import RangerLite

__all__ = ["DEFAULT_LR", "DEFAULT_BETAS", "default_optimizer"]

DEFAULT_LR = 1e-2
"""Learning rate of the default inner optimizer (RangerLite), as OpenAI's ES used Adam at 0.01."""

DEFAULT_BETAS = (0.9, 0.9)
"""Betas of the default inner optimizer. RAdam's rectifier ramps the step up over roughly
``2 / (1 − β2)`` steps: with RangerLite's own β2 = 0.999 an ES run moves at a fraction of its
learning rate for its first hundreds of generations (measured: CartPole failed to improve for ~100
generations), while β2 = 0.9 reaches full speed within ~20."""


def default_optimizer(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """The inner optimizer used when none is given: RangerLite with :data:`DEFAULT_LR` and
    :data:`DEFAULT_BETAS`."""
    return RangerLite(list(params), lr=DEFAULT_LR, betas=DEFAULT_BETAS)
