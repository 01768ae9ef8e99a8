"""Callbacks for :meth:`ESOptimizer.fit <es_opt.ESOptimizer.fit>`: the library never prints; these
report.

A callback sees ``on_start(es, generations)`` once, ``on_step(es, result)`` after every step (return
``True`` to stop the run) and ``on_end(es, history)`` once, however the run ends.

- :class:`ProgressBar`, :class:`CSVLogger`, :class:`TensorBoardLogger`: the reporting callbacks
  (:mod:`es_opt.training.loggers`, re-exported here).
- :class:`Checkpoint`: saves a checkpoint every N generations and at the end (atomically).
- :class:`EarlyStopping`: stops on a fitness threshold or when fitness stops improving.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..history import History
from ..loop import Callback
from ..result import StepResult
from .loggers import CSVLogger, ProgressBar, TensorBoardLogger

if TYPE_CHECKING:
    from ..optimizer import ESOptimizer

__all__ = [
    "Callback",
    "ProgressBar",
    "CSVLogger",
    "TensorBoardLogger",
    "Checkpoint",
    "EarlyStopping",
]


class Checkpoint(Callback):
    """Saves a checkpoint (:func:`es_opt.training.save_checkpoint`) every ``every`` generations
    and when the run ends normally; each write is atomic, so a run killed while writing leaves the
    previous checkpoint intact.

    Args:
        path: the checkpoint file (overwritten each time).
        every: save after every ``every``-th generation; ``None`` saves only at the end.
        config: the run's configuration (a dict, dataclass or ``argparse.Namespace``), stored with
            the checkpoint.

    No checkpoint is written at the end of a run that raised: the last periodic one is the last
    consistent state.

    Example:
        >>> cb = Checkpoint("runs/cartpole.pt", every=10, config={"lr": 0.01})  # doctest: +SKIP
        >>> es.fit(samples_fn, generations=100, callbacks=[cb])  # doctest: +SKIP
        >>> es_opt.training.checkpoint.load_checkpoint("runs/cartpole.pt", es)  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str], every: int | None = None, config: Any = None):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {path!r}")
        if every is not None and (
            not isinstance(every, numbers.Integral) or isinstance(every, bool) or every < 1
        ):
            raise ValueError(f"every must be a positive int or None, got {every!r}")
        from .checkpoint import plain_config

        self.path = Path(path)
        self.every = every
        self.config = plain_config(config)
        self.saved_generations: list[int] = []

    def save(self, es: ESOptimizer) -> None:
        from .checkpoint import save_checkpoint

        save_checkpoint(self.path, es, config=self.config)
        self.saved_generations.append(es.generation)

    def on_step(self, es: ESOptimizer, result: StepResult) -> None:
        if self.every is not None and es.generation % self.every == 0:
            self.save(es)

    def on_end(self, es: ESOptimizer, history: History) -> None:
        if history.exception is None and (
            not self.saved_generations or self.saved_generations[-1] != es.generation
        ):
            self.save(es)


_MODES = ("max", "min")
_METRICS = ("mean", "max", "min")


class EarlyStopping(Callback):
    """Stops the run when a fitness reaches ``threshold`` or has not improved for ``patience``
    generations.

    Args:
        threshold: stop once the watched fitness is ``>= threshold`` (``<=`` with ``mode="min"``).
        patience: stop after this many generations without an improvement of more than
            ``min_delta`` over the best value seen in this run.
        objective: which objective to watch (its index).
        mode: ``"max"`` (fitness is maximised, the default) or ``"min"``.
        metric: the population statistic watched: ``"mean"`` (default), ``"max"`` or ``"min"``.
        min_delta: the smallest change that counts as an improvement.

    Example:
        >>> stop = EarlyStopping(threshold=475.0, patience=50)
        >>> stop.on_start(None, 100)
        >>> stop.on_step(None, StepResult(0, 4, (480.0,), (500.0,), (450.0,), 1.0, 0.1, 0.1, ()))
        True
        >>> stop.reason
        'EarlyStopping: fitness_mean[0] = 480 reached the threshold 475 at generation 0'
    """

    def __init__(
        self,
        threshold: float | None = None,
        patience: int | None = None,
        objective: int = 0,
        mode: str = "max",
        *,
        metric: str = "mean",
        min_delta: float = 0.0,
    ):
        if threshold is None and patience is None:
            raise ValueError("EarlyStopping needs a threshold=, a patience=, or both")
        if threshold is not None and (
            not isinstance(threshold, numbers.Real) or not math.isfinite(threshold)
        ):
            raise ValueError(f"threshold must be a finite number or None, got {threshold!r}")
        if patience is not None and (
            not isinstance(patience, numbers.Integral) or isinstance(patience, bool) or patience < 1
        ):
            raise ValueError(f"patience must be a positive int or None, got {patience!r}")
        if (
            not isinstance(objective, numbers.Integral)
            or isinstance(objective, bool)
            or objective < 0
        ):
            raise ValueError(f"objective must be a non-negative int index, got {objective!r}")
        if mode not in _MODES:
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if metric not in _METRICS:
            raise ValueError(f"metric must be 'mean', 'max' or 'min', got {metric!r}")
        if not isinstance(min_delta, numbers.Real) or not min_delta >= 0:
            raise ValueError(f"min_delta must be a number >= 0, got {min_delta!r}")
        self.threshold = None if threshold is None else float(threshold)
        self.patience = None if patience is None else int(patience)
        self.objective, self.mode, self.metric = int(objective), mode, metric
        self.min_delta = float(min_delta)
        self.best: float | None = None
        self.wait = 0
        self.reason: str | None = None

    def on_start(self, es: ESOptimizer, generations: int) -> None:
        self.best, self.wait, self.reason = None, 0, None

    def _better(self, value: float, than: float, delta: float) -> bool:
        return value - than > delta if self.mode == "max" else than - value > delta

    def on_step(self, es: ESOptimizer, result: StepResult) -> bool:
        values = getattr(result, f"fitness_{self.metric}")
        if self.objective >= len(values):
            raise ValueError(
                f"EarlyStopping watches objective {self.objective} but the objective returns "
                f"{len(values)} value(s)"
            )
        value = values[self.objective]
        name = f"fitness_{self.metric}[{self.objective}]"
        if self.threshold is not None and (
            value == self.threshold or self._better(value, self.threshold, 0.0)
        ):
            self.reason = (
                f"EarlyStopping: {name} = {value:.6g} reached the threshold {self.threshold:.6g} "
                f"at generation {result.generation}"
            )
            return True
        if self.best is None or self._better(value, self.best, self.min_delta):
            self.best, self.wait = value, 0
            return False
        self.wait += 1
        if self.patience is not None and self.wait >= self.patience:
            self.reason = (
                f"EarlyStopping: {name} has not improved on {self.best:.6g} for {self.wait} "
                f"generations (generation {result.generation})"
            )
            return True
        return False
