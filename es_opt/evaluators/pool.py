"""The ``multiprocess`` backend: a pool of local worker processes.

Workers are forked from a ``forkserver`` process (never from the threaded main process: safe with
torch's threads) through the ``multiprocess`` package, whose ``dill`` pickling accepts lambdas,
closures and classes defined in ``__main__`` or a notebook. Each worker receives the model and the
objective once; each step it receives one message (center, changed tensors, seeds, samples) and
then chunks of evaluation indices, and it sends back fitness rows and stats.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import multiprocess
from multiprocess import connection, util

from ..errors import EvaluationError
from ..population import Population
from ._dispatch import (
    Chunk,
    ChunkQueue,
    Collector,
    Options,
    StepMessages,
    chunks_per_worker,
    pickle_bound,
    rebuild_error,
)
from ._worker import pool_worker_main
from .base import Evaluation, Evaluator

__all__ = ["PoolEvaluator"]

START_METHOD = "forkserver"
IN_FLIGHT = 2
"""Chunks sent ahead to each worker (the one it runs and the next)."""

START_TIMEOUT = 120.0
"""Seconds a new worker may take to import torch and load the model and objective."""


@dataclass
class _Worker:
    slot: int
    process: Any
    conn: Any
    device: str | None
    pid: int | None = None
    last_step: int | None = None
    tasks: list[Chunk] = field(default_factory=list)
    deadline: float | None = None


class PoolEvaluator(Evaluator):
    """Evaluates the population on ``n_workers`` local processes.

    Args:
        n_workers: worker processes (default: the CPUs this process may use).
        devices: device names; worker ``k`` moves its model to ``devices[k % len(devices)]``.
        max_retries: how many times a chunk lost with a dying worker is re-run on a fresh worker
            before the step fails (default 1).
        eval_timeout: seconds allowed per evaluation (a chunk of ``k`` evaluations gets
            ``k * eval_timeout``); past it the worker is stopped and replaced and the step raises
            :class:`~es_opt.EvaluationError`. ``None`` (default) waits forever.
        worker_threads: torch threads per worker (default 1).

    Results are bit-identical to :class:`~es_opt.SerialEvaluator` on CPU for any ``n_workers``.

    Example:
        >>> import torch, es_opt
        >>> net = torch.nn.Linear(4, 1)
        >>> with es_opt.ESOptimizer(net, objective_fn=lambda m, s: -float(m.net.weight.sum()),
        ...                         n_samples=8, backend="multiprocess", n_workers=2) as es:
        ...     result = es.gradient_step()  # doctest: +SKIP
    """

    def __init__(
        self,
        n_workers: int | None = None,
        devices: Any = None,
        *,
        max_retries: int = 1,
        eval_timeout: float | None = None,
        worker_threads: int = 1,
    ):
        self.options = Options.check(n_workers, devices, max_retries, eval_timeout, worker_threads)
        self._context = _context()
        self._blob: bytes | None = None
        self._messages = StepMessages()
        # The list is shared with the finalizer, which must not hold ``self``: a garbage-collected
        # evaluator (or the interpreter's exit) still stops its workers.
        self._workers: list[_Worker] = []
        self._finalizer = util.Finalize(self, _stop_workers, args=(self._workers,), exitpriority=10)
        self._closed = False

    @property
    def n_workers(self) -> int:
        return self.options.n_workers

    def bind(self, model, objective) -> None:
        self._blob = pickle_bound(model, objective, "multiprocess")
        super().bind(model, objective)

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (started at the first evaluation)."""
        return [w.pid for w in self._workers if w.pid is not None]

    # -- the generation ----------------------------------------------------------------------
    def evaluate(self, population: Population, samples: Any) -> Evaluation:
        if self._closed:
            raise RuntimeError("this PoolEvaluator is closed")
        if self._blob is None:
            raise RuntimeError("PoolEvaluator.evaluate called before bind(model, objective)")
        try:
            self._start_workers()
            step = self._messages.begin(self.model, self.objective, population, samples)
            collector = self._run(step, population.n_evals)
        except BaseException as exc:
            if not isinstance(exc, (EvaluationError, ValueError, TypeError)):
                # KeyboardInterrupt or a broken pipe: the workers' state is unknown, so none is
                # left behind; the next evaluation starts fresh ones.
                _stop_workers(self._workers, grace=0.0)
            raise
        collector.raise_first_error()
        return collector.evaluation()

    def _run(self, step: int, n_evals: int) -> Collector:
        per_worker = chunks_per_worker(self.objective)
        queue = ChunkQueue(n_evals, len(self._workers), per_worker=per_worker)
        collector = Collector(n_evals)
        while True:
            # Each worker holds up to IN_FLIGHT chunks, so that it starts its next chunk at once
            # instead of waiting for this process to wake up, read its answer and reply.
            for level in range(IN_FLIGHT):
                for worker in self._workers:
                    if collector.errors or len(worker.tasks) > level:
                        continue
                    if (chunk := queue.next()) is not None:
                        self._send(worker, step, chunk)
            busy = [w for w in self._workers if w.tasks]
            if not busy:
                return collector
            self._wait(busy, queue, collector)

    def _send(self, worker: _Worker, step: int, chunk: Chunk) -> None:
        payload = None if worker.last_step == step else self._messages.payload_for(worker.last_step)
        worker.tasks.append(chunk)
        if len(worker.tasks) == 1:
            worker.deadline = self._deadline(chunk)
        try:
            worker.conn.send(("task", step, payload, chunk.indices))
        except (OSError, EOFError):
            return  # the worker died: its sentinel reports it in _wait
        worker.last_step = step

    def _deadline(self, chunk: Chunk) -> float | None:
        if self.options.eval_timeout is None:
            return None
        return time.monotonic() + self.options.eval_timeout * len(chunk.indices)

    def _wait(self, busy: list[_Worker], queue: ChunkQueue, collector: Collector) -> None:
        deadlines = [w.deadline for w in busy if w.deadline is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        by_handle = {}
        for worker in busy:
            by_handle[worker.conn] = worker
            by_handle[worker.process.sentinel] = worker
        ready = connection.wait(list(by_handle), timeout)
        handled = set()
        for handle in ready:
            worker = by_handle[handle]
            if id(worker) in handled:
                continue
            handled.add(id(worker))
            reply = None
            try:
                if worker.conn.poll():
                    reply = worker.conn.recv()
            except (EOFError, OSError):
                reply = None
            if reply is None:
                self._lost(worker, queue, collector)
                continue
            chunk = worker.tasks.pop(0)
            # the worker starts its next chunk now: that is when its time limit starts
            worker.deadline = self._deadline(worker.tasks[0]) if worker.tasks else None
            if reply[0] == "ok":
                collector.add(reply[1], reply[2], reply[3])
            else:
                worker.last_step = None
                collector.fail(chunk.indices[0], rebuild_error(reply))
        now = time.monotonic()
        for worker in busy:
            if worker.tasks and worker.deadline is not None and now >= worker.deadline:
                self._timed_out(worker, collector)

    # -- faults ------------------------------------------------------------------------------
    def _lost(self, worker: _Worker, queue: ChunkQueue, collector: Collector) -> None:
        chunk, *waiting = worker.tasks
        worker.process.join(timeout=5.0)
        code = worker.process.exitcode
        self._replace(worker)
        for later in waiting:  # sent but not started: they did not cause the death
            queue.requeue(later)
        if chunk.attempt < self.options.max_retries:
            queue.retry(chunk)
            return
        how = f"was killed by signal {-code}" if code is not None and code < 0 else "exited"
        collector.fail(
            chunk.indices[0],
            EvaluationError(
                f"worker process {worker.pid} {how} (exit code {code}) while running "
                f"{chunk.describe()}, and the chunk was already retried "
                f"{chunk.attempt} time(s) (max_retries={self.options.max_retries})",
                index=chunk.indices[0],
            ),
        )

    def _timed_out(self, worker: _Worker, collector: Collector) -> None:
        chunk = worker.tasks[0]
        limit = self.options.eval_timeout
        pid = worker.pid
        self._replace(worker)  # the step fails: the chunks queued behind this one are moot
        collector.fail(
            chunk.indices[0],
            EvaluationError(
                f"{chunk.describe()} did not finish within eval_timeout={limit} s per evaluation "
                f"({limit * len(chunk.indices):g} s for {len(chunk.indices)} evaluations); the "
                f"worker process {pid} was stopped and replaced",
                index=chunk.indices[0],
            ),
        )

    def _replace(self, worker: _Worker) -> None:
        _stop_worker(worker, grace=0.0)
        fresh = self._spawn(worker.slot)
        self._workers[self._workers.index(worker)] = fresh
        self._await_ready([fresh])

    # -- processes ---------------------------------------------------------------------------
    def _start_workers(self) -> None:
        if self._workers:
            return
        self._workers.extend(self._spawn(slot) for slot in range(self.options.n_workers))
        self._await_ready(self._workers)

    def _spawn(self, slot: int) -> _Worker:
        parent, child = self._context.Pipe(duplex=True)
        device = self.options.device_of(slot)
        process = self._context.Process(
            target=pool_worker_main,
            args=(child, self._blob, self.options.worker_threads, device),
            name=f"es_opt-worker-{slot}",
        )
        process.start()
        child.close()  # only the worker holds its end: EOF here when it dies
        return _Worker(slot, process, parent, device)

    def _await_ready(self, workers: list[_Worker]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        for worker in workers:
            remaining = deadline - time.monotonic()
            message = None
            try:
                if worker.conn.poll(max(0.0, remaining)):
                    message = worker.conn.recv()
            except (EOFError, OSError):
                message = None
            if message is None:
                code = worker.process.exitcode
                _stop_workers(self._workers, grace=0.0)
                raise EvaluationError(
                    f"a worker process did not start (exit code {code}); see its output above"
                )
            worker.pid = message[1]
            if message[2] is not None:
                _stop_workers(self._workers, grace=0.0)
                raise EvaluationError(
                    "a worker could not load the model and the objective",
                    worker_traceback=message[2],
                )

    def close(self) -> None:
        """Stops the workers; harmless to call twice."""
        self._closed = True
        self._finalizer()

    def __repr__(self) -> str:
        return (
            f"PoolEvaluator(n_workers={self.n_workers}, devices={self.options.devices}, "
            f"max_retries={self.options.max_retries}, eval_timeout={self.options.eval_timeout}, "
            f"worker_threads={self.options.worker_threads})"
        )


def _context():
    """The ``forkserver`` context: a single-threaded server process imports torch and es_opt once
    and forks every worker from that clean state. Safe with torch's threads (unlike ``fork`` from
    the main process), and a worker starts in milliseconds rather than re-importing torch as
    ``spawn`` does (seconds), which matters when a dead worker is replaced mid-generation."""
    context = multiprocess.get_context(START_METHOD)
    context.set_forkserver_preload([__name__.rsplit(".", 1)[0] + "._worker"])
    return context


def _stop_worker(worker: _Worker, grace: float) -> None:
    process = worker.process
    if grace > 0 and process.is_alive():
        try:
            worker.conn.send(("stop",))
        except (OSError, EOFError):
            pass
        process.join(timeout=grace)
    if process.is_alive():
        process.kill()
        process.join(timeout=5.0)
    worker.conn.close()
    if process.exitcode is not None:
        process.close()


def _stop_workers(workers: list[_Worker], grace: float = 2.0) -> None:
    """Asks every worker to stop, kills those that do not within ``grace`` seconds, and reaps
    them all, so no process outlives the evaluator."""
    stopping, workers[:] = list(workers), []
    for worker in stopping if grace > 0 else ():
        try:
            worker.conn.send(("stop",))
        except (OSError, EOFError):
            pass
    deadline = time.monotonic() + grace
    for worker in stopping:
        worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
        _stop_worker(worker, grace=0.0)
