"""The ``multiprocess`` backend: a pool of local worker processes.

Workers are forked from a ``forkserver`` process (never from the threaded main process: safe with
torch's threads) through the ``multiprocess`` package, whose ``dill`` pickling accepts lambdas,
closures and classes defined in ``__main__`` or a notebook. A worker never imports the user's
script (everything it needs arrives pickled by value), so a script without an
``if __name__ == "__main__":`` guard works. Each worker receives the model and the objective once;
each step it receives one message (center, changed tensors, seeds, samples) and then chunks of
evaluation indices, and it sends back fitness rows and stats. This file manages the processes and
their pipes; :mod:`~es_opt.evaluators._scheduler` decides what runs where.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import multiprocess
from multiprocess import connection, spawn, util

from ..errors import EvaluationError
from ._options import Options
from ._parallel import ParallelEvaluator
from ._scheduler import Lost, Reply, Stopped
from ._worker import IDLE, pool_worker_main

__all__ = ["PoolEvaluator"]

START_METHOD = "forkserver"

START_TIMEOUT = 120.0
"""Seconds a new worker may take to import torch and load the model and objective."""


@dataclass
class _Worker:
    slot: int
    process: Any
    conn: Any
    device: str | None
    progress: Any  # shared int: the evaluation the worker is running, or IDLE
    pid: int | None = None


class PoolEvaluator(ParallelEvaluator):
    """Evaluates the population on ``n_workers`` local processes.

    Args:
        n_workers: worker processes (default: ``len(devices)``, else the CPUs this process may
            use).
        devices: device names; worker ``k`` moves its model to ``devices[k % len(devices)]``.
        max_retries: how many times an evaluation whose worker died while running it is re-run
            on a fresh worker before the step fails (default 1).
        eval_timeout: seconds allowed per evaluation (a chunk of ``k`` evaluations gets
            ``k * eval_timeout``); past it the worker is stopped and replaced and the step raises
            :class:`~es_opt.EvaluationError`. ``None`` (default) waits forever.
        worker_threads: torch threads per worker (default 1).
        sync: ``"center"`` (default): each step sends the new centre to every worker;
            ``"replay"``: each worker recomputes it from the previous step's fitness with its own
            replica of the inner optimizer and checks it against the centre's digest, so only
            scalars travel (see :mod:`es_opt.evaluators._replay`).

    Results are bit-identical to :class:`~es_opt.SerialEvaluator` on CPU for any ``n_workers``.

    Example:
        >>> import torch, es_opt
        >>> net = torch.nn.Linear(4, 1)
        >>> with es_opt.ESOptimizer(net, objective_fn=lambda m, s: -float(m.net.weight.sum()),
        ...                         n_samples=8, backend="multiprocess", n_workers=2) as es:
        ...     result = es.gradient_step()  # doctest: +SKIP
    """

    backend = "multiprocess"

    def __init__(
        self,
        n_workers: int | None = None,
        devices: Any = None,
        *,
        max_retries: int = 1,
        eval_timeout: float | None = None,
        worker_threads: int = 1,
        sync: str = "center",
    ):
        super().__init__(
            Options.check(n_workers, devices, max_retries, eval_timeout, worker_threads, sync=sync)
        )
        # The list is shared with the finalizer, which must not hold ``self``: a garbage-collected
        # evaluator (or the interpreter's exit) still stops its workers.
        self._workers: list[_Worker] = []
        self._finalizer = util.Finalize(self, _stop_workers, args=(self._workers,), exitpriority=10)

    @property
    def n_workers(self) -> int:
        return self.options.n_workers

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (started at the first evaluation)."""
        return [w.pid for w in self._workers if w.pid is not None]

    def _start(self) -> _Processes:
        assert self._blob is not None
        processes = _Processes(self._workers, self.options, self._blob)
        processes.start()
        return processes

    def _running(self) -> bool:
        return len(self._workers) == self.options.n_workers

    def _abandon(self) -> None:
        _stop_workers(self._workers, grace=0.0)

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


class _Processes:
    """The pool's transport: one process and one duplex pipe per slot."""

    def __init__(self, workers: list[_Worker], options: Options, blob: bytes):
        self.workers = workers
        self.options = options
        self.n_workers = options.n_workers
        self._blob = blob
        self._context = _context()

    def start(self) -> None:
        self.workers.extend(self._spawn(slot) for slot in range(self.n_workers))
        self._await_ready(self.workers)

    # -- the transport -------------------------------------------------------------------------
    def send(self, slot: int, step: int, payload: bytes | None, indices: list[int]) -> None:
        try:
            self.workers[slot].conn.send(("task", step, payload, indices))
        except (OSError, EOFError):
            pass  # the worker died: its sentinel reports it in wait()

    def wait(self, slots: Sequence[int], timeout: float | None) -> list[Reply | Lost]:
        by_handle = {}
        for slot in slots:
            worker = self.workers[slot]
            by_handle[worker.conn] = slot
            by_handle[worker.process.sentinel] = slot
        events: dict[int, Reply | Lost] = {}
        for handle in connection.wait(list(by_handle), timeout):
            slot = by_handle[handle]
            if slot in events:
                continue
            reply = None
            try:
                if self.workers[slot].conn.poll():
                    reply = self.workers[slot].conn.recv()
            except (EOFError, OSError):
                reply = None
            events[slot] = Lost(slot) if reply is None else Reply(slot, reply)
        return list(events.values())

    def replace(self, slot: int) -> Stopped:
        worker = self.workers[slot]
        index = worker.progress.value  # shared memory: still readable after the worker died
        if worker.process.is_alive():
            worker.process.join(timeout=0.2)  # a dying worker may need a moment to be reaped
        code = worker.process.exitcode
        _stop_worker(worker, grace=0.0)
        if code is None:
            how = "was stopped"
        elif code < 0:
            how = f"was killed by signal {-code} (exit code {code})"
        else:
            how = f"exited (exit code {code})"
        fresh = self._spawn(slot)
        self.workers[slot] = fresh
        self._await_ready([fresh])
        return Stopped(f"worker process {worker.pid}", how, None if index == IDLE else index)

    # -- processes -----------------------------------------------------------------------------
    def _spawn(self, slot: int) -> _Worker:
        parent, child = self._context.Pipe(duplex=True)
        device = self.options.device_of(slot)
        progress = self._context.RawValue("q", IDLE)
        process = self._context.Process(
            target=pool_worker_main,
            args=(child, self._blob, self.options.worker_threads, device, progress, os.getpid()),
            name=f"es_opt-worker-{slot}",
        )
        with _without_main():
            process.start()
        child.close()  # only the worker holds its end: EOF here when it dies
        return _Worker(slot, process, parent, device, progress)

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
                _stop_workers(self.workers, grace=0.0)
                raise EvaluationError(
                    f"a worker process did not start (exit code {code}); see its output above"
                )
            worker.pid = message[1]
            if message[2] is not None:
                _stop_workers(self.workers, grace=0.0)
                raise EvaluationError(
                    "a worker could not load the model and the objective",
                    worker_traceback=message[2],
                )


def _context():
    """The ``forkserver`` context: a single-threaded server process imports torch and es_opt once
    and forks every worker from that clean state. Safe with torch's threads (unlike ``fork`` from
    the main process), and a worker starts in milliseconds rather than re-importing torch as
    ``spawn`` does (seconds), which matters when a dead worker is replaced mid-generation."""
    context = multiprocess.get_context(START_METHOD)
    context.set_forkserver_preload([__name__.rsplit(".", 1)[0] + "._worker"])
    return context


# -- starting a worker without the user's script -------------------------------------------------
_starting = threading.local()
_original_preparation = spawn.get_preparation_data


def _preparation_data(name: str) -> dict[str, Any]:
    """``multiprocess``'s preparation data, without the instruction to run the main module when
    one of our workers starts: a worker needs nothing from the user's script (the model, the
    objective and the samples arrive pickled by value), and running it would run an unguarded
    script's training again in every worker."""
    data = _original_preparation(name)
    if getattr(_starting, "worker", False):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


@contextlib.contextmanager
def _without_main() -> Iterator[None]:
    """Within this block, processes started from this thread do not run the main module.
    (``multiprocess`` is dill's fork of ``multiprocessing``: the standard library's process
    starts, torch's included, are unaffected.)"""
    if spawn.get_preparation_data is not _preparation_data:
        spawn.get_preparation_data = _preparation_data
    _starting.worker = True
    try:
        yield
    finally:
        _starting.worker = False


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
