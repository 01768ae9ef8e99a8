"""``WandbLogger``: every step's numbers as a Weights & Biases history row, the run's settings as
its config, and the run record as an artifact.

``mode="offline"`` (or ``WANDB_MODE=offline``) needs no account and no network: the run is kept
under ``dir`` and uploaded later with ``wandb sync``. Needs the ``wandb`` extra
(``pip install "es_opt[wandb]"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import require
from ..history import History
from ..loop import Callback
from ..result import StepResult
from ._tracking import ExtraFn, check_extra, metric_row, run_params
from .checkpoint import plain_config

if TYPE_CHECKING:
    from ..optimizer import ESOptimizer

__all__ = ["WandbLogger"]

_MODES = ("online", "offline", "disabled")


class WandbLogger(Callback):
    """Logs a run to Weights & Biases: the same numbers as :class:`~es_opt.training.CSVLogger`
    (``fitness_mean_0``, ``grad_norm``, ..., and the ``extra`` values) with the generation as the
    step; the ES settings and ``config`` as the run's config; the run record
    (:class:`es_opt.record.RunRecord`) as an artifact of type ``run-record`` at the end.

    Args:
        project: the W&B project.
        name: the run's name.
        dir: where W&B keeps its files (created when missing); ``None``: W&B's default.
        mode: ``"online"``, ``"offline"`` or ``"disabled"``; ``None``: W&B's default
            (``WANDB_MODE``).
        config: the run's configuration (dict, dataclass or ``argparse.Namespace``), logged as
            ``config/<key>`` beside the ES settings (``es/<key>``).
        extra: ``extra(result) -> dict`` adds metrics, as for ``CSVLogger``.
        record: a :class:`~es_opt.record.RunRecord` (or a record's path) to attach at the end.
        entity: the W&B entity (user or team).
        tags: the run's tags.

    Values that are not finite (``nan`` for an evaluation not run this generation) are not
    logged. After ``on_start``, :attr:`run` is the ``wandb`` run.

    Example:
        >>> logger = WandbLogger("cartpole", mode="offline", dir="runs")  # doctest: +SKIP
        >>> es.fit(samples_fn, generations=100, callbacks=[logger])  # doctest: +SKIP
    """

    def __init__(
        self,
        project: str | None = None,
        *,
        name: str | None = None,
        dir: str | Path | None = None,
        mode: str | None = None,
        config: Any = None,
        extra: ExtraFn | None = None,
        record: Any = None,
        entity: str | None = None,
        tags: list[str] | None = None,
    ):
        self._wandb = require("wandb", "wandb", "WandbLogger")
        if mode is not None and mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)} or None, got {mode!r}")
        self.project, self.name, self.mode, self.entity = project, name, mode, entity
        self.dir = None if dir is None else Path(dir)
        self.config = plain_config(config)
        self.extra = check_extra(extra)
        self.record = record
        self.tags = None if tags is None else list(tags)
        self.run: Any = None

    def on_start(self, es: ESOptimizer, generations: int) -> None:
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
        self.run = self._wandb.init(
            project=self.project,
            name=self.name,
            dir=None if self.dir is None else str(self.dir),
            mode=self.mode,
            entity=self.entity,
            tags=self.tags,
            config=run_params(es, self.config, text=False),
            reinit="create_new",
        )

    def on_step(self, es: ESOptimizer, result: StepResult) -> None:
        if self.run is None:
            raise RuntimeError("WandbLogger.on_step called before on_start")
        self.run.log(metric_row(result, self.extra), step=result.generation)

    def on_end(self, es: ESOptimizer, history: History) -> None:
        if self.run is None:
            return
        record = getattr(self.record, "path", self.record)
        if record is not None and Path(record).is_file():
            artifact = self._wandb.Artifact(f"run-record-{self.run.id}", type="run-record")
            artifact.add_file(str(record))
            self.run.log_artifact(artifact)
        self.run.finish(exit_code=1 if history.exception is not None else 0)
        self.run = None
