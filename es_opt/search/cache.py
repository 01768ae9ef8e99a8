"""A persistent evaluation cache shared by processes.

One JSON file per entry, named by the md5 of (evaluator fingerprint, canonical hash of the rule),
written by es_opt's one atomic writer (:func:`es_opt.training.checkpoint.atomic_write`: a
temporary file in the same folder, renamed over the entry with ``os.replace``, atomic on POSIX and
Windows), so a reader sees a whole entry or none, and two processes evaluating the same rule at
once write the same bytes. No lock is needed.

Example:
    >>> import tempfile
    >>> cache = EvaluationCache(tempfile.mkdtemp())
    >>> cache.get("fp", "abc") is None
    True
    >>> cache.put("fp", "abc", {"reward": 0.5})
    >>> cache.get("fp", "abc")
    {'reward': 0.5}
    >>> cache.hits, cache.misses
    (1, 1)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..training.checkpoint import atomic_write

__all__ = ["EvaluationCache", "atomic_write_json"]


def atomic_write_json(path: str | os.PathLike[str], value: Any) -> None:
    """``json.dump`` (keys sorted) written atomically."""
    atomic_write(path, json.dumps(value, sort_keys=True).encode())


class EvaluationCache:
    """Rule results on disk, keyed by evaluator fingerprint and canonical hash.

    Args:
        directory: where entries live (created if missing); several processes may share it.

    Attributes:
        hits: lookups answered by this instance.
        misses: lookups that found nothing.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        if not isinstance(directory, str | os.PathLike):
            raise TypeError(f"directory must be a path, got {type(directory).__name__}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def _path(self, fingerprint: str, key: str) -> Path:
        name = hashlib.md5(f"{fingerprint}|{key}".encode()).hexdigest()
        return self.directory / name[:2] / f"{name}.json"

    def get(self, fingerprint: str, key: str) -> dict[str, Any] | None:
        """The stored value, or ``None`` (counted as a hit or a miss)."""
        path = self._path(fingerprint, key)
        try:
            value = json.loads(path.read_text())
        except FileNotFoundError:
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, fingerprint: str, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` (JSON-serialisable) atomically."""
        atomic_write_json(self._path(fingerprint, key), value)

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*/*.json"))

    @property
    def hit_rate(self) -> float:
        """Hits over lookups (0 before the first lookup)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
