"""``EpisodeSamples``: the environment seeds of one generation.

Every evaluation of a generation (so both members of each antithetic pair) plays the same reset
seeds: common random numbers, so that a pair's difference in return measures its perturbation and
not the luck of its start states. The seeds derive from the optimizer's seed and the generation,
so a fixed-seed run is reproducible bit for bit and a resumed run plays the seeds the
uninterrupted run would have played.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..noise import ENV_STREAM, derive_seed
from ..objective import Samples

__all__ = ["EpisodeSamples"]


@dataclass
class EpisodeSamples(Samples):
    """Reset seeds, one per episode that each evaluation plays.

    Example:
        >>> s = EpisodeSamples.for_generation(seed=0, generation=3, episodes=2)
        >>> len(s.seeds), s == EpisodeSamples.for_generation(0, 3, 2)
        (2, True)
    """

    seeds: tuple[int, ...]

    def __post_init__(self) -> None:
        seeds = tuple(self.seeds)
        if not seeds:
            raise ValueError("EpisodeSamples needs at least one seed")
        for seed in seeds:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ValueError(f"episode seeds must be non-negative ints, got {seed!r}")
        self.seeds = seeds

    @property
    def episodes(self) -> int:
        return len(self.seeds)

    @classmethod
    def for_generation(cls, seed: int, generation: int, episodes: int = 1) -> EpisodeSamples:
        """Seeds ``derive_seed(seed, ENV_STREAM, generation, k)`` for ``k < episodes``."""
        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
            raise ValueError(f"episodes must be a positive int, got {episodes!r}")
        return cls(tuple(derive_seed(seed, ENV_STREAM, generation, k) for k in range(episodes)))

    @classmethod
    def for_optimizer(cls, es, episodes: int = 1) -> EpisodeSamples:
        """The seeds of the generation ``es`` (an :class:`~es_opt.ESOptimizer`) runs next."""
        return cls.for_generation(es.seed, es.generation, episodes)
