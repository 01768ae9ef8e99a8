"""The reporting callbacks: a progress bar, a CSV log and TensorBoard scalars (the library itself
never prints; these report).

- :class:`ProgressBar`: a tqdm bar with mean/max fitness per objective, evaluations per second, ETA.
- :class:`CSVLogger`: one row per generation; appends when the run resumes.
- :class:`TensorBoardLogger`: scalars for TensorBoard.
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

__all__ = ["ProgressBar", "CSVLogger", "TensorBoardLogger"]

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
