"""Modules of es_opt 0.1 that moved in 0.2 stay importable for a release, as torch, NumPy and
scikit-learn keep a moved module: importing the old path emits one :class:`DeprecationWarning`
that names the new one, and every name resolves to the very object of the new module."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["MOVED", "forward"]

MOVED: dict[str, tuple[str, tuple[str, ...]]] = {
    "es_opt.callbacks": (
        "es_opt.training",
        (
            "Callback",
            "ProgressBar",
            "CSVLogger",
            "TensorBoardLogger",
            "Checkpoint",
            "EarlyStopping",
        ),
    ),
    "es_opt.checkpoint": (
        "es_opt.training.checkpoint",
        ("save_checkpoint", "load_checkpoint", "check_architecture"),
    ),
    "es_opt.datasets": (
        "es_opt.supervised.datasets",
        ("MNIST_FILES", "load_digits", "load_mnist", "read_idx", "stratified_split"),
    ),
    "es_opt.functional": (
        "es_opt.evaluators.stacked",
        ("ACTIVATION_BUDGET", "StackedModel", "VectorizationError", "mlp_layers"),
    ),
    "es_opt.plot": ("es_opt.training.plot", ("plot_history", "read_csv", "main")),
    "es_opt.vectorized": (
        "es_opt.evaluators.batched",
        (
            "DEFAULT_MEMORY_BUDGET",
            "VectorizationError",
            "batch_grid",
            "check_population_fitness",
            "evaluate_population_indices",
            "is_vectorized",
            "resolve_max_batch",
        ),
    ),
}
"""Old module → (the module that holds its names now, the old module's ``__all__``), as
CHANGELOG.md's "Layout v2" lists them."""


def forward(old: str) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """Warns that ``old`` moved, at the line that imports it, and returns the alias's
    module-level ``__getattr__`` and ``__dir__``, which read every name from the new module
    (imported on first use), and its ``__all__`` (the names ``old`` exported)."""
    new, names = MOVED[old]
    warnings.warn(
        f"{old} moved to {new} in es_opt 0.2: import from {new} instead ({old} will be removed)",
        DeprecationWarning,
        stacklevel=3,  # past this function and the alias's body, to the importing line
    )

    def __getattr__(name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):  # module protocol lookups (__path__)
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        return getattr(importlib.import_module(new), name)

    def __dir__() -> list[str]:
        return sorted(n for n in dir(importlib.import_module(new)) if not n.startswith("__"))

    return __getattr__, __dir__, list(names)
