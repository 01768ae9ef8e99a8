"""es_opt: evolution strategies for PyTorch models on objectives that have no gradient.

Example:
    >>> import torch, es_opt
    >>> net = torch.nn.Linear(4, 1)
    >>> es = es_opt.ESOptimizer(es_opt.Model(net), objective_fn=lambda m, s: 0.0, n_samples=4)
"""

from __future__ import annotations

import importlib
from typing import Any

from .distributions import CEM, CMAES, PGPE, SNES, OpenAIES, SearchDistribution, SepCMAES
from .errors import CheckpointError, EvaluationError, MissingExtraError
from .evaluators import Evaluation, Evaluator, SerialEvaluator
from .evaluators.stacked import StackedModel, VectorizationError
from .history import History
from .loop import Callback, fit
from .model import Model, SamplingStrategy
from .objective import Objective, Samples
from .optimizer import ESOptimizer
from .perturbations import Dense, LowRank, Perturbation
from .population import Population
from .result import StepResult
from .shaping import TopPairs

__version__ = "0.1.0"

_LAZY = {
    # the supervised application, imported when one of its names is first used
    "Accuracy": "es_opt.supervised",
    "ClassificationSamples": "es_opt.supervised",
    "L1Norm": "es_opt.supervised",
    "MultiObjective": "es_opt.supervised",
    "NegativeCrossEntropy": "es_opt.supervised",
    # the parallel backends (ESOptimizer's backend=), imported on use as make_evaluator does
    "PoolEvaluator": "es_opt.evaluators.pool",
    "RayEvaluator": "es_opt.evaluators.ray_backend",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "supervised":  # es_opt.supervised without importing it, as before it was lazy
        return importlib.import_module("es_opt.supervised")
    raise AttributeError(f"module 'es_opt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Accuracy",
    "ClassificationSamples",
    "L1Norm",
    "MultiObjective",
    "NegativeCrossEntropy",
    "CEM",
    "CMAES",
    "OpenAIES",
    "PGPE",
    "PoolEvaluator",
    "RayEvaluator",
    "SNES",
    "SearchDistribution",
    "SepCMAES",
    "StackedModel",
    "TopPairs",
    "VectorizationError",
    "Callback",
    "CheckpointError",
    "Dense",
    "LowRank",
    "Perturbation",
    "ESOptimizer",
    "Evaluation",
    "EvaluationError",
    "History",
    "Evaluator",
    "MissingExtraError",
    "Model",
    "Objective",
    "Population",
    "SamplingStrategy",
    "Samples",
    "SerialEvaluator",
    "StepResult",
    "fit",
]
