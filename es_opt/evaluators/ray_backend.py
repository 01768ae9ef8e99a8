"""The ``ray`` backend: long-lived Ray actors, on one machine or a cluster (extra ``ray``).

Each actor receives the model and the objective once (one ``ray.put``). Each step the message
(center, changed tensors, seeds, samples) goes into the object store once (``ray.put``) and every
actor fetches it once; tasks then carry only evaluation indices, and return fitness rows and stats.
The file is not named ``ray.py`` so that it can never shadow the ``ray`` package, and Ray is
imported only when this backend is used.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import time
import weakref
from typing import Any

from ..errors import EvaluationError, require
from ..population import Population
from ._dispatch import (
    Chunk,
    ChunkQueue,
    Collector,
    Options,
    StepMessages,
    chunks_per_worker,
    default_n_workers,
    pickle_bound,
    rebuild_error,
)
from ._worker import WorkerState, run_task
from .base import Evaluation, Evaluator

__all__ = ["RayEvaluator"]

IN_FLIGHT = 2
"""Chunks submitted ahead to each actor (the one it runs and the next)."""

START_TIMEOUT = 120.0
"""Seconds the actors may take to start (Ray schedules them, each imports torch)."""


class _RayWorker:
    """The actor: a :class:`~es_opt.evaluators._worker.WorkerState` and its step cache."""

    def __init__(self, blob: bytes, threads: int, device: str | None):
        import traceback

        self.state, self.start_error = None, None
        try:
            self.state = WorkerState(blob, threads, device)
        except Exception:
            self.start_error = traceback.format_exc()

    def where(self) -> dict[str, Any]:
        ray = importlib.import_module("ray")
        return {
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "device": None if self.state is None else str(self.state.device or "cpu"),
            "start_error": self.start_error,
        }

    def evaluate(self, step_id: int, box: list | None, indices: list[int]) -> tuple:
        # The message arrives wrapped in a list so that Ray does not fetch it for every task:
        # only the first task of a step on this actor does.
        payload = importlib.import_module("ray").get(box[0]) if box else None
        return run_task(self.state, self.start_error, step_id, payload, indices)


class RayEvaluator(Evaluator):
    """Evaluates the population on ``n_workers`` Ray actors.

    Args:
        n_workers: actors (default: ``len(devices)``, else the cluster's CPUs when joining one,
            else this machine's CPUs).
        devices: device names; actor ``k`` moves its model to ``devices[k % len(devices)]`` (and
            asks Ray for a GPU when the device is ``cuda``).
        max_retries: how many times a chunk lost with a dying actor is re-run on a fresh actor
            (default 1).
        eval_timeout: seconds allowed per evaluation; past it the actor is killed and replaced
            and the step raises :class:`~es_opt.EvaluationError`. ``None`` waits forever.
        worker_threads: torch threads per actor (default 1).
        ray_address: ``None`` starts a private Ray on 127.0.0.1 with ``n_workers`` CPUs (or uses
            the Ray this process is already connected to); ``"auto"`` or ``"host:port"`` joins
            that cluster.

    Example:
        >>> import torch, es_opt
        >>> es = es_opt.ESOptimizer(torch.nn.Linear(4, 1), objective_fn=lambda m, s: 0.0,
        ...                         n_samples=8, backend="ray", n_workers=2)  # doctest: +SKIP
    """

    def __init__(
        self,
        n_workers: int | None = None,
        devices: Any = None,
        *,
        max_retries: int = 1,
        eval_timeout: float | None = None,
        worker_threads: int = 1,
        ray_address: str | None = None,
    ):
        if ray_address is not None and (not isinstance(ray_address, str) or not ray_address):
            raise ValueError(
                f"ray_address must be 'auto', 'host:port' or None, got {ray_address!r}"
            )
        self._requested_workers = n_workers
        self.options = Options.check(
            n_workers, devices, max_retries, eval_timeout, worker_threads, default_workers=1
        )
        require("ray", "ray", "the Ray backend")
        self.ray_address = ray_address
        self._blob: bytes | None = None
        self._messages = StepMessages()
        self._actors: list[Any] = []
        self._info: list[dict[str, Any]] = []
        self._owns_ray = [False]
        self._finalizer = weakref.finalize(self, _shutdown, self._actors, self._owns_ray)
        self._closed = False

    @property
    def n_workers(self) -> int:
        return len(self._actors) if self._actors else self.options.n_workers

    def bind(self, model, objective) -> None:
        self._blob = pickle_bound(model, objective, "ray")
        super().bind(model, objective)

    def worker_info(self) -> list[dict[str, Any]]:
        """``pid``, ``node_id`` and ``device`` of each running actor."""
        return [dict(info) for info in self._info]

    # -- the generation ----------------------------------------------------------------------
    def evaluate(self, population: Population, samples: Any) -> Evaluation:
        if self._closed:
            raise RuntimeError("this RayEvaluator is closed")
        if self._blob is None:
            raise RuntimeError("RayEvaluator.evaluate called before bind(model, objective)")
        try:
            self._start()
            step = self._messages.begin(self.model, self.objective, population, samples)
            collector = self._run(step, population.n_evals)
        except BaseException as exc:
            if not isinstance(exc, (EvaluationError, ValueError, TypeError)):
                _kill_actors(self._actors)  # e.g. KeyboardInterrupt: leave no actor running
                self._info.clear()
            raise
        collector.raise_first_error()
        return collector.evaluation()

    def _run(self, step: int, n_evals: int) -> Collector:
        ray = importlib.import_module("ray")
        n_actors = len(self._actors)
        queue = ChunkQueue(n_evals, n_actors, per_worker=chunks_per_worker(self.objective))
        collector = Collector(n_evals)
        last_step = [info.get("last_step") for info in self._info]
        refs: dict[int, Any] = {}  # id(payload) -> ObjectRef, one ray.put per message per step
        # Each actor runs its tasks in submission order; up to IN_FLIGHT are submitted ahead so
        # that it never waits for this process between two chunks.
        lanes: list[list[tuple[Any, Chunk]]] = [[] for _ in range(n_actors)]
        head_deadline: list[float | None] = [None] * n_actors
        while True:
            for level in range(IN_FLIGHT):
                for slot in range(n_actors):
                    if collector.errors or len(lanes[slot]) > level:
                        continue
                    if (chunk := queue.next()) is None:
                        continue
                    box = None
                    if last_step[slot] != step:
                        payload = self._messages.payload_for(last_step[slot])
                        if id(payload) not in refs:
                            refs[id(payload)] = ray.put(payload)
                        box = [refs[id(payload)]]
                    ref = self._actors[slot].evaluate.remote(step, box, chunk.indices)
                    last_step[slot] = step
                    lanes[slot].append((ref, chunk))
                    if len(lanes[slot]) == 1:
                        head_deadline[slot] = self._deadline(chunk)
            heads = {lane[0][0]: slot for slot, lane in enumerate(lanes) if lane}
            if not heads:
                break
            deadlines = [d for slot, d in enumerate(head_deadline) if lanes[slot] and d]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            ready, _ = ray.wait(list(heads), num_returns=1, timeout=timeout)
            for ref in ready:
                slot = heads[ref]
                _, chunk = lanes[slot].pop(0)
                head_deadline[slot] = self._deadline(lanes[slot][0][1]) if lanes[slot] else None
                try:
                    reply = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    last_step[slot] = None
                    for _, waiting in lanes[slot]:  # sent, never started: not their fault
                        queue.requeue(waiting)
                    lanes[slot].clear()
                    self._replace(slot)
                    if chunk.attempt < self.options.max_retries:
                        queue.retry(chunk)
                    else:
                        collector.fail(chunk.indices[0], self._lost_error(chunk, exc))
                    continue
                except ray.exceptions.RayError as exc:
                    last_step[slot] = None
                    collector.fail(chunk.indices[0], self._lost_error(chunk, exc))
                    continue
                if reply[0] == "ok":
                    collector.add(reply[1], reply[2], reply[3])
                else:
                    last_step[slot] = None
                    collector.fail(chunk.indices[0], rebuild_error(reply))
            now = time.monotonic()
            for slot in range(n_actors):
                deadline = head_deadline[slot]
                if lanes[slot] and deadline is not None and now >= deadline:
                    chunk = lanes[slot][0][1]
                    lanes[slot].clear()  # the step fails: the chunks queued behind are moot
                    last_step[slot] = None
                    self._replace(slot)
                    collector.fail(chunk.indices[0], self._timeout_error(chunk))
        for slot, info in enumerate(self._info):
            info["last_step"] = last_step[slot]
        return collector

    def _deadline(self, chunk: Chunk) -> float | None:
        if self.options.eval_timeout is None:
            return None
        return time.monotonic() + self.options.eval_timeout * len(chunk.indices)

    def _lost_error(self, chunk: Chunk, exc: BaseException) -> EvaluationError:
        return EvaluationError(
            f"a Ray actor died while running {chunk.describe()}, and the chunk was already "
            f"retried {chunk.attempt} time(s) (max_retries={self.options.max_retries}): "
            f"{type(exc).__name__}",
            index=chunk.indices[0],
            worker_traceback=str(exc),
        )

    def _timeout_error(self, chunk: Chunk) -> EvaluationError:
        limit = self.options.eval_timeout
        assert limit is not None
        return EvaluationError(
            f"{chunk.describe()} did not finish within eval_timeout={limit} s per evaluation "
            f"({limit * len(chunk.indices):g} s for {len(chunk.indices)} evaluations); the Ray "
            "actor was killed and replaced",
            index=chunk.indices[0],
        )

    # -- actors ------------------------------------------------------------------------------
    def _start(self) -> None:
        if self._actors:
            return
        ray = importlib.import_module("ray")
        if not ray.is_initialized():
            if self.ray_address is None:
                n_local = self._requested_workers or (
                    len(self.options.devices) if self.options.devices else default_n_workers()
                )
                with _loopback_only(ray):
                    ray.init(
                        num_cpus=n_local,
                        include_dashboard=False,
                        logging_level=logging.WARNING,
                    )
            else:
                joining = _loopback_only(ray) if _is_loopback(self.ray_address) else _nothing()
                with joining:
                    ray.init(address=self.ray_address, logging_level=logging.WARNING)
            self._owns_ray[0] = True
        n_workers = self._requested_workers
        if n_workers is None:
            if self.options.devices:
                n_workers = len(self.options.devices)
            else:
                n_workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        free = _free_cpus(ray, n_workers)
        if free < n_workers:
            raise RuntimeError(
                f"Ray has {free:g} free CPU(s) for {n_workers} actor(s) (one CPU each): pass "
                f"n_workers <= {int(free)}, or close the optimizers whose actors hold the others"
            )
        self._blob_ref = ray.put(self._blob)
        self._actors.extend(self._new_actor(slot) for slot in range(n_workers))
        self._info[:] = self._await_started(self._actors)

    def _new_actor(self, slot: int) -> Any:
        ray = importlib.import_module("ray")
        device = self.options.device_of(slot)
        gpus = 1 if device is not None and device.startswith("cuda") else 0
        actor_class = ray.remote(_RayWorker)
        return actor_class.options(
            num_cpus=1, num_gpus=gpus, max_restarts=0, scheduling_strategy="SPREAD"
        ).remote(self._blob_ref, self.options.worker_threads, device)

    def _replace(self, slot: int) -> None:
        ray = importlib.import_module("ray")
        with contextlib.suppress(Exception):
            ray.kill(self._actors[slot], no_restart=True)
        self._actors[slot] = self._new_actor(slot)
        self._info[slot] = self._await_started([self._actors[slot]])[0]

    def _await_started(self, actors: list[Any]) -> list[dict[str, Any]]:
        ray = importlib.import_module("ray")
        try:
            infos = ray.get([actor.where.remote() for actor in actors], timeout=START_TIMEOUT)
        except ray.exceptions.GetTimeoutError:
            _kill_actors(self._actors)
            self._info.clear()
            raise RuntimeError(
                f"{len(actors)} Ray actor(s) did not start within {START_TIMEOUT:g} s: the "
                "cluster may lack free CPUs (or GPUs for 'cuda' devices)"
            ) from None
        self._check_started(infos)
        return infos

    def _check_started(self, infos: list[dict[str, Any]]) -> None:
        for info in infos:
            if info["start_error"] is not None:
                _kill_actors(self._actors)
                self._info.clear()
                raise EvaluationError(
                    "a Ray actor could not load the model and the objective",
                    worker_traceback=info["start_error"],
                )

    def close(self) -> None:
        """Kills the actors (and stops the Ray this evaluator started); harmless to call twice."""
        self._closed = True
        self._info.clear()
        self._finalizer()

    def __repr__(self) -> str:
        return (
            f"RayEvaluator(n_workers={self.n_workers}, ray_address={self.ray_address!r}, "
            f"devices={self.options.devices}, max_retries={self.options.max_retries}, "
            f"eval_timeout={self.options.eval_timeout})"
        )


@contextlib.contextmanager
def _loopback_only(ray: Any):
    """Makes a Ray started from here bind to 127.0.0.1 only, and lets a driver join a cluster
    that listens on 127.0.0.1.

    Ray maps 127.0.0.1 to the machine's routable address (for the node it starts, and for the
    address it joins) unless it believes clusters are disabled, the mode it uses on laptops; the
    flag is set just for the start-up (the Ray processes started meanwhile inherit the
    environment variable).
    """
    constants = importlib.import_module("ray._private.ray_constants")
    variable = constants.ENABLE_RAY_CLUSTERS_ENV_VAR
    saved_env, saved_flag = os.environ.get(variable), constants.ENABLE_RAY_CLUSTER
    os.environ[variable] = "0"
    constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = saved_env


def _free_cpus(ray: Any, wanted: int, patience: float = 15.0) -> float:
    """Free CPUs of the cluster, waiting a little for them: actors killed a moment ago (by a
    closed optimizer) release theirs only after Ray notices."""
    deadline = time.monotonic() + patience
    while (free := ray.available_resources().get("CPU", 0)) < wanted:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return free


def _is_loopback(address: str) -> bool:
    host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


@contextlib.contextmanager
def _nothing():
    yield


def _kill_actors(actors: list[Any]) -> None:
    killing, actors[:] = list(actors), []
    if not killing:
        return
    ray = importlib.import_module("ray")
    if not ray.is_initialized():  # already shut down; calling Ray now would start a new one
        return
    for actor in killing:
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)


def _shutdown(actors: list[Any], owns_ray: list[bool]) -> None:
    with contextlib.suppress(Exception):
        _kill_actors(actors)
    if owns_ray[0]:
        owns_ray[0] = False
        with contextlib.suppress(Exception):
            importlib.import_module("ray").shutdown()
