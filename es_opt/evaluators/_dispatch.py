"""The main-process side shared by the parallel backends: option checks, device assignment, the
per-step messages, chunking of the population, and collecting the results in evaluation order."""

from __future__ import annotations

import math
import numbers
import os
import pickle
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dill
import torch

from ..errors import EvaluationError
from ..population import Population
from ..vectorized import is_vectorized
from .base import Evaluation, stack_rows

__all__ = [
    "Options",
    "StepMessages",
    "ChunkQueue",
    "Collector",
    "assign_devices",
    "pickle_bound",
    "rebuild_error",
]


# -- options ----------------------------------------------------------------------------------
def _check_int(name: str, value: Any, low: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int >= {low}, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value}")
    return int(value)


def default_n_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Options:
    """The options every parallel backend accepts, checked before anything starts."""

    n_workers: int
    devices: tuple[str, ...] | None
    max_retries: int
    eval_timeout: float | None
    worker_threads: int

    @classmethod
    def check(
        cls,
        n_workers: Any,
        devices: Any,
        max_retries: Any,
        eval_timeout: Any,
        worker_threads: Any,
        default_workers: int | None = None,
    ) -> Options:
        checked_devices = _check_devices(devices)
        if n_workers is None:
            if checked_devices is not None:
                n_workers = len(checked_devices)
            else:
                n_workers = default_workers if default_workers is not None else default_n_workers()
        n_workers = _check_int("n_workers", n_workers, 1)
        max_retries = _check_int("max_retries", max_retries, 0)
        worker_threads = _check_int("worker_threads", worker_threads, 1)
        if eval_timeout is not None:
            if not isinstance(eval_timeout, numbers.Real) or isinstance(eval_timeout, bool):
                raise TypeError(
                    f"eval_timeout must be a number of seconds > 0 or None, got "
                    f"{type(eval_timeout).__name__} {eval_timeout!r}"
                )
            if not math.isfinite(eval_timeout) or eval_timeout <= 0:
                raise ValueError(
                    f"eval_timeout must be a number of seconds > 0 or None, got {eval_timeout}"
                )
            eval_timeout = float(eval_timeout)
        return cls(n_workers, checked_devices, max_retries, eval_timeout, worker_threads)

    def device_of(self, worker: int) -> str | None:
        return assign_devices(self.devices, worker + 1)[worker] if self.devices else None


def _check_devices(devices: Any) -> tuple[str, ...] | None:
    if devices is None:
        return None
    if isinstance(devices, (str, torch.device)):
        devices = [devices]
    if not isinstance(devices, Sequence) or not devices:
        raise ValueError(f"devices must be a non-empty list of device names, got {devices!r}")
    checked = []
    for device in devices:
        if not isinstance(device, (str, torch.device)):
            raise TypeError(
                f"devices must hold device names such as 'cpu' or 'cuda:0', got "
                f"{type(device).__name__} {device!r}"
            )
        try:
            parsed = torch.device(device)
        except RuntimeError:
            raise ValueError(
                f"unknown device {device!r} in devices: use names such as 'cpu' or 'cuda:0'"
            ) from None
        if parsed.type == "cuda":
            count = torch.cuda.device_count()
            if (parsed.index or 0) >= count:
                raise ValueError(
                    f"device {device!r} in devices is not available: this machine has "
                    f"{count} CUDA device(s)"
                )
        elif parsed.type != "cpu" and not _backend_available(parsed.type):
            raise ValueError(f"device {device!r} in devices is not available on this machine")
        checked.append(str(parsed))
    return tuple(checked)


def _backend_available(kind: str) -> bool:
    module = getattr(torch, kind, None)
    is_available = getattr(module, "is_available", None)
    return bool(is_available()) if callable(is_available) else False


def assign_devices(devices: Sequence[str] | None, n_workers: int) -> list[str | None]:
    """Worker ``k`` runs on ``devices[k % len(devices)]`` (round-robin), or where the model is.

    Example:
        >>> assign_devices(["cuda:0", "cuda:1"], 3)
        ['cuda:0', 'cuda:1', 'cuda:0']
    """
    if not devices:
        return [None] * n_workers
    return [devices[k % len(devices)] for k in range(n_workers)]


def pickle_bound(model: Any, objective: Any, backend: str) -> bytes:
    """``dill.dumps((model, objective))``, or a TypeError that says what to change."""
    try:
        return dill.dumps((model, objective), recurse=True)
    except Exception as exc:
        raise TypeError(
            f"the model and the objective must be picklable (with dill) to run on the {backend!r} "
            f"backend: {type(exc).__name__}: {exc}. Keep open files, locks, generators and "
            "environments out of the objective's attributes, or create them lazily in __call__"
        ) from exc


# -- per-step messages ------------------------------------------------------------------------
def _state_tensors(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    tensors = {name: p.detach() for name, p in net.named_parameters()}
    tensors.update({name: b.detach() for name, b in net.named_buffers()})
    return tensors


class StepMessages:
    """Builds each step's message, pickled once and sent to every worker that needs it.

    A worker that saw the previous step gets the center of the selected parameters plus the other
    parameters and buffers that changed since then (a *delta*); any other worker (new, replaced,
    or one whose last task failed) gets the full state.
    """

    def __init__(self) -> None:
        self.step_id = 0
        self._snapshot: dict[str, torch.Tensor] | None = None
        self._head: dict[str, Any] = {}
        self._delta: bytes | None = None
        self._full: bytes | None = None
        self._net: torch.nn.Module | None = None

    def begin(self, model: Any, objective: Any, population: Population, samples: Any) -> int:
        self.step_id += 1
        net = self._net = model.net
        current = _state_tensors(net)
        selected = set(population.names)
        first = self._snapshot is None
        snapshot = self._snapshot if self._snapshot is not None else {}
        changed = {}
        for name, value in current.items():
            old = snapshot.get(name)
            if name in selected:
                continue
            if old is None or old.shape != value.shape or not torch.equal(old, value.cpu()):
                changed[name] = value.cpu().clone()
        generation_state = (
            objective.generation_state() if hasattr(objective, "generation_state") else None
        )
        self._head = {
            "generation": population.generation,
            "seed": population.seed,
            "sigma": population.sigma,
            "n_evals": population.n_evals,
            "names": population.names,
            "shapes": population.shapes,
            "center": population.center.detach().cpu(),
            "generation_state": generation_state,
            "samples": samples,
        }
        base = None if first else self.step_id - 1
        self._delta = _dumps({**self._head, "tensors": changed, "base": base})
        self._full = self._delta if first else None
        for name in selected:
            snapshot[name] = current[name].cpu().clone()
        snapshot.update(changed)
        self._snapshot = snapshot
        return self.step_id

    def payload_for(self, last_step: int | None) -> bytes:
        """The message for a worker whose last completed step is ``last_step``."""
        if last_step is not None and last_step == self.step_id - 1:
            assert self._delta is not None
            return self._delta
        if self._full is None:
            assert self._net is not None
            selected = set(self._head["names"])
            tensors = {
                name: value.cpu()
                for name, value in _state_tensors(self._net).items()
                if name not in selected
            }
            self._full = _dumps({**self._head, "tensors": tensors, "base": None})
        return self._full

    @property
    def payload_bytes(self) -> int:
        """Size of this step's delta message (what a worker receives in a steady run)."""
        return len(self._delta or b"")


def _dumps(message: dict[str, Any]) -> bytes:
    """Packs a step message: the tensors with the standard pickle (four times faster than dill on
    a 1M-parameter center), the rest (samples, generation state) with dill."""
    tensors = {"center": message.pop("center"), "tensors": message.pop("tensors")}
    try:
        rest = dill.dumps(message, recurse=True)
    except Exception as exc:
        raise TypeError(
            "the samples and the objective's generation_state() must be picklable (with dill) to "
            f"reach the workers: {type(exc).__name__}: {exc}"
        ) from exc
    packed = pickle.dumps(tensors, protocol=pickle.HIGHEST_PROTOCOL)
    return struct.pack("<Q", len(packed)) + packed + rest


def loads_step(payload: bytes) -> dict[str, Any]:
    """Unpacks what :func:`_dumps` packed."""
    (size,) = struct.unpack_from("<Q", payload)
    view = memoryview(payload)
    message = dill.loads(view[8 + size :])
    message.update(pickle.loads(view[8 : 8 + size]))
    return message


# -- chunks -----------------------------------------------------------------------------------
@dataclass
class Chunk:
    indices: list[int]
    attempt: int = 0

    def describe(self) -> str:
        first, last = self.indices[0], self.indices[-1]
        return f"evaluation {first}" if first == last else f"evaluations {first}..{last}"


def chunks_per_worker(objective: Any) -> int:
    """How finely :class:`ChunkQueue` cuts a generation: a vectorised objective evaluates a chunk
    as one batched call, so it gets one large chunk per worker first (then smaller ones to
    balance the end); a one-at-a-time objective gets two per worker."""
    return 1 if is_vectorized(objective) else 2


class ChunkQueue:
    """Hands out antithetic pairs in chunks of decreasing size (guided scheduling): large chunks
    first to keep messages few, then smaller ones so that every worker stays busy until the end
    of the generation. Which worker runs which chunk never changes a result."""

    def __init__(self, n_evals: int, n_workers: int, per_worker: int = 2):
        self._next_pair = 0
        self._n_pairs = n_evals // 2
        self._n_evals = n_evals
        self._divisor = max(1, per_worker * n_workers)
        self._retry: deque[Chunk] = deque()

    def next(self) -> Chunk | None:
        if self._retry:
            return self._retry.popleft()
        remaining = self._n_pairs - self._next_pair
        if remaining <= 0:
            return None
        size = max(1, math.ceil(remaining / self._divisor))
        start = self._next_pair
        self._next_pair += size
        end = min(2 * self._next_pair, self._n_evals)
        return Chunk(list(range(2 * start, end)))

    def retry(self, chunk: Chunk) -> None:
        """Hands ``chunk`` out again (first), counting one more attempt."""
        self._retry.append(Chunk(chunk.indices, chunk.attempt + 1))

    def requeue(self, chunk: Chunk) -> None:
        """Hands ``chunk`` out again (first) as it is: it was sent but never started."""
        self._retry.append(chunk)


# -- results ----------------------------------------------------------------------------------
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

    def raise_first_error(self) -> None:
        """Raises the error of the lowest evaluation index, so that the same failure is reported
        whatever the number of workers."""
        if self.errors:
            self.errors.sort(key=lambda pair: pair[0])
            raise self.errors[0][1]

    def evaluation(self) -> Evaluation:
        rows = [torch.tensor(self.rows[i], dtype=torch.float64) for i in range(self.n_evals)]
        return Evaluation(stack_rows(rows), [self.stats[i] for i in range(self.n_evals)])


def rebuild_error(reply: tuple) -> BaseException:
    """The exception a worker reported. Errors from the objective arrive as EvaluationError, and
    unusable return values as the ValueError/TypeError the serial evaluator raises; anything else
    is wrapped in an EvaluationError carrying the worker's traceback."""
    _, indices, pickled, summary, text = reply
    error = None
    if pickled is not None:
        try:
            error = dill.loads(pickled)
        except Exception:
            error = None
    if isinstance(error, (EvaluationError, ValueError, TypeError)):
        return error
    return EvaluationError(
        f"a worker failed on evaluations {indices[0]}..{indices[-1]}: {summary}",
        index=indices[0],
        worker_traceback=text,
    )
