"""Observation normalisation: running mean and variance of the observations seen in rollouts.

As in Salimans et al. 2017 and Mania et al. 2018 (ARS), the policy sees ``clip((x − μ) / σ)``
where μ and σ are the mean and standard deviation of every observation collected so far. The
normaliser is *frozen within a generation*: every evaluation of a generation sees the same μ and σ
(otherwise members evaluated later would see a different policy), and the statistics gathered by
the generation's rollouts are merged in evaluation order once the step succeeds, with the parallel
variance formula (Chan, Golub and LeVeque 1979)::

    n = n_a + n_b,   δ = mean_b − mean_a
    mean = mean_a + δ · n_b / n
    M2 = M2_a + M2_b + δ² · n_a · n_b / n        (variance = M2 / n)

so the result does not depend on how the evaluations were split between workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ObservationStats", "ObservationNormalizer"]


@dataclass(frozen=True)
class ObservationStats:
    """Count, mean and sum of squared deviations (``M2``) of a set of observations (float64).

    Example:
        >>> a = ObservationStats.of(np.array([[0.0], [2.0]]))
        >>> b = ObservationStats.of(np.array([[4.0]]))
        >>> merged = a.merge(b)
        >>> merged.count, merged.mean.tolist(), merged.variance.tolist()
        (3, [2.0], [2.6666666666666665])
    """

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, dim: int) -> ObservationStats:
        return cls(0, np.zeros(dim), np.zeros(dim))

    @classmethod
    def of(cls, observations: np.ndarray) -> ObservationStats:
        """The statistics of a ``[n, dim]`` array of observations."""
        data = np.asarray(observations, dtype=np.float64)
        if data.ndim != 2:
            raise ValueError(f"observations must be a [n, dim] array, got shape {data.shape}")
        if len(data) == 0:
            return cls.empty(data.shape[1])
        mean = data.mean(axis=0)
        return cls(len(data), mean, np.square(data - mean).sum(axis=0))

    @classmethod
    def from_shifted_sums(
        cls, count: int, shift: np.ndarray, sum1: np.ndarray, sum2: np.ndarray
    ) -> ObservationStats:
        """From ``Σ(x − shift)`` and ``Σ(x − shift)²`` over ``count`` observations.

        Sums of shifted values are what a rollout can accumulate cheaply at every step; the shift
        (the frozen mean) keeps ``M2 = Σ(x−k)² − (Σ(x−k))² / n`` free of catastrophic
        cancellation.
        """
        if count == 0:
            return cls.empty(len(shift))
        mean_shift = sum1 / count
        m2 = np.maximum(sum2 - sum1 * mean_shift, 0.0)
        return cls(int(count), shift + mean_shift, m2)

    @property
    def variance(self) -> np.ndarray:
        return self.m2 / self.count if self.count else np.ones_like(self.m2)

    def merge(self, other: ObservationStats) -> ObservationStats:
        """The statistics of both sets together (the parallel variance formula)."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + np.square(delta) * (self.count * other.count / count)
        return ObservationStats(count, mean, m2)

    def as_tuple(self) -> tuple[int, list[float], list[float]]:
        return self.count, self.mean.tolist(), self.m2.tolist()


class ObservationNormalizer:
    """Running observation statistics plus the frozen ``(mean, std)`` the policy uses.

    Args:
        dim: observation size.
        clip: normalised observations are clipped to ``[-clip, clip]`` (``None``: no clipping).
        eps: added to the standard deviation (constant dimensions do not divide by zero).

    Example:
        >>> norm = ObservationNormalizer(2)
        >>> norm.update([ObservationStats.of(np.array([[1.0, 0.0], [3.0, 0.0]]))])
        >>> norm.normalize(np.array([[3.0, 0.0]], dtype=np.float32)).tolist()
        [[1.0, 0.0]]
    """

    def __init__(self, dim: int, *, clip: float | None = 5.0, eps: float = 1e-8):
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if clip is not None and not clip > 0:
            raise ValueError(f"clip must be > 0 or None, got {clip!r}")
        self.dim = dim
        self.clip = None if clip is None else float(clip)
        self.eps = float(eps)
        self.stats = ObservationStats.empty(dim)
        self._freeze()

    def _freeze(self) -> None:
        # float32 copies: the policy runs in float32 and must see exactly these values everywhere.
        if self.stats.count < 2:
            self.mean = np.zeros(self.dim, dtype=np.float32)
            self.std = np.ones(self.dim, dtype=np.float32)
        else:
            self.mean = self.stats.mean.astype(np.float32)
            self.std = (np.sqrt(self.stats.variance) + self.eps).astype(np.float32)

    def normalize(self, observations: np.ndarray) -> np.ndarray:
        """``clip((x − mean) / std)`` with the frozen statistics (float32)."""
        out = (np.asarray(observations, dtype=np.float32) - self.mean) / self.std
        if self.clip is not None:
            np.clip(out, -self.clip, self.clip, out=out)
        return out

    def update(self, stats: Sequence[ObservationStats | None]) -> None:
        """Merges per-evaluation statistics in the order given, then re-freezes."""
        merged = self.stats
        for item in stats:
            if item is not None:
                merged = merged.merge(item)
        self.stats = merged
        self._freeze()

    # -- shipping to workers and checkpoints ---------------------------------------------------
    def frozen_state(self) -> tuple[list[float], list[float]]:
        return self.mean.tolist(), self.std.tolist()

    def set_frozen_state(self, state: tuple[Sequence[float], Sequence[float]]) -> None:
        mean, std = state
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    def state_dict(self) -> dict[str, Any]:
        """Plain Python values (loads with ``torch.load(weights_only=True)``)."""
        count, mean, m2 = self.stats.as_tuple()
        return {"count": count, "mean": mean, "m2": m2, "clip": self.clip, "eps": self.eps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mean = np.asarray(state["mean"], dtype=np.float64)
        if mean.shape != (self.dim,):
            raise ValueError(
                f"observation statistics of size {mean.size} do not fit observations of size "
                f"{self.dim}"
            )
        self.stats = ObservationStats(
            int(state["count"]), mean, np.asarray(state["m2"], dtype=np.float64)
        )
        self.clip = state.get("clip", self.clip)
        self.eps = float(state.get("eps", self.eps))
        self._freeze()

    def __repr__(self) -> str:
        return f"ObservationNormalizer(dim={self.dim}, count={self.stats.count}, clip={self.clip})"
