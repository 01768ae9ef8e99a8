"""What the process pool and the Ray backend share above their transport: the options, the model
and objective shipped once, the step messages, and one generation's all-or-nothing contract."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import EvaluationError
from ..population import Population
from ._chunks import chunks_per_worker
from ._messages import StepMessages, pickle_bound
from ._options import Options
from ._scheduler import EMPTY_SYNC_STATS, Scheduler, Transport
from .base import Evaluation, Evaluator

__all__ = ["ParallelEvaluator"]


class ParallelEvaluator(Evaluator):
    """Base of the parallel backends. A subclass starts its workers in :meth:`_start` (returning
    the :class:`~es_opt.evaluators._scheduler.Transport` over them), says whether they all run in
    :meth:`_running`, stops them all in :meth:`_abandon`, and names itself in ``backend``."""

    backend = ""
    options: Options

    def __init__(self, options: Options):
        self.options = options
        self._blob: bytes | None = None
        self._messages = StepMessages()
        self._scheduler: Scheduler | None = None
        self._sync_stats = dict(EMPTY_SYNC_STATS)
        self._closed = False

    def bind(self, model, objective) -> None:
        self._blob = pickle_bound(model, objective, self.backend)
        super().bind(model, objective)

    def follow(self, optimizer: Any) -> None:
        """With ``sync="replay"``: ships a replica of ``optimizer`` with the model."""
        if self.options.sync != "replay":
            return
        if self._scheduler is not None:
            raise RuntimeError("follow(optimizer) must come before the first evaluation")
        self._blob = pickle_bound(self.model, self.objective, self.backend, optimizer)
        self._messages.optimizer = optimizer

    def updated(self, population: Population, fitness: torch.Tensor, rule: Any) -> None:
        self._messages.record(population, fitness, rule)

    @property
    def sync_stats(self) -> dict[str, int]:
        """Per worker and step, how the centre arrived: ``"replayed"`` by the worker,
        ``"resynced"`` (a replay that did not match: the full state was sent), or ``"sent"``."""
        return dict(self._sync_stats)

    def evaluate(self, population: Population, samples: Any) -> Evaluation:
        name = type(self).__name__
        if self._closed:
            raise RuntimeError(f"this {name} is closed")
        if self._blob is None:
            raise RuntimeError(f"{name}.evaluate called before bind(model, objective)")
        try:
            if self._scheduler is None or not self._running():
                self._abandon()  # e.g. a replacement that did not start: begin afresh
                self._scheduler = Scheduler(self._start(), self.options, self._sync_stats)
            self._messages.begin(self.model, self.objective, population, samples)
            return self._scheduler.run(
                self._messages, population.n_evals, chunks_per_worker(self.objective)
            )
        except BaseException as exc:
            if not isinstance(exc, (EvaluationError, ValueError, TypeError)):
                # KeyboardInterrupt or a broken transport: the workers' state is unknown, so none
                # is left behind; the next evaluation starts fresh ones.
                self._scheduler = None
                self._abandon()
            raise

    def _start(self) -> Transport:
        raise NotImplementedError

    def _running(self) -> bool:
        raise NotImplementedError

    def _abandon(self) -> None:
        raise NotImplementedError
