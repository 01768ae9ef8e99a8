"""The worker side of the parallel backends: one process (or Ray actor) holding its own copy of the
model and the objective, applying each step's message and evaluating chunks of the population
(the messages are described in :mod:`es_opt.evaluators._messages`).

A worker rebuilds ε from the seeds and returns only fitness rows (as lists of floats) and the
per-evaluation stats, through :func:`~es_opt.evaluators.base.evaluate_indices` like the serial
evaluator, so every row is bit-identical to the serial one whichever worker computes it.

While it evaluates, a worker records which evaluation it is on in ``progress`` (an object with an
int ``value``; for the pool, memory shared with the main process, so that the main process can
still read it when the worker is killed or hangs).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from typing import Any

import dill
import torch

from ..population import Population
from ._messages import error_reply, loads_step
from ._replay import ReplayMismatch, replay_update, replayed_center
from .base import evaluate_indices
from .batched import is_vectorized

__all__ = ["IDLE", "Progress", "WorkerState", "run_task", "pool_worker_main"]

IDLE = -1
"""``progress.value`` while a worker is not inside an evaluation it can name."""


class Progress:
    """A worker's progress when nobody else reads it (a Ray actor's own record)."""

    def __init__(self) -> None:
        self.value = IDLE


class _Tracked:
    """The objective, recording in ``progress`` which evaluation each call is for (one store per
    evaluation: no message, no cost worth measuring)."""

    def __init__(self, objective: Any, indices: list[int], progress: Any):
        self._objective = objective
        self._indices = indices
        self._progress = progress
        self._calls = 0

    def __call__(self, model: Any, samples: Any) -> Any:
        self._progress.value = self._indices[self._calls]
        self._calls += 1
        return self._objective(model, samples)

    def __getattr__(self, name: str) -> Any:  # collect_stats and the objective's own attributes
        return getattr(self._objective, name)


class WorkerState:
    """A worker's copy of the model and objective, and the step it is on."""

    def __init__(self, blob: bytes, threads: int, device: str | None):
        torch.set_num_threads(threads)
        self.model, self.objective, *replica = dill.loads(blob)
        self.optimizer = replica[0] if replica else None  # sync="replay"
        self.device = torch.device(device) if device is not None else None
        if self.device is not None:
            self.model.net.to(self.device)  # in place: the replica's parameters move with it
        self.step_id: int | None = None
        self.awaiting_full = False  # a replay did not match: only a full message helps
        self._last_applied: int | None = None
        self.population: Population | None = None
        self.samples: Any = None

    def set_step(self, step_id: int, payload: bytes) -> None:
        """Applies a step message; on failure the worker forgets its step (and gets a full one).

        Raises:
            ReplayMismatch: the message replays an update and the result is not the main
                process's centre (or the worker does not hold the population it refers to).
        """
        self.step_id = None
        message = loads_step(payload)
        if message["base"] is not None and message["base"] != self._last_applied:
            raise RuntimeError(
                f"step {step_id} carries the changes since step {message['base']}, but this "
                f"worker last saw step {self._last_applied}"
            )
        self._last_applied = None  # until this message is applied in full
        net = self.model.net
        tensors = dict(net.named_parameters())
        tensors.update(net.named_buffers())
        replay = message.get("replay")
        if replay is not None:
            replay_update(self.model, self.optimizer, self.population, replay)
        center = message["center"]
        if center is not None and self.device is not None:
            center = center.to(self.device)
        with torch.no_grad():
            for name, value in message["tensors"].items():
                tensors[name].copy_(value)
        head = message["population"]
        if center is None:  # replayed: the worker's own parameters are the centre
            center = replayed_center(self.model, head.names, replay, step_id)
        population = head.with_center(center)
        with torch.no_grad():
            population.load_center(net)
        if message.get("optimizer_state") is not None and self.optimizer is not None:
            self.optimizer.load_state_dict(message["optimizer_state"])
        if hasattr(self.objective, "set_generation_state"):
            self.objective.set_generation_state(message["generation_state"])
        self.population = population
        self.samples = message["samples"]
        self.step_id = self._last_applied = step_id
        self.awaiting_full = False

    def evaluate(self, indices: list[int], progress: Any) -> tuple[list[list[float]], list[Any]]:
        assert self.population is not None
        objective = self.objective
        if not is_vectorized(objective):  # a batched call cannot name one member
            objective = _Tracked(objective, indices, progress)
        population, samples = self.population, self.samples
        rows, stats = evaluate_indices(self.model, objective, population, samples, indices)
        # float64 -> Python float -> float64 is exact, and lists pickle faster than tensors
        return [row.tolist() for row in rows], stats


def run_task(
    state: WorkerState | None,
    start_error: str | None,
    step_id: int,
    payload: bytes | None,
    indices: list[int],
    progress: Any,
) -> tuple:
    """Runs one chunk and returns the reply (see :mod:`es_opt.evaluators._messages`)."""
    progress.value = IDLE
    try:
        if state is None:
            raise RuntimeError(
                "the worker could not load the model and the objective:\n" + (start_error or "")
            )
        if payload is not None:
            state.set_step(step_id, payload)
        elif state.step_id != step_id:
            if state.awaiting_full:  # a chunk sent behind a replay that did not match
                return ("resync", indices)
            raise RuntimeError(f"the worker has not received step {step_id}")
        rows, stats = state.evaluate(indices, progress)
        return ("ok", indices, rows, stats)
    except ReplayMismatch:
        state.awaiting_full = True  # type: ignore[union-attr]
        return ("resync", indices)
    except Exception as exc:
        # A failed set_step has already cleared state.step_id; after an objective's error the
        # worker's state is intact (evaluate_indices restores the center), so a chunk queued
        # behind this one still runs.
        index = None if progress.value == IDLE else int(progress.value)
        return error_reply(indices, exc, traceback.format_exc(), index)
    finally:
        progress.value = IDLE


MAIN_CHECK_INTERVAL = 1.0
"""Seconds between a pool worker's checks that the main process still exists."""


def pool_worker_main(
    conn: Any, blob: bytes, threads: int, device: str | None, progress: Any, main_pid: int
) -> None:
    """Entry point of a pool worker process: announce, then serve tasks until told to stop or the
    main process goes away. An idle worker sees its pipe close; a busy one (an evaluation may run
    for minutes, or forever) is ended by a watcher thread, so a killed main process leaves no
    orphans."""
    # Ctrl-C reaches the whole process group; the main process decides what happens to workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(main_pid,), daemon=True).start()
    state, start_error = None, None
    try:
        state = WorkerState(blob, threads, device)
    except Exception:
        start_error = traceback.format_exc()
    del blob
    try:
        conn.send(("ready", os.getpid(), start_error))
        while True:
            message = conn.recv()
            if message[0] == "stop":
                return
            _, step_id, payload, indices = message
            reply = run_task(state, start_error, step_id, payload, indices, progress)
            try:
                conn.send(reply)
            except Exception as exc:  # e.g. stats that cannot be pickled
                conn.send(error_reply(indices, exc, traceback.format_exc(), None))
    except (EOFError, OSError, KeyboardInterrupt):
        return


def _exit_with(main_pid: int) -> None:
    """Ends this worker once the process ``main_pid`` is gone (the worker's parent is the fork
    server, so the parent's death signal would not tell)."""
    while not _gone(main_pid):
        time.sleep(MAIN_CHECK_INTERVAL)
    os._exit(1)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else: the pid was reused
        return True
    try:  # a killed process its parent has not reaped yet is a zombie
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
