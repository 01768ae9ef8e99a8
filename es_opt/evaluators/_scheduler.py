"""The one scheduling loop of the parallel backends, behind a small :class:`Transport` interface.

The loop owns everything that decides a result or an error: which chunk goes to which worker and
when, how many chunks each worker holds, deadlines (``eval_timeout``), what happens to the chunks
of a lost worker (requeue, retry up to ``max_retries``), and which error a failed generation
reports (the lowest evaluation index, as the serial evaluator would). A transport only moves
messages and manages processes (:mod:`~es_opt.evaluators.pool`) or actors
(:mod:`~es_opt.evaluators.ray_backend`).

Losing a worker: the member that was running is charged one attempt. A transport that can tell
which member that was (the pool: the worker records it in shared memory) names it. When it cannot
(a Ray actor is gone with its memory), the worker may have been running any chunk it held, not
only the oldest: an actor that finishes a task and dies in the next one can take the finished
task's reply with it, and Ray then fails both. So every member the worker held is run again
*alone* (one per task, on a worker holding nothing else), without charge, and a worker lost while
holding one such task alone is charged for it. So the error that ends a step always names the
member that killed its worker, and a fault that does not repeat costs no attempt.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ..errors import EvaluationError
from ..fitness import stack_rows
from ._chunks import Chunk, ChunkQueue
from ._messages import StepMessages, failed_index, rebuild_error
from ._options import Options
from .base import Evaluation

__all__ = ["IN_FLIGHT", "Collector", "Lost", "Reply", "Scheduler", "Stopped", "Transport"]

IN_FLIGHT = 2
"""Chunks sent ahead to each worker (the one it runs and the next), so that it starts its next
chunk at once instead of waiting for the main process to read its answer and reply."""


@dataclass(frozen=True)
class Reply:
    """A worker answered its oldest chunk (``message``: see :mod:`~es_opt.evaluators._messages`)."""

    slot: int
    message: tuple


@dataclass(frozen=True)
class Lost:
    """A worker is gone (its process died, its actor failed, or its pipe broke)."""

    slot: int


@dataclass(frozen=True)
class Stopped:
    """What a transport knows of the worker it just replaced: ``worker`` names it ("worker process
    1234"), ``how`` it ended ("was killed by signal 9 (exit code -9)"), ``index`` the evaluation it
    was running if the transport can tell, ``detail`` any text for the error's traceback."""

    worker: str
    how: str
    index: int | None = None
    detail: str = ""


class Transport(Protocol):
    """Moves tasks to ``n_workers`` worker slots and answers back; knows nothing of chunks' fate.

    A slot's tasks run one after the other, in the order sent.
    """

    n_workers: int

    def send(self, slot: int, step: int, payload: bytes | None, indices: list[int]) -> None:
        """Queues the evaluations ``indices`` of step ``step`` on worker ``slot``, preceded by
        ``payload`` (the step message) unless it is ``None``. Must not raise for a dead worker:
        :meth:`wait` reports it."""

    def wait(self, slots: Sequence[int], timeout: float | None) -> list[Reply | Lost]:
        """Blocks until at least one of ``slots`` answers its oldest task or is lost, or until
        ``timeout`` seconds pass (then returns ``[]``). At most one event per slot."""

    def replace(self, slot: int) -> Stopped:
        """Stops worker ``slot`` (dead or alive) and starts a fresh one in its place; returns what
        it knows of the stopped one."""


@dataclass
class Collector:
    """Rows and stats by evaluation index, and the errors met on the way."""

    n_evals: int
    rows: dict[int, list[float]] = field(default_factory=dict)
    stats: dict[int, Any] = field(default_factory=dict)
    errors: list[tuple[int, BaseException]] = field(default_factory=list)

    def add(self, indices: list[int], rows: list[list[float]], stats: list[Any]) -> None:
        for index, row, stat in zip(indices, rows, stats, strict=True):
            self.rows[index] = row
            self.stats[index] = stat

    def fail(self, index: int, error: BaseException) -> None:
        self.errors.append((index, error))

    @property
    def lowest_error(self) -> int | None:
        """The lowest index that failed so far: only evaluations below it still matter."""
        return min(index for index, _ in self.errors) if self.errors else None

    def raise_first_error(self) -> None:
        """Raises the error of the lowest evaluation index, so that the same failure is reported
        whatever the number of workers."""
        if self.errors:
            raise min(self.errors, key=lambda pair: pair[0])[1]

    def evaluation(self) -> Evaluation:
        rows = [torch.tensor(self.rows[i], dtype=torch.float64) for i in range(self.n_evals)]
        return Evaluation(stack_rows(rows), [self.stats[i] for i in range(self.n_evals)])


EMPTY_SYNC_STATS = {"sent": 0, "replayed": 0, "resynced": 0}


class Scheduler:
    """Runs generations on a :class:`Transport`; remembers, across steps, which step message each
    worker holds (a worker that saw the previous step gets only the changes). ``sync_stats``
    counts, per worker and step, how the centre arrived (see ``ParallelEvaluator.sync_stats``)."""

    def __init__(
        self, transport: Transport, options: Options, sync_stats: dict[str, int] | None = None
    ):
        self.transport = transport
        self.options = options
        self._last_step: list[int | None] = [None] * transport.n_workers
        self.sync_stats = sync_stats if sync_stats is not None else dict(EMPTY_SYNC_STATS)

    def run(self, messages: StepMessages, n_evals: int, per_worker: int) -> Evaluation:
        """Evaluates step ``messages.step_id``; raises the lowest-index error if any failed."""
        run = _Generation(self, messages, n_evals, per_worker)
        run.loop()
        run.collector.raise_first_error()
        return run.collector.evaluation()


class _Generation:
    """The state of one generation on the scheduler's workers."""

    def __init__(self, scheduler: Scheduler, messages: StepMessages, n_evals: int, per_worker: int):
        self.transport = scheduler.transport
        self.options = scheduler.options
        self.last_step = scheduler._last_step
        self.messages = messages
        self.step = messages.step_id
        n_workers = self.transport.n_workers
        self.queue = ChunkQueue(n_evals, n_workers, per_worker=per_worker)
        self.collector = Collector(n_evals)
        self.lanes: list[list[Chunk]] = [[] for _ in range(n_workers)]  # sent, in order
        self.sync_stats = scheduler.sync_stats
        self.replaying = [False] * n_workers  # sent a replay this step, not yet confirmed
        self.deadlines: list[float | None] = [None] * n_workers  # of each lane's first chunk

    def loop(self) -> None:
        while True:
            self._fill()
            busy = [slot for slot, lane in enumerate(self.lanes) if lane]
            if not busy:
                return
            pending = [self.deadlines[slot] for slot in busy if self.deadlines[slot] is not None]
            timeout = max(0.0, min(pending) - time.monotonic()) if pending else None
            for event in self.transport.wait(busy, timeout):
                if isinstance(event, Reply):
                    self._answered(event.slot, event.message)
                else:
                    self._lost(event.slot)
            now = time.monotonic()
            for slot in busy:
                deadline = self.deadlines[slot]
                if self.lanes[slot] and deadline is not None and now >= deadline:
                    self._timed_out(slot)

    def _fill(self) -> None:
        # Level by level, so that every worker gets its first chunk before any gets a second.
        for level in range(IN_FLIGHT):
            for slot, lane in enumerate(self.lanes):
                if len(lane) > level or (lane and lane[0].alone):
                    continue
                chunk = self.queue.next(below=self.collector.lowest_error, behind=bool(lane))
                if chunk is None:
                    return
                payload = None
                if self.last_step[slot] != self.step:
                    replay = self.messages.replays_for(self.last_step[slot])
                    payload = self.messages.payload_for(self.last_step[slot])
                    self.last_step[slot] = self.step
                    self.replaying[slot] = replay
                    self.sync_stats["replayed" if replay else "sent"] += 1
                lane.append(chunk)
                if len(lane) == 1:
                    self.deadlines[slot] = self._deadline(chunk)
                self.transport.send(slot, self.step, payload, chunk.indices)

    def _deadline(self, chunk: Chunk) -> float | None:
        if self.options.eval_timeout is None:
            return None
        return time.monotonic() + self.options.eval_timeout * len(chunk.indices)

    def _pop(self, slot: int) -> Chunk:
        chunk = self.lanes[slot].pop(0)
        # the worker starts its next chunk now: that is when its time limit starts
        lane = self.lanes[slot]
        self.deadlines[slot] = self._deadline(lane[0]) if lane else None
        return chunk

    def _answered(self, slot: int, reply: tuple) -> None:
        chunk = self._pop(slot)
        if reply[0] == "ok":
            self.collector.add(reply[1], reply[2], reply[3])
            return
        if reply[0] == "resync":  # its replayed center did not match: full state, same chunk
            if self.replaying[slot]:  # the chunk that carried the replay: its answer comes first
                self.sync_stats["replayed"] -= 1
                self.sync_stats["resynced"] += 1
                self.replaying[slot] = False
                self.last_step[slot] = None
            # (a chunk sent behind it comes back too; the full state is already on its way)
            self.queue.requeue(chunk)
            return
        self.last_step[slot] = None  # its step state may be broken: send it a full one
        error = rebuild_error(reply)
        self.collector.fail(failed_index(reply, error), error)

    # -- faults --------------------------------------------------------------------------------
    def _lost(self, slot: int) -> None:
        held = list(self.lanes[slot])
        self.lanes[slot].clear()
        self.deadlines[slot] = None
        self.last_step[slot] = None
        stopped = self.transport.replace(slot)
        named = stopped.index
        running = [chunk for chunk in held if named is not None and named in chunk.indices]
        if named is not None and running:
            # the transport names the member: the other chunks are not to blame
            chunk, culprit = running[0], named
            for other in held:
                if other is not chunk:
                    self.queue.requeue(other)
        elif len(held) == 1 and len(held[0].indices) == 1:  # it held that member and no other
            chunk, culprit = held[0], held[0].indices[0]
        else:
            # Which member killed it is unknown, and with two chunks held it may have finished
            # the first (its reply lost with the worker) and died in the second: run every
            # member alone to find out, charging none.
            for chunk in held:
                for index in chunk.indices:
                    self.queue.requeue(Chunk([index], chunk.attempt, alone=True))
            return
        others = [index for index in chunk.indices if index != culprit]
        if others:
            self.queue.requeue(Chunk(others, chunk.attempt))
        if chunk.attempt < self.options.max_retries:
            self.queue.retry(Chunk([culprit], chunk.attempt))
            return
        self.collector.fail(
            culprit,
            EvaluationError(
                f"{stopped.worker} {stopped.how} while running evaluation {culprit}, which was "
                f"already retried {chunk.attempt} time(s) (max_retries={self.options.max_retries})",
                index=culprit,
                worker_traceback=stopped.detail,
            ),
        )

    def _timed_out(self, slot: int) -> None:
        chunk = self.lanes[slot][0]
        self.lanes[slot].clear()  # the step fails: the chunks queued behind this one are moot
        self.deadlines[slot] = None
        self.last_step[slot] = None
        stopped = self.transport.replace(slot)
        limit = self.options.eval_timeout
        assert limit is not None
        known = stopped.index in chunk.indices
        index = stopped.index if known else chunk.indices[0]
        what = f"evaluation {index}" if known else chunk.describe()
        self.collector.fail(
            index,
            EvaluationError(
                f"{what} did not finish within eval_timeout={limit} s per evaluation "
                f"({limit * len(chunk.indices):g} s for the {len(chunk.indices)} evaluation(s) of "
                f"its task); {stopped.worker} was stopped and replaced",
                index=index,
            ),
        )
