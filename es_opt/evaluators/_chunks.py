"""How a generation is cut into chunks of evaluation indices for the parallel workers."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from .batched import is_vectorized

__all__ = ["Chunk", "ChunkQueue", "chunks_per_worker"]


@dataclass
class Chunk:
    """Evaluation indices sent to one worker as one task; ``attempt`` counts the times they were
    re-run because a worker died while running them alone.

    An ``alone`` chunk is sent only to a worker that holds no other chunk, and nothing is sent
    behind it: a worker lost while holding it was lost while running it. (A worker lost while
    holding two chunks may have finished the first and died in the second: a Ray actor's reply
    can die with it.)
    """

    indices: list[int]
    attempt: int = 0
    alone: bool = False

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
    of the generation (an odd generation, without mirroring, ends with a single member). Which
    worker runs which chunk never changes a result.

    Fresh chunks come in increasing index order; chunks handed back (:meth:`retry`,
    :meth:`requeue`) come first.
    """

    def __init__(self, n_evals: int, n_workers: int, per_worker: int = 2):
        self._next_pair = 0
        self._n_pairs = (n_evals + 1) // 2  # an odd generation (no mirroring) ends with one
        self._n_evals = n_evals
        self._divisor = max(1, per_worker * n_workers)
        self._again: deque[Chunk] = deque()

    def next(self, below: int | None = None, *, behind: bool = False) -> Chunk | None:
        """The next chunk, or ``None``; with ``below``, only a chunk that starts below that index
        (once an evaluation has failed, only lower ones can change which error is reported);
        with ``behind`` (the chunk is to wait behind another on its worker), no ``alone`` chunk:
        those stay queued for a free worker."""
        found: Chunk | None = None
        kept: deque[Chunk] = deque()
        for chunk in self._again:
            if below is not None and chunk.indices[0] >= below:
                continue  # dropped: ``below`` only ever decreases
            if found is None and not (behind and chunk.alone):
                found = chunk
            else:
                kept.append(chunk)
        self._again = kept
        if found is not None:
            return found
        remaining = self._n_pairs - self._next_pair
        if remaining <= 0 or (below is not None and 2 * self._next_pair >= below):
            return None
        size = max(1, math.ceil(remaining / self._divisor))
        start = self._next_pair
        self._next_pair += size
        end = min(2 * self._next_pair, self._n_evals)
        return Chunk(list(range(2 * start, end)))

    def retry(self, chunk: Chunk) -> None:
        """Hands ``chunk`` out again (first), alone, counting one more attempt."""
        self._again.append(Chunk(chunk.indices, chunk.attempt + 1, alone=True))

    def requeue(self, chunk: Chunk) -> None:
        """Hands ``chunk`` out again (first) as it is: it is not to blame for a lost worker."""
        self._again.append(chunk)
