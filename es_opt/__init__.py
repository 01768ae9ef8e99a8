"""es_opt: evolution strategies for PyTorch models on objectives that have no gradient.

Example:
    >>> import torch, es_opt
    >>> net = torch.nn.Linear(4, 1)
    >>> es = es_opt.ESOptimizer(es_opt.Model(net), objective_fn=lambda m, s: 0.0, n_samples=4)
"""

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
from .supervised import (
    Accuracy,
    ClassificationSamples,
    L1Norm,
    MultiObjective,
    NegativeCrossEntropy,
)

__version__ = "0.1.0"

__all__ = [
    "Accuracy",
    "ClassificationSamples",
    "L1Norm",
    "MultiObjective",
    "NegativeCrossEntropy",
    "StackedModel",
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
