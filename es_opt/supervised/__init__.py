"""Supervised learning on objectives without a gradient (raw accuracy, a non-differentiable
penalty): classification objectives with a vectorised path, and the digits / MNIST data sets."""

from .datasets import MNIST_FILES, load_digits, load_mnist, read_idx, stratified_split
from .objectives import (
    Accuracy,
    ClassificationSamples,
    L1Norm,
    MultiObjective,
    NegativeCrossEntropy,
)

__all__ = [
    "MNIST_FILES",
    "Accuracy",
    "ClassificationSamples",
    "L1Norm",
    "MultiObjective",
    "NegativeCrossEntropy",
    "load_digits",
    "load_mnist",
    "read_idx",
    "stratified_split",
]
