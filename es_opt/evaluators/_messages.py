"""The wire format between the main process and the parallel workers (pool processes or Ray
actors), the same for both backends:

- once, at start: :func:`pickle_bound`, ``dill.dumps((model, objective))``;
- once per step and worker: a step message (:class:`StepMessages`) with the generation, seed, σ,
  the center of the selected parameters, the other tensors that changed since the worker's
  previous step (all of them the first time), the objective's generation state and the samples;
  with ``sync="replay"`` a worker that saw the previous step gets, instead of the center, what
  recomputes it (:mod:`es_opt.evaluators._replay`), and a full message also carries the inner
  optimizer's state;
- per task: a list of evaluation indices;
- per task, back: ``("ok", indices, rows, stats)`` with one fitness row (a list of floats) and
  one stats entry per index, ``("resync", indices)`` from a worker whose replayed center does not
  match (it gets the full state and the task again), or ``("error", indices, pickled_exception,
  summary, traceback_text, index)`` where ``index`` is the evaluation that failed (``None`` when
  unknown).

Only seeds, scalars and tensors of the net cross: each worker rebuilds the perturbations itself.
Classes and functions defined in ``__main__`` travel by value (dill), so a worker never needs the
user's script.
"""

from __future__ import annotations

import pickle
import struct
import sys
from typing import Any

import dill
import torch

from ..errors import EvaluationError
from ..population import Population
from ._replay import replay_message, replayable, update_record

__all__ = [
    "StepMessages",
    "error_reply",
    "failed_index",
    "loads_step",
    "pickle_bound",
    "rebuild_error",
]


def keep_bases_of_main_classes() -> None:
    """Lets the classes of ``__main__`` travel by value with their real base classes.

    dill rebuilds a class of ``__main__`` from the ``__orig_bases__`` it *inherits* when it has
    none of its own: a subclass of a ``Generic`` (``torch.utils.data.Dataset``, ``gymnasium.Env``,
    ...) would arrive in a worker as a subclass of ``Generic[...]`` only, and ``isinstance`` checks
    there would fail. Each such class gets its own ``__orig_bases__`` equal to its ``__bases__``
    (what ``types.get_original_bases`` already reports for it), which dill rebuilds correctly.
    """
    main = sys.modules.get("__main__")
    for value in list(vars(main).values()) if main is not None else ():
        if (
            isinstance(value, type)
            and value.__module__ == "__main__"
            and "__orig_bases__" not in value.__dict__
            and hasattr(value, "__orig_bases__")
        ):
            value.__orig_bases__ = value.__bases__


def pickle_bound(model: Any, objective: Any, backend: str, optimizer: Any = None) -> bytes:
    """``dill.dumps((model, objective))`` (with ``optimizer``, a replica for ``sync="replay"``,
    pickled in the same call so that its parameter groups hold the copy's own parameters), or a
    TypeError that says what to change."""
    keep_bases_of_main_classes()
    bound = (model, objective) if optimizer is None else (model, objective, optimizer)
    try:
        return dill.dumps(bound, recurse=True)
    except Exception as exc:
        what = (
            "the model and the objective"
            if optimizer is None
            else ("the model, the objective and the inner optimizer (sync='replay')")
        )
        raise TypeError(
            f"{what} must be picklable (with dill) to run on the {backend!r} "
            f"backend: {type(exc).__name__}: {exc}. Keep open files, locks, generators and "
            "environments out of the objective's attributes, or create them lazily in __call__"
        ) from exc


# -- the step message -------------------------------------------------------------------------
def _state_tensors(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    tensors = {name: p.detach() for name, p in net.named_parameters()}
    tensors.update({name: b.detach() for name, b in net.named_buffers()})
    return tensors


class StepMessages:
    """Builds each step's message, pickled once and sent to every worker that needs it.

    A worker that saw the previous step gets the center of the selected parameters plus the other
    parameters and buffers that changed since then (a *delta*); any other worker (new, replaced,
    or one whose last task failed) gets the full state. With a replica of the inner optimizer in
    the workers (``optimizer`` set: ``sync="replay"``), the delta carries, in place of the
    center, the previous update's fitness and the new center's digest whenever exactly one update
    (:meth:`record`) followed the previous step.
    """

    def __init__(self) -> None:
        self.step_id = 0
        self.optimizer: Any = None
        self._snapshot: dict[str, torch.Tensor] | None = None
        self._head: dict[str, Any] = {}
        self._center: torch.Tensor | None = None
        self._record: dict[str, Any] | None = None
        self._updates_since_begin = 0
        self._replays = False  # this step's delta replaces the center by a replayed update
        self._delta: bytes | None = None
        self._full: bytes | None = None
        self._net: torch.nn.Module | None = None

    def record(self, population: Population, fitness: torch.Tensor, rule: Any) -> None:
        """Notes the update the main process just applied (what a replaying worker needs)."""
        self._updates_since_begin += 1
        self._record = None
        if (
            self.optimizer is None
            or self._updates_since_begin != 1
            or not replayable(population, self._head.get("population"))
        ):
            return  # not the population the workers hold: the next step sends the center
        self._record = update_record(self.step_id, population, fitness, rule, self.optimizer)

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
            # seeds, σ and the distribution's state (PGPE's σ, CMA's factors), never noise
            "population": population.without_center(),
            "generation_state": generation_state,
            "samples": samples,
        }
        self._center = population.center.detach().cpu()
        replay = None
        record, self._record, self._updates_since_begin = self._record, None, 0
        if record is not None and not first and record["step"] == self.step_id - 1:
            replay = replay_message(record, self._center)
        self._replays = replay is not None
        if first:  # every worker gets the full state
            self._delta = self._full = self._full_message(changed)
        else:
            center = None if replay is not None else self._center
            self._delta = _dumps(
                {
                    **self._head,
                    "center": center,
                    "replay": replay,
                    "tensors": changed,
                    "base": self.step_id - 1,
                }
            )
            self._full = None
        for name in selected:
            snapshot[name] = current[name].cpu().clone()
        snapshot.update(changed)
        self._snapshot = snapshot
        return self.step_id

    def _gets_delta(self, last_step: int | None) -> bool:
        return last_step is not None and last_step == self.step_id - 1

    def replays_for(self, last_step: int | None) -> bool:
        """Whether :meth:`payload_for` ``last_step`` is a replayed update (no center)."""
        return self._replays and self._gets_delta(last_step)

    def payload_for(self, last_step: int | None) -> bytes:
        """The message for a worker whose last completed step is ``last_step``."""
        if self._gets_delta(last_step):
            assert self._delta is not None
            return self._delta
        if self._full is None:
            assert self._net is not None
            selected = set(self._head["population"].names)
            tensors = {
                name: value.cpu()
                for name, value in _state_tensors(self._net).items()
                if name not in selected
            }
            self._full = self._full_message(tensors)
        return self._full

    def _full_message(self, tensors: dict[str, torch.Tensor]) -> bytes:
        state = None if self.optimizer is None else self.optimizer.state_dict()
        return _dumps(
            {
                **self._head,
                "center": self._center,
                "replay": None,
                "tensors": tensors,
                "base": None,
                "optimizer_state": state,
            }
        )

    @property
    def payload_bytes(self) -> int:
        """Size of this step's delta message (what a worker receives in a steady run)."""
        return len(self._delta or b"")


def _dumps(message: dict[str, Any]) -> bytes:
    """Packs a step message: the tensors with the standard pickle (four times faster than dill on
    a 1M-parameter center), the rest (samples, generation state) with dill."""
    tensors = {key: message.pop(key, None) for key in ("center", "tensors", "optimizer_state")}
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


# -- replies ------------------------------------------------------------------------------------
def error_reply(indices: list[int], exc: BaseException, text: str, index: int | None) -> tuple:
    """The reply for a task that failed at evaluation ``index`` (``None``: before any)."""
    try:
        pickled = dill.dumps(exc)
        dill.loads(pickled)
    except Exception:  # an exception that does not survive pickling travels as text
        pickled = None
    return ("error", indices, pickled, f"{type(exc).__name__}: {exc}", text, index)


def failed_index(reply: tuple, error: BaseException) -> int:
    """The evaluation an error reply is about: the error's own index, else the one the worker
    was on, else the task's first."""
    index = getattr(error, "index", None)
    if index is None:
        index = reply[5]
    return reply[1][0] if index is None else index


def rebuild_error(reply: tuple) -> BaseException:
    """The exception a worker reported. Errors from the objective arrive as EvaluationError, and
    unusable return values as the ValueError/TypeError the serial evaluator raises; anything else
    is wrapped in an EvaluationError carrying the worker's traceback."""
    _, indices, pickled, summary, text, index = reply
    error = None
    if pickled is not None:
        try:
            error = dill.loads(pickled)
        except Exception:
            error = None
    if isinstance(error, (EvaluationError, ValueError, TypeError)):
        return error
    where = f"evaluations {indices[0]}..{indices[-1]}" if index is None else f"evaluation {index}"
    return EvaluationError(
        f"a worker failed on {where}: {summary}",
        index=indices[0] if index is None else index,
        worker_traceback=text,
    )
