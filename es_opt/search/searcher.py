"""What the three searchers share: one run loop, one budget vocabulary, one history record, one
checkpoint (es_opt's, with its integrity check).

The loop is :meth:`Searcher.run`: step until a limit is reached, checkpoint after every step,
report every step. The limits are **totals over the whole search, resumed parts included**:

- ``max_generations``: steps (one generation: evolution's starting population, then each cycle
  of ``batch_size`` children; an ES generation of ``n_samples`` members);
- ``max_evaluations``: candidates scored (evolution: rules; ES searchers: population members,
  each one rule or one episode of edits);
- ``max_seconds``: wall-clock seconds spent in :meth:`~Searcher.run`, summed over every call
  and kept in the checkpoint.

A limit is checked before each step and a step is never cut short, so a search ends at the
first step boundary where any limit is reached. Because the limits are totals, resuming with
the same call finishes the search the interrupted call began: ``run(max_evaluations=1000)``,
killed after 600 evaluations, then :meth:`~Searcher.load` and ``run(max_evaluations=1000)`` again
scores the remaining 400, on the same trajectory as an uninterrupted run.

Every history record (one per generation) has the keys ``generation`` (0, 1, ...),
``evaluations`` (candidates scored so far, this generation included), ``rewards`` (this
generation's scores, in evaluation order), ``mean_reward``, ``max_reward`` (of those) and
``best_reward`` (the reward of :meth:`~Searcher.best` after this generation); a searcher may add
its own (evolution: ``statuses``; the family: the centre's hyperparameters).

Why not :func:`es_opt.loop.fit`: it drives :meth:`~es_opt.ESOptimizer.gradient_step` and collects
:class:`~es_opt.StepResult` objects, with a count of steps per call; regularised evolution has no
ES step, and the searchers need evaluation and time budgets that survive a resume. The two ES
searchers take each of their steps with ``ESOptimizer.gradient_step``.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._validation import check_int, check_real
from ..errors import CheckpointError
from ..result import StepResult
from ..training.checkpoint import load_state, save_state
from ._history import pack_history, unpack_history
from .program import Program

__all__ = ["Searcher", "es_record", "summary"]

_PER_CALL = {
    "budget_seconds": ("max_seconds", "seconds"),
    "generations": ("max_generations", "generation"),
}
"""Deprecated run() keywords that counted per call: the total each stands for, and the counter it
is added to."""

OnStep = Callable[[Any, dict[str, Any]], "bool | None"]


def summary(rewards: Sequence[float]) -> dict[str, Any]:
    """The shared reward keys of a record: ``rewards``, ``mean_reward``, ``max_reward``."""
    rewards = [float(r) for r in rewards]
    return {
        "rewards": rewards,
        "mean_reward": sum(rewards) / len(rewards),
        "max_reward": max(rewards),
    }


def es_record(searcher: Searcher, result: StepResult, best_reward: float) -> dict[str, Any]:
    """The shared record of an ES searcher's generation, from its
    :class:`~es_opt.StepResult` (each member's fitness is a reward)."""
    return {
        "generation": searcher.generation,
        "evaluations": searcher.evaluations + result.n_evals,
        **summary(result.fitness[:, 0].tolist()),
        "mean_reward": result.fitness_mean[0],  # torch's mean, as ES reports it
        "max_reward": result.fitness_max[0],
        "best_reward": best_reward,
    }


class Searcher:
    """Base of the searchers: subclasses implement :meth:`step`, :meth:`best`, ``_config``,
    ``_state`` and ``_load_state``; this class runs them under a budget and checkpoints them.

    Attributes:
        history: one record per generation (keys in the module docstring).
        seconds: wall-clock seconds spent in :meth:`run` over the whole search.
    """

    history: list[dict[str, Any]]
    seconds: float

    # -- what a searcher provides ----------------------------------------------------------------
    def step(self) -> dict[str, Any]:
        """One generation; appends its record to :attr:`history` and returns it."""
        raise NotImplementedError

    def best(self) -> tuple[Program, float]:
        """The best rule the search has scored, and its reward."""
        raise NotImplementedError

    def _config(self) -> dict[str, Any]:
        """The settings a checkpoint must have been written with to resume this run."""
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _upgrade(self, state: dict[str, Any]) -> dict[str, Any]:
        """A state written by an earlier es_opt, in today's layout (override to convert)."""
        return state

    def _legacy_record(self, record: dict[str, Any]) -> Any:
        """What the deprecated ``callback=`` of this searcher received for ``record``."""
        return record

    def close(self) -> None:
        """Releases the searcher's worker processes (the ES searchers' pool); a no-op here."""

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- counters ------------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        """Generations run so far (resumed ones included)."""
        return len(self.history)

    @property
    def evaluations(self) -> int:
        """Candidates scored so far (resumed ones included)."""
        return self.history[-1]["evaluations"] if self.history else 0

    # -- the loop ------------------------------------------------------------------------------
    def run(
        self,
        *,
        max_generations: int | None = None,
        max_evaluations: int | None = None,
        max_seconds: float | None = None,
        on_step: OnStep | None = None,
        checkpoint_path: str | Path | None = None,
        **deprecated: Any,
    ) -> list[dict[str, Any]]:
        """Steps until a limit is reached; each limit is a total over the whole search, resumed
        parts included (see the module docstring); give at least one.

        Args:
            max_generations: generations in all.
            max_evaluations: candidates scored in all.
            max_seconds: seconds spent in ``run`` in all (:attr:`seconds`).
            on_step: ``on_step(searcher, record)`` after each step (and its checkpoint);
                returning ``True`` ends the run there.
            checkpoint_path: write the checkpoint (:meth:`save`) here after every step.

        Deprecated spellings (each warns): ``budget_seconds=s`` counted seconds per call (now
        ``max_seconds=searcher.seconds + s``); ``generations=n`` counted generations per call
        (now ``max_generations=searcher.generation + n``); ``callback=f`` received each step's
        record in the searcher's former layout (now ``on_step``).

        Returns:
            :attr:`history`.
        """
        limits, callback = self._limits(
            {
                "max_generations": max_generations,
                "max_evaluations": max_evaluations,
                "max_seconds": max_seconds,
            },
            deprecated,
        )
        max_generations, max_evaluations, max_seconds = limits.values()
        if on_step is not None and not callable(on_step):
            raise TypeError(
                f"on_step must be a callable (searcher, record) -> bool, got {on_step!r}"
            )
        mark = time.monotonic()
        try:
            while not (
                (max_generations is not None and self.generation >= max_generations)
                or (max_evaluations is not None and self.evaluations >= max_evaluations)
                or (max_seconds is not None and self.seconds >= max_seconds)
            ):
                record = self.step()
                now = time.monotonic()
                self.seconds += now - mark
                mark = now
                if checkpoint_path is not None:
                    self.save(checkpoint_path)
                if callback is not None:
                    callback(self, self._legacy_record(record))
                if on_step is not None and on_step(self, record):
                    break
        finally:
            self.seconds += time.monotonic() - mark
        return self.history

    def _limits(
        self, limits: dict[str, Any], deprecated: dict[str, Any]
    ) -> tuple[dict[str, Any], Callable[..., Any] | None]:
        """The checked totals, with the deprecated per-call spellings converted (before anything
        warns or runs, every argument is checked)."""
        unknown = sorted(set(deprecated) - {*_PER_CALL, "callback"})
        if unknown:
            raise TypeError(f"run() got an unexpected keyword argument {unknown[0]!r}")
        for old, (new, _) in _PER_CALL.items():
            if old in deprecated and limits[new] is not None:
                raise TypeError(f"give {new} or the deprecated {old}, not both")
        callback = deprecated.get("callback")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be a callable, got {callback!r}")
        for old, (new, counter) in _PER_CALL.items():
            if old in deprecated:
                limits[new] = getattr(self, counter) + _check_limit(old, deprecated[old])
        checked = {k: None if v is None else _check_limit(k, v) for k, v in limits.items()}
        if all(v is None for v in checked.values()):
            raise ValueError("give max_generations, max_evaluations or max_seconds")
        for old, (new, _) in _PER_CALL.items():
            if old in deprecated:
                warnings.warn(
                    f"{old}= is deprecated: use {new}=, a total over the whole search including "
                    f"resumed parts ({old}= counts per call)",
                    DeprecationWarning,
                    stacklevel=3,
                )
        if callback is not None:
            warnings.warn(
                "callback= is deprecated: use on_step=, which receives (searcher, record) with "
                "the record keys every searcher shares (see es_opt.search.searcher)",
                DeprecationWarning,
                stacklevel=3,
            )
        return checked, callback

    # -- state and checkpoints -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything that shapes the rest of the search (plain values and tensors)."""
        return {
            "config": self._config(),
            "history": pack_history(self.history),  # columns: cheap to save at every step
            "seconds": float(self.seconds),
            **self._state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue a search saved by :meth:`state_dict` (written with the same configuration).

        Raises:
            ValueError: the state was saved with other settings (named with both values), or
                does not fit this searcher; the searcher is then unchanged.
        """
        state = self._upgrade(dict(state))
        config, saved = self._config(), state.get("config")
        if saved is not None and saved != config:
            differ = [
                f"{k}={saved.get(k)!r} (this run: {config.get(k)!r})"
                for k in sorted(set(config) | set(saved))
                if saved.get(k) != config.get(k)
            ]
            raise ValueError(
                f"the checkpoint was saved with other settings: {', '.join(differ)}; build the "
                f"{type(self).__name__} with the checkpoint's settings to resume it"
            )
        before = copy.deepcopy(self.state_dict())
        try:
            self._apply(state)
        except BaseException:
            self._apply(before)
            raise

    def _apply(self, state: dict[str, Any]) -> None:
        history = state["history"]  # columns, or records in earlier evolution checkpoints
        self.history = unpack_history(history) if isinstance(history, dict) else list(history)
        self.seconds = float(state.get("seconds", 0.0))
        self._load_state(state)

    def save(self, path: str | Path) -> None:
        """Writes :meth:`state_dict` to ``path`` as an es_opt checkpoint: atomically, with a
        SHA-256 digest, loadable with ``torch.load(weights_only=True)``
        (:func:`es_opt.training.save_state`)."""
        save_state(path, self.state_dict(), kind=self._kind())

    def load(self, path: str | Path) -> None:
        """Resumes from a checkpoint written by :meth:`save`, verified before anything is read.

        Raises:
            FileNotFoundError: there is no file at ``path``.
            CheckpointError: the file is corrupted, truncated, not a checkpoint of this kind of
                searcher, or written with other settings (the message names the file); the
                searcher is then unchanged.
        """
        self._load_checked(Path(path), load_state(path, kind=self._kind()))

    def _load_checked(self, path: Path, state: dict[str, Any]) -> None:
        try:
            self.load_state_dict(state)
        except (ValueError, TypeError, KeyError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(
                path, f"it does not fit this {type(self).__name__}: {exc}"
            ) from None

    def _kind(self) -> str:
        return f"es_opt.search.{type(self).__name__}"


def _check_limit(name: str, value: Any) -> int | float:
    if name.endswith("seconds"):
        return check_real(name, value, low=0)
    return check_int(name, value, low=0)
