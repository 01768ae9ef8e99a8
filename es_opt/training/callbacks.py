"""Callbacks for :meth:`ESOptimizer.fit <es_opt.ESOptimizer.fit>`: the library never prints; these
report.

A callback sees ``on_start(es, generations)`` once, ``on_step(es, result)`` after every step (return
``True`` to stop the run) and ``on_end(es, history)`` once, however the run ends.

- :class:`ProgressBar`: a tqdm bar with mean/max fitness per objective, evaluations per second, ETA.
- :class:`CSVLogger`: one row per generation; appends when the run resumes.
- :class:`TensorBoardLogger`: scalars for TensorBoard.
- :class:`Checkpoint`: saves a checkpoint every N generations and at the end (atomically).
- :class:`EarlyStopping`: stops on a fitness threshold or when fitness stops improving.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import MissingExtraError, require
from ..history import History
from ..loop import Callback
from ..result import StepResult

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

ExtraFn = Callable[[StepResult], dict[str, Any]]


def _check_extra(extra: Any) -> ExtraFn | None:
    if extra is not None and not callable(extra):
        raise TypeError(f"extra must be a callable result -> dict or None, got {extra!r}")
    return extra


def _call_extra(extra: ExtraFn | None, result: StepResult) -> dict[str, Any]:
    if extra is None:
        return {}
    values = extra(result)
    if not isinstance(values, dict):
        raise TypeError(f"extra(result) must return a dict of name -> value, got {values!r:.60}")
    return values


def _objective_names(names: Sequence[str] | None, n_objectives: int) -> list[str]:
    if names is None:
        return ["" if n_objectives == 1 else str(k) for k in range(n_objectives)]
    if len(names) != n_objectives:
        raise ValueError(
            f"objective_names has {len(names)} name(s) {list(names)} but the objective returns "
            f"{n_objectives} value(s)"
        )
    return [str(n) for n in names]


class ProgressBar(Callback):
    """A tqdm progress bar: mean and max fitness per objective, evaluations per second and the ETA.

    Args:
        objective_names: one label per objective (default: none for one objective, indices for
            several).
        extra: ``extra(result) -> dict`` adds values to the bar (e.g. a test accuracy).
        file: where the bar is drawn (default: stderr).
        leave: keep the finished bar on screen.
        desc: the bar's label.

    Needs the ``progress`` extra (``pip install "es_opt[progress]"``).

    Example:
        >>> bar = ProgressBar(objective_names=["return"],
        ...                   extra=lambda result: {"test": 0.97})  # doctest: +SKIP
        >>> history = es.fit(samples_fn, generations=200, callbacks=[bar])  # doctest: +SKIP
    """

    def __init__(
        self,
        objective_names: Sequence[str] | None = None,
        extra: ExtraFn | None = None,
        *,
        file: IO[str] | None = None,
        leave: bool = True,
        desc: str = "ES",
    ):
        self._tqdm = require("tqdm", "progress", "ProgressBar").tqdm
        self.objective_names = None if objective_names is None else list(objective_names)
        self.extra = _check_extra(extra)
        self.file, self.leave, self.desc = file, leave, desc
        self.bar: Any = None

    def on_start(self, es: ESOptimizer, generations: int) -> None:
        self.bar = self._tqdm(
            total=generations, desc=self.desc, unit="gen", file=self.file, leave=self.leave
        )

    def postfix(self, result: StepResult) -> dict[str, str]:
        """The values shown after the bar for ``result``."""
        names = _objective_names(self.objective_names, len(result.fitness_mean))
        values: dict[str, str] = {}
        for name, mean, high in zip(names, result.fitness_mean, result.fitness_max, strict=True):
            suffix = f" {name}" if name else ""
            values[f"mean{suffix}"] = f"{mean:.4g}"
            values[f"max{suffix}"] = f"{high:.4g}"
        values["evals/s"] = f"{result.evals_per_second:.4g}"
        for key, value in _call_extra(self.extra, result).items():
            values[str(key)] = f"{value:.4g}" if isinstance(value, numbers.Real) else str(value)
        return values

    def on_step(self, es: ESOptimizer, result: StepResult) -> None:
        self.bar.set_postfix(self.postfix(result), refresh=False)
        self.bar.update(1)

    def on_end(self, es: ESOptimizer, history: History) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class CSVLogger(Callback):
    """Writes one row per generation (:meth:`StepResult.as_dict` plus ``extra``) and flushes it.

    A run that starts at generation 0 overwrites ``path``. A resumed run (``es.generation > 0``)
    keeps the rows of the generations before ``es.generation`` (rows written after the checkpoint
    it resumed from are dropped, since those generations run again) and appends.

    Args:
        path: the CSV file (its folder is created).
        extra: ``extra(result) -> dict`` adds columns (the same keys every generation).

    Example:
        >>> logger = CSVLogger("runs/cartpole.csv")  # doctest: +SKIP
        >>> es.fit(samples_fn, generations=100, callbacks=[logger])  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str], extra: ExtraFn | None = None):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {path!r}")
        self.path = Path(path)
        self.extra = _check_extra(extra)
        self._file: IO[str] | None = None
        self._writer: csv.DictWriter | None = None
        self._header: list[str] | None = None

    def on_start(self, es: ESOptimizer, generations: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept: list[dict[str, str]] = []
        self._header = None
        if es.generation > 0 and self.path.exists():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                self._header = list(reader.fieldnames or []) or None
                kept = [row for row in reader if int(row["generation"]) < es.generation]
        self._file = open(self.path, "w", newline="")
        self._writer = None
        if self._header is not None:
            self._writer = csv.DictWriter(self._file, fieldnames=self._header)
            self._writer.writeheader()
            self._writer.writerows(kept)
            self._file.flush()

    def on_step(self, es: ESOptimizer, result: StepResult) -> None:
        if self._file is None:
            raise RuntimeError("CSVLogger.on_step called before on_start")
        row = {**result.as_dict(), **_call_extra(self.extra, result)}
        if self._writer is None:
            self._header = list(row)
            self._writer = csv.DictWriter(self._file, fieldnames=self._header)
            self._writer.writeheader()
        elif set(row) != set(self._header or ()):
            raise ValueError(
                f"{self.path} has the columns {self._header} but generation {result.generation} "
                f"reports {list(row)}: log to a new file when the objectives or extra() change"
            )
        self._writer.writerow(row)
        self._file.flush()

    def on_end(self, es: ESOptimizer, history: History) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _summary_writer_class() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # torch raises this when the tensorboard package is missing
        raise MissingExtraError("tensorboard", "tensorboard", "TensorBoardLogger") from exc
    return SummaryWriter


class TensorBoardLogger(Callback):
    """Logs every step's numbers as TensorBoard scalars (``tensorboard --logdir LOG_DIR``).

    Tags: ``fitness/<objective>/mean|max|min``, ``grad_norm``, ``evals_per_second``,
    ``time/eval``, ``time/step``, and ``extra/<key>`` for ``extra(result)``. A resumed run purges
    the events written after the generation it resumed from.

    Needs the ``tensorboard`` extra (``pip install "es_opt[tensorboard]"``).

    Example:
        >>> tb = TensorBoardLogger("runs/tb", objective_names=["return"])  # doctest: +SKIP
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        objective_names: Sequence[str] | None = None,
        extra: ExtraFn | None = None,
    ):
        self._writer_class = _summary_writer_class()
        self.log_dir = str(log_dir)
        self.objective_names = None if objective_names is None else list(objective_names)
        self.extra = _check_extra(extra)
        self.writer: Any = None

    def on_start(self, es: ESOptimizer, generations: int) -> None:
        purge = es.generation if es.generation > 0 else None
        self.writer = self._writer_class(log_dir=self.log_dir, purge_step=purge)

    def scalars(self, result: StepResult) -> dict[str, float]:
        """The tags and values written for ``result``."""
        names = _objective_names(self.objective_names, len(result.fitness_mean))
        out: dict[str, float] = {}
        for k, name in enumerate(names):
            tag = name or "0"
            out[f"fitness/{tag}/mean"] = result.fitness_mean[k]
            out[f"fitness/{tag}/max"] = result.fitness_max[k]
            out[f"fitness/{tag}/min"] = result.fitness_min[k]
        out["grad_norm"] = result.grad_norm
        if math.isfinite(result.evals_per_second):
            out["evals_per_second"] = result.evals_per_second
        out["time/eval"] = result.eval_time
        out["time/step"] = result.step_time
        for key, value in _call_extra(self.extra, result).items():
            out[f"extra/{key}"] = float(value)
        return out

    def on_step(self, es: ESOptimizer, result: StepResult) -> None:
        for tag, value in self.scalars(result).items():
            self.writer.add_scalar(tag, value, result.generation)

    def on_end(self, es: ESOptimizer, history: History) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


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
