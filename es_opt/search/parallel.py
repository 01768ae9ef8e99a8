"""Evaluate batches of rules: the cache first, then the misses serially or on a process pool.

Workers are started once (``spawn`` by default, so no torch state is forked), receive the
evaluator once, then only rule texts; each worker reads and writes the shared on-disk cache, so a
rule evaluated anywhere is never evaluated again. Results come back in the order asked.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from .cache import EvaluationCache
from .canonical import canonical_hash
from .evaluate import RuleResult, SuiteEvaluator
from .program import Program, format_program, parse_program

__all__ = ["Evaluations"]

_WORKER: dict[str, Any] = {}


def _init_worker(evaluator: SuiteEvaluator, cache_dir: str | None, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER["evaluator"] = evaluator
    _WORKER["cache"] = EvaluationCache(cache_dir) if cache_dir else None
    for task in evaluator.tasks:  # pay the imports and data loading once, before any rule
        task.make(evaluator.seed).loss()


def _evaluate_with(
    evaluator: SuiteEvaluator, cache: EvaluationCache | None, text: str
) -> dict[str, Any]:
    program = parse_program(text)
    key = canonical_hash(program)
    if cache is not None:
        found = cache.get(evaluator.fingerprint(), key)
        if found is not None:
            return found
    result = evaluator(program).to_dict()
    if cache is not None:
        cache.put(evaluator.fingerprint(), key, result)
    return result


def _evaluate_text(text: str) -> dict[str, Any]:
    """Run in a pool worker, with what :func:`_init_worker` received."""
    return _evaluate_with(_WORKER["evaluator"], _WORKER["cache"], text)


class Evaluations:
    """Scores rules with a :class:`SuiteEvaluator`, through a cache, on ``n_workers`` processes.

    Args:
        evaluator: scores one rule.
        cache_dir: directory of the shared :class:`EvaluationCache` (``None``: no cache).
        n_workers: 1 evaluates in this process; more start a ``multiprocess`` pool.
        start_method: ``"spawn"`` or ``"forkserver"``.
        threads: torch threads per worker.

    Attributes:
        evaluated: rules scored by training (cache misses).
        requested: rules asked for.
        cache_hits: answered by the cache (in this process, or a duplicate within a batch).
    """

    def __init__(
        self,
        evaluator: SuiteEvaluator,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        n_workers: int = 1,
        start_method: str = "spawn",
        threads: int = 1,
    ) -> None:
        if not isinstance(n_workers, int) or n_workers < 1:
            raise ValueError(f"n_workers must be a positive int, got {n_workers!r}")
        if start_method not in ("spawn", "forkserver"):
            raise ValueError(f"start_method must be 'spawn' or 'forkserver', got {start_method!r}")
        self.evaluator = evaluator
        self.cache = EvaluationCache(cache_dir) if cache_dir is not None else None
        self.n_workers = n_workers
        self.evaluated = 0
        self.requested = 0
        self.cache_hits = 0
        self._memory: dict[str, dict[str, Any]] = {}
        self._pool = None
        cache_str = str(cache_dir) if cache_dir is not None else None
        if n_workers > 1:
            import multiprocess  # the dill-based pool es_opt's process backend uses

            context = multiprocess.get_context(start_method)
            self._pool = context.Pool(
                n_workers, initializer=_init_worker, initargs=(evaluator, cache_str, threads)
            )
        self._local_cache = EvaluationCache(cache_dir) if cache_dir is not None else None

    def __call__(self, programs: Sequence[Program]) -> list[RuleResult]:
        """The results of ``programs``, in order."""
        keys = [canonical_hash(p) for p in programs]
        self.requested += len(programs)
        fingerprint = self.evaluator.fingerprint()
        todo: dict[str, str] = {}
        for key, program in zip(keys, programs, strict=True):
            if key in self._memory or key in todo:
                self.cache_hits += 1
                continue
            found = self.cache.get(fingerprint, key) if self.cache is not None else None
            if found is not None:
                self._memory[key] = found
                self.cache_hits += 1
            else:
                todo[key] = format_program(program)
        if todo:
            texts = list(todo.values())
            if self._pool is not None:
                results = self._pool.map(_evaluate_text, texts, chunksize=1)
            else:
                results = [_evaluate_with(self.evaluator, self._local_cache, t) for t in texts]
            self.evaluated += len(texts)
            self._memory.update(zip(todo, results, strict=True))
        return [RuleResult.from_dict(self._memory[k]) for k in keys]

    @property
    def hit_rate(self) -> float:
        """Share of requested rules that did not need training."""
        return self.cache_hits / self.requested if self.requested else 0.0

    def close(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> Evaluations:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
