"""``MLflowLogger``: every step's numbers as MLflow metrics, the run's settings as parameters, and
the run record as an artifact.

It talks to the tracking store through an explicit ``MlflowClient`` (no global active run, so it
neither needs nor disturbs ``mlflow.start_run`` elsewhere in the program). Needs the ``mlflow``
extra (``pip install "es_opt[mlflow]"``).
"""

from __future__ import annotations

import os
import time
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

__all__ = ["MLflowLogger"]

_BATCH = 1000  # MLflow's most metrics per log_batch call


class MLflowLogger(Callback):
    """Logs a run to MLflow: the same numbers as :class:`~es_opt.training.CSVLogger`, one metric
    per column (``fitness_mean_0``, ``grad_norm``, ``eval_time``, ..., and the ``extra``
    values) with the generation as the step; the ES settings and ``config`` as parameters; the
    run record (:class:`es_opt.record.RunRecord`) as an artifact at the end.

    Args:
        tracking_uri: the tracking store (``"sqlite:///mlflow.db"``, ``"http://127.0.0.1:5000"``);
            ``None``: MLflow's default (``MLFLOW_TRACKING_URI``).
        experiment: the experiment's name (created when missing).
        run_name: the run's name.
        run_id: log into this existing run instead of creating one (a resumed run).
        config: the run's configuration (dict, dataclass or ``argparse.Namespace``), logged as
            ``config/<key>`` parameters.
        extra: ``extra(result) -> dict`` adds metrics, as for ``CSVLogger``.
        record: a :class:`~es_opt.record.RunRecord` (or the path of a record) to attach as an
            artifact under ``run_record/`` when the run ends.
        artifact_location: where a newly created experiment keeps artifacts.
        tags: tags of a newly created run.

    Values that are not finite (``nan`` for an evaluation not run this generation) are not
    logged. After the run, :attr:`run_id` names the MLflow run.

    Example:
        >>> logger = MLflowLogger("sqlite:///mlflow.db", experiment="cartpole")  # doctest: +SKIP
        >>> es.fit(samples_fn, generations=100, callbacks=[logger])  # doctest: +SKIP
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        experiment: str = "es_opt",
        run_name: str | None = None,
        run_id: str | None = None,
        config: Any = None,
        extra: ExtraFn | None = None,
        record: Any = None,
        artifact_location: str | None = None,
        tags: dict[str, str] | None = None,
    ):
        self._mlflow = require("mlflow", "mlflow", "MLflowLogger")
        if not isinstance(experiment, str) or not experiment:
            raise ValueError(f"experiment must be a non-empty str, got {experiment!r}")
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.run_name, self.run_id = run_name, run_id
        self.config = plain_config(config)
        self.extra = check_extra(extra)
        self.record = record
        self.artifact_location, self.tags = artifact_location, dict(tags or {})
        self.client: Any = None

    def on_start(self, es: ESOptimizer, generations: int) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(self.tracking_uri)
        if self.run_id is not None:
            self.client.update_run(self.run_id, status="RUNNING")
            return
        experiment = self.client.get_experiment_by_name(self.experiment)
        if experiment is None:
            experiment_id = self.client.create_experiment(
                self.experiment, artifact_location=self.artifact_location
            )
        else:
            experiment_id = experiment.experiment_id
        run = self.client.create_run(experiment_id, run_name=self.run_name, tags=self.tags)
        self.run_id = run.info.run_id
        params = [Param(k, v) for k, v in run_params(es, self.config).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def on_step(self, es: ESOptimizer, result: StepResult) -> None:
        from mlflow.entities import Metric

        if self.client is None:
            raise RuntimeError("MLflowLogger.on_step called before on_start")
        now = int(time.time() * 1000)
        metrics = [
            Metric(key, value, now, result.generation)
            for key, value in metric_row(result, self.extra).items()
        ]
        for i in range(0, len(metrics), _BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + _BATCH])

    def on_end(self, es: ESOptimizer, history: History) -> None:
        if self.client is None:
            return
        record = getattr(self.record, "path", self.record)
        if record is not None and Path(record).is_file():
            self.client.log_artifact(self.run_id, os.fspath(record), artifact_path="run_record")
        status = "FAILED" if history.exception is not None else "FINISHED"
        self.client.set_terminated(self.run_id, status=status)
