"""Regularised evolution over rule programs (Real et al. 2019, "Regularized Evolution for Image
Classifier Architecture Search"; the baseline of Lion's search, Chen et al. 2023).

Each cycle: draw ``sample_size`` members of the population uniformly, mutate the best of them
(:func:`~es_opt.search.mutation.mutate`), evaluate the child, add it and remove the *oldest*
member. A batch of children is drawn before any of them is evaluated, so the trajectory depends
on the seed and ``batch_size`` only, not on how many workers evaluate the batch.

A child whose canonical form (:func:`~es_opt.search.canonical.canonical_hash`: dead code,
renaming and argument order do not count) was already drawn in the run is redrawn, up to
``novelty_tries`` times. Most single edits of a short rule touch dead code or reproduce a rule
seen before; without the redraw a long run spends most of its cycles re-scoring the same few
rules from the cache (a 30-minute search from random programs: 98.7 % cache hits).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError
from .canonical import canonical_hash
from .evaluate import RuleResult
from .mutation import check_state_recurrence, mutate, random_program
from .program import Program, format_program, parse_program
from .searcher import Searcher, summary

__all__ = ["RegularizedEvolution"]

EvaluateFn = Callable[[Sequence[Program]], list[RuleResult]]

CONFIG_KEYS = (
    "population_size",
    "sample_size",
    "batch_size",
    "seed",
    "novelty_tries",
    "rewire",
    "state_recurrence",
)
"""The settings a checkpoint records (a mapping; checkpoints written before it held them as a
list in this order, of five entries before ``rewire`` and ``state_recurrence`` existed)."""


class RegularizedEvolution(Searcher):
    """Regularised evolution, seeded and resumable.

    One generation is the starting population (the first), then each cycle of ``batch_size``
    children; :meth:`~es_opt.search.searcher.Searcher.run` takes the budget (totals over the
    whole search, resumed parts included), and each history record adds ``statuses`` (each
    child's :class:`~es_opt.search.evaluate.RuleResult` status) to the shared keys.

    Args:
        evaluate: scores a batch of programs (e.g. :class:`~es_opt.search.parallel.Evaluations`).
        population_size: members kept.
        sample_size: members drawn per tournament.
        batch_size: children drawn per cycle (evaluate them in parallel).
        seed: seed of every draw.
        start: programs to start from; the population is filled with mutants of them. ``None``
            starts from random programs of ``n_statements`` statements.
        n_statements: size of the random starting programs.
        novelty_tries: redraws of a child whose canonical form was already drawn in this run
            (0 keeps every first draw, duplicates included).
        rewire: also mutate by redrawing one argument of a statement (see
            :func:`~es_opt.search.mutation.mutate`).
        state_recurrence: chance that a drawn statement writing a state reads it first (see
            :func:`~es_opt.search.mutation.random_statement`), in random starts and mutations.

    Example:
        >>> from es_opt.search.evaluate import RuleResult
        >>> def length_reward(programs):  # a stand-in: shorter rules score higher
        ...     return [RuleResult(-len(p.statements), "ok") for p in programs]
        >>> evolution = RegularizedEvolution(length_reward, population_size=8, seed=0)
        >>> history = evolution.run(max_evaluations=60)
        >>> evolution.evaluations, evolution.generation, evolution.best()[1] >= -2
        (60, 27, True)
    """

    def __init__(
        self,
        evaluate: EvaluateFn,
        *,
        population_size: int = 20,
        sample_size: int = 5,
        batch_size: int = 2,
        seed: int = 0,
        start: Sequence[Program] | None = None,
        n_statements: int = 6,
        novelty_tries: int = 20,
        rewire: bool = False,
        state_recurrence: float = 0.0,
    ) -> None:
        for name, value in (("population_size", population_size), ("batch_size", batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if (
            isinstance(novelty_tries, bool)
            or not isinstance(novelty_tries, int)
            or novelty_tries < 0
        ):
            raise ValueError(f"novelty_tries must be an int >= 0, got {novelty_tries!r}")
        if not isinstance(sample_size, int) or not 1 <= sample_size <= population_size:
            raise ValueError(f"sample_size must be in [1, population_size], got {sample_size!r}")
        if not isinstance(rewire, bool):
            raise TypeError(f"rewire must be a bool, got {rewire!r}")
        check_state_recurrence(state_recurrence)
        self.evaluate = evaluate
        self.population_size = population_size
        self.sample_size = sample_size
        self.batch_size = batch_size
        self.seed = seed
        self.start = list(start) if start is not None else None
        self.n_statements = n_statements
        self.novelty_tries = novelty_tries
        self.rewire = rewire
        self.state_recurrence = state_recurrence
        self.seen: set[str] = set()  # canonical hashes of every program drawn
        self.rng = np.random.default_rng(seed)
        self.population: list[tuple[Program, float]] = []
        self.history: list[dict[str, Any]] = []
        self.seconds = 0.0
        self._best: tuple[Program, float] | None = None

    def _record(self, programs: Sequence[Program], results: list[RuleResult]) -> dict[str, Any]:
        rewards, statuses = [], []
        for program, result in zip(programs, results, strict=True):
            reward = result.reward if math.isfinite(result.reward) else -math.inf
            self.population.append((program, reward))
            if self._best is None or reward > self._best[1]:
                self._best = (program, reward)
            rewards.append(reward)
            statuses.append(result.status)
        record = {
            "generation": self.generation,
            "evaluations": self.evaluations + len(rewards),
            **summary(rewards),
            "best_reward": self._best[1],
            "statuses": statuses,
        }
        self.history.append(record)
        return record

    def initialize(self) -> dict[str, Any]:
        """Draw and evaluate the first population (done by :meth:`step` if not called); returns
        its record (generation 0)."""
        if self.start is None:
            programs = [
                random_program(self.rng, self.n_statements, state_recurrence=self.state_recurrence)
                for _ in range(self.population_size)
            ]
        else:
            programs = list(self.start)
            while len(programs) < self.population_size:
                programs.append(self._mutate(self.start[len(programs) % len(self.start)]))
            programs = programs[: self.population_size]
        self.seen.update(canonical_hash(p) for p in programs)
        return self._record(programs, self.evaluate(programs))

    def _mutate(self, parent: Program) -> Program:
        return mutate(parent, self.rng, rewire=self.rewire, state_recurrence=self.state_recurrence)

    def _child(self, parent: Program) -> Program:
        """A mutant of ``parent``, redrawn while its canonical form was drawn before."""
        child = self._mutate(parent)
        key = canonical_hash(child)
        for _ in range(self.novelty_tries):
            if key not in self.seen:
                break
            child = self._mutate(parent)
            key = canonical_hash(child)
        self.seen.add(key)
        return child

    def step(self) -> dict[str, Any]:
        """One generation: the starting population if there is none yet, else a cycle of
        ``batch_size`` children evaluated and added (the oldest members die); returns its
        record."""
        if not self.population:
            return self.initialize()
        children = []
        for _ in range(self.batch_size):
            picks = self.rng.choice(len(self.population), size=self.sample_size, replace=False)
            parent = max((self.population[int(i)] for i in picks), key=lambda m: m[1])[0]
            children.append(self._child(parent))
        record = self._record(children, self.evaluate(children))
        del self.population[: len(self.population) - self.population_size]
        return record

    def best(self) -> tuple[Program, float]:
        """The best rule seen and its reward."""
        if self._best is None:
            raise RuntimeError("nothing evaluated yet")
        return self._best

    # -- state ---------------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in CONFIG_KEYS}

    def _state(self) -> dict[str, Any]:
        best = self._best
        return {
            "population": [[format_program(p), r] for p, r in self.population],
            "rng": self.rng.bit_generator.state,
            "best": None if best is None else [format_program(best[0]), best[1]],
            "seen": "\n".join(sorted(self.seen)),  # one string: cheap to save at every step
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.population = [(parse_program(t), float(r)) for t, r in state["population"]]
        self.rng.bit_generator.state = state["rng"]
        seen = state["seen"]  # a list in the JSON checkpoints of earlier versions
        self.seen = set(seen.split("\n") if seen else ()) if isinstance(seen, str) else set(seen)
        best = state["best"]
        self._best = None if best is None else (parse_program(best[0]), float(best[1]))

    def _upgrade(self, state: dict[str, Any]) -> dict[str, Any]:
        """A state of the JSON checkpoints of earlier versions: the config as a list (five
        entries before ``rewire`` and ``state_recurrence``: both off), one history record per
        evaluation."""
        config = state.get("config")
        if not isinstance(config, list | tuple):
            return state
        if len(config) == 5:
            config = [*config, False, 0.0]
        if len(config) != len(CONFIG_KEYS):
            raise ValueError(
                f"the checkpoint's config {state['config']!r} has {len(state['config'])} entries; "
                "this es_opt reads configs of 5 or 7 (checkpoints written before novelty_tries "
                "existed cannot be resumed)"
            )
        config = dict(zip(CONFIG_KEYS, config, strict=True))
        return {
            **state,
            "config": config,
            "history": _generations(state["history"], config),
            "seconds": 0.0,  # not recorded then
        }

    def _legacy_record(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """The per-evaluation records the deprecated ``callback=`` received."""
        g = record["generation"]
        best = self.history[g - 1]["best_reward"] if g > 0 else None
        first = record["evaluations"] - len(record["rewards"])
        out = []
        for i, (reward, status) in enumerate(
            zip(record["rewards"], record["statuses"], strict=True)
        ):
            best = reward if best is None or reward > best else best
            out.append({"evaluation": first + i, "reward": reward, "status": status, "best": best})
        return out

    def load(self, path: str | os.PathLike[str]) -> None:
        """Resumes from a checkpoint written by :meth:`save` (verified by its SHA-256 digest
        before anything is read), or from the JSON checkpoint of an earlier es_opt.

        Raises:
            FileNotFoundError: there is no file at ``path``.
            CheckpointError: the file is corrupted, not an evolution checkpoint, or written with
                other settings (the message names the file); the search is then unchanged.
        """
        path = Path(path)
        if path.is_file():
            with open(path, "rb") as f:
                legacy = f.read(1) == b"{"
            if legacy:
                try:
                    state = json.loads(path.read_text(encoding="utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise CheckpointError(
                        path, f"corrupted: a JSON evolution checkpoint that does not parse ({exc})"
                    ) from None
                if not isinstance(state, dict):
                    raise CheckpointError(path, "a JSON file that is not an evolution checkpoint")
                self._load_checked(path, state)
                return
        super().load(path)


def _generations(records: list[dict[str, Any]], config: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-evaluation records (``evaluation``, ``reward``, ``status``, ``best``) grouped into
    generations: the starting population, then cycles of ``batch_size``."""
    size, batch = config["population_size"], config["batch_size"]
    if records and (len(records) < size or (len(records) - size) % batch):
        raise ValueError(
            f"its history of {len(records)} evaluations is not a population of {size} plus "
            f"cycles of {batch}"
        )
    history, start = [], 0
    while start < len(records):
        part = records[start : start + (size if start == 0 else batch)]
        start += len(part)
        history.append(
            {
                "generation": len(history),
                "evaluations": start,
                **summary([r["reward"] for r in part]),
                "best_reward": part[-1]["best"],
                "statuses": [r["status"] for r in part],
            }
        )
    return history
