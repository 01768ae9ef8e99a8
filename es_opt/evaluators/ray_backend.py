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
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import EvaluationError, require
from ._options import Options, default_n_workers
from ._parallel import ParallelEvaluator
from ._scheduler import Lost, Reply, Stopped
from ._worker import Progress, WorkerState, run_task

__all__ = ["RayEvaluator"]

START_TIMEOUT = 120.0
"""Seconds the actors may take to start (Ray schedules them, each imports torch)."""

WORKER_NICENESS = 0
"""The niceness of the actors of a Ray started here. Ray's default, 15, leaves them a small share
of the CPU beside any process at normal priority, so a busy machine starves the evaluation (actors
that start in 12 s took 248 s beside two CPU-bound loops on 2 cores); the process pool's workers
run at normal priority too. A cluster joined with ``ray_address`` keeps its own setting."""

TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"
"""Where Ray logs, at every start of a local cluster, that token authentication is on."""


class _RayWorker:
    """The actor: a :class:`~es_opt.evaluators._worker.WorkerState` and its step cache."""

    def __init__(self, blob: bytes, threads: int, device: str | None):
        import traceback

        self.state, self.start_error = None, None
        self.progress = Progress()
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
        return run_task(self.state, self.start_error, step_id, payload, indices, self.progress)


class RayEvaluator(ParallelEvaluator):
    """Evaluates the population on ``n_workers`` Ray actors.

    Args:
        n_workers: actors (default: ``len(devices)``, else the cluster's CPUs when joining one,
            else this machine's CPUs).
        devices: device names; actor ``k`` moves its model to ``devices[k % len(devices)]`` (and
            asks Ray for a GPU when the device is ``cuda``).
        max_retries: how many times an evaluation whose actor died while running it is re-run on
            a fresh actor (default 1).
        eval_timeout: seconds allowed per evaluation; past it the actor is killed and replaced
            and the step raises :class:`~es_opt.EvaluationError`. ``None`` waits forever.
        worker_threads: torch threads per actor (default 1).
        sync: ``"center"`` (default): each step sends the new centre to every actor;
            ``"replay"``: each actor recomputes it from the previous step's fitness with its own
            replica of the inner optimizer and checks it against the centre's digest, so only
            scalars travel (see :mod:`es_opt.evaluators._replay`).
        ray_address: ``None`` starts a private Ray on 127.0.0.1 with ``n_workers`` CPUs (or uses
            the Ray this process is already connected to); ``"auto"`` or ``"host:port"`` joins
            that cluster.

    Example:
        >>> import torch, es_opt
        >>> es = es_opt.ESOptimizer(torch.nn.Linear(4, 1), objective_fn=lambda m, s: 0.0,
        ...                         n_samples=8, backend="ray", n_workers=2)  # doctest: +SKIP
    """

    backend = "ray"

    def __init__(
        self,
        n_workers: int | None = None,
        devices: Any = None,
        *,
        max_retries: int = 1,
        eval_timeout: float | None = None,
        worker_threads: int = 1,
        sync: str = "center",
        ray_address: str | None = None,
    ):
        if ray_address is not None and (not isinstance(ray_address, str) or not ray_address):
            raise ValueError(
                f"ray_address must be 'auto', 'host:port' or None, got {ray_address!r}"
            )
        self._requested_workers = n_workers
        super().__init__(
            Options.check(
                n_workers,
                devices,
                max_retries,
                eval_timeout,
                worker_threads,
                default_workers=1,
                sync=sync,
            )
        )
        require("ray", "ray", "the Ray backend")
        self.ray_address = ray_address
        self._actors: list[Any] = []
        self._info: list[dict[str, Any]] = []
        self._owns_ray = [False]
        self._finalizer = weakref.finalize(self, _shutdown, self._actors, self._owns_ray)

    @property
    def n_workers(self) -> int:
        return len(self._actors) if self._actors else self.options.n_workers

    def worker_info(self) -> list[dict[str, Any]]:
        """``pid``, ``node_id`` and ``device`` of each running actor."""
        return [dict(info) for info in self._info]

    def _running(self) -> bool:
        return bool(self._actors)

    def _abandon(self) -> None:
        _kill_actors(self._actors)  # e.g. KeyboardInterrupt: leave no actor running
        self._info.clear()

    # -- actors ------------------------------------------------------------------------------
    def _start(self) -> _Actors:
        ray = importlib.import_module("ray")
        if not ray.is_initialized():
            if self.ray_address is None:
                n_local = self._requested_workers or (
                    len(self.options.devices) if self.options.devices else default_n_workers()
                )
                with _loopback_only(ray), _quiet_token_notice():
                    # "local": a private instance even when another cluster runs on this machine
                    # (without it, ray.init joins a `ray start` cluster it finds, and refuses
                    # num_cpus for it)
                    ray.init(
                        address="local",
                        num_cpus=n_local,
                        include_dashboard=False,
                        logging_level=logging.WARNING,
                        _system_config={"worker_niceness": WORKER_NICENESS},
                    )
            else:
                joining = _loopback_only(ray) if _is_loopback(self.ray_address) else _nothing()
                with joining, _quiet_token_notice():
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
        actors = _Actors(self._actors, self._info, self.options, ray.put(self._blob))
        actors.start(n_workers)
        return actors

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


class _Actors:
    """The Ray transport: one actor per slot, each running its tasks in submission order."""

    def __init__(self, actors: list[Any], info: list[dict[str, Any]], options: Options, blob: Any):
        self.ray = importlib.import_module("ray")
        self.actors = actors
        self.info = info
        self.options = options
        self.n_workers = 0
        self._blob_ref = blob
        self._tasks: list[list[Any]] = []  # per slot, the pending tasks' ObjectRefs, in order
        self._failures: dict[int, BaseException] = {}
        self._step: int | None = None
        self._puts: dict[int, Any] = {}  # id(payload) -> ObjectRef: one ray.put per message

    def start(self, n_workers: int) -> None:
        self.n_workers = n_workers
        self._tasks = [[] for _ in range(n_workers)]
        self.actors.extend(self._new_actor(slot) for slot in range(n_workers))
        self.info[:] = self._await_started(self.actors)

    # -- the transport -------------------------------------------------------------------------
    def send(self, slot: int, step: int, payload: bytes | None, indices: list[int]) -> None:
        if step != self._step:
            self._step, self._puts = step, {}
        box = None
        if payload is not None:
            if id(payload) not in self._puts:
                self._puts[id(payload)] = self.ray.put(payload)
            box = [self._puts[id(payload)]]
        self._tasks[slot].append(self.actors[slot].evaluate.remote(step, box, indices))

    def wait(self, slots: Sequence[int], timeout: float | None) -> list[Reply | Lost]:
        heads = {self._tasks[slot][0]: slot for slot in slots}
        ready, _ = self.ray.wait(list(heads), num_returns=1, timeout=timeout)
        events: list[Reply | Lost] = []
        for ref in ready:
            slot = heads[ref]
            self._tasks[slot].pop(0)
            try:
                events.append(Reply(slot, self.ray.get(ref)))
            except self.ray.exceptions.RayError as exc:  # the actor died, or Ray lost the task
                self._failures[slot] = exc
                events.append(Lost(slot))
        return events

    def replace(self, slot: int) -> Stopped:
        failure = self._failures.pop(slot, None)
        pid = self.info[slot].get("pid") if slot < len(self.info) else None
        with contextlib.suppress(Exception):
            self.ray.kill(self.actors[slot], no_restart=True)
        self._tasks[slot].clear()
        self.actors[slot] = self._new_actor(slot)
        self.info[slot] = self._await_started([self.actors[slot]])[0]
        how = "was stopped" if failure is None else f"died ({type(failure).__name__}; pid {pid})"
        detail = "" if failure is None else str(failure)
        # An actor's memory is gone with it: which evaluation it was on is not known here.
        return Stopped("the Ray actor", how, None, detail)

    # -- actors --------------------------------------------------------------------------------
    def _new_actor(self, slot: int) -> Any:
        device = self.options.device_of(slot)
        gpus = 1 if device is not None and device.startswith("cuda") else 0
        actor_class = self.ray.remote(_RayWorker)
        return actor_class.options(
            num_cpus=1, num_gpus=gpus, max_restarts=0, scheduling_strategy="SPREAD"
        ).remote(self._blob_ref, self.options.worker_threads, device)

    def _await_started(self, actors: list[Any]) -> list[dict[str, Any]]:
        ray = self.ray
        count = len(actors)  # before _give_up empties the list (``actors`` may be ``self.actors``)
        try:
            infos = ray.get([actor.where.remote() for actor in actors], timeout=START_TIMEOUT)
        except ray.exceptions.GetTimeoutError:
            self._give_up()
            raise RuntimeError(
                f"{count} Ray actor(s) did not start within {START_TIMEOUT:g} s: the "
                "cluster may lack free CPUs (or GPUs for 'cuda' devices)"
            ) from None
        for info in infos:
            if info["start_error"] is not None:
                self._give_up()
                raise EvaluationError(
                    "a Ray actor could not load the model and the objective",
                    worker_traceback=info["start_error"],
                )
        return infos

    def _give_up(self) -> None:
        _kill_actors(self.actors)
        self.info.clear()


@contextlib.contextmanager
def _quiet_token_notice() -> Iterator[None]:
    """Keeps Ray's token-authentication notice out of the user's output while Ray starts or is
    joined. It changes nothing else: Ray's own default stands (token authentication on, with the
    token Ray keeps in ``~/.ray/auth_token``), and ``RAY_AUTH_MODE`` still decides."""
    logger = logging.getLogger(TOKEN_NOTICE_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


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
