"""A persistent evaluation cache shared by processes, and atomic file writes.

One JSON file per entry, named by the md5 of (evaluator fingerprint, canonical hash of the rule):
a writer writes a temporary file in the same directory and renames it over the entry
(``os.replace`` is atomic on POSIX and Windows), so a reader sees a whole entry or none, and two
processes evaluating the same rule at once write the same bytes. No lock is needed.

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
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["EvaluationCache", "atomic_write_bytes", "atomic_write_json", "atomic_torch_save"]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; entries are shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike[str], value: Any) -> None:
    """``json.dump`` written atomically."""
    atomic_write_bytes(path, json.dumps(value, sort_keys=True).encode())


def atomic_torch_save(path: str | os.PathLike[str], value: Any) -> None:
    """``torch.save`` written atomically (loadable with ``weights_only=True`` for plain data)."""
    import io

    buffer = io.BytesIO()
    torch.save(value, buffer)
    atomic_write_bytes(path, buffer.getvalue())


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
