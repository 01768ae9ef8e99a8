"""``EpisodeSamples``: the environment seeds of one generation.

Every evaluation of a generation (so both members of each antithetic pair) plays the same reset
seeds: common random numbers, so that a pair's difference in return measures its perturbation and
not the luck of its start states. The seeds derive from the optimizer's seed and the generation,
so a fixed-seed run is reproducible bit for bit and a resumed run plays the seeds the
uninterrupted run would have played.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._validation import check_int, check_optional_int, is_int
from ..noise import ENV_STREAM, derive_seed
from ..objective import Samples

__all__ = ["EpisodeSamples"]


@dataclass
class EpisodeSamples(Samples):
    """Reset seeds, one per episode that each evaluation plays.

    Their number is the number of episodes: :meth:`for_optimizer` takes it from the objective
    (``EpisodeReturn(..., episodes=N)``), and an ``EpisodeReturn`` built with an explicit
    ``episodes`` refuses samples that hold another number of seeds (one rule: an explicit
    ``episodes`` is never silently overridden).

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
        episodes = check_int("episodes", episodes, low=1)
        return cls(tuple(derive_seed(seed, ENV_STREAM, generation, k) for k in range(episodes)))

    @classmethod
    def for_optimizer(cls, es, episodes: int | None = None) -> EpisodeSamples:
        """The seeds of the generation ``es`` (an :class:`~es_opt.ESOptimizer`) runs next.

        ``episodes=None`` (default) draws as many seeds as the objective's ``episodes``
        (``EpisodeReturn(..., episodes=4)``: 4), or 1 when the objective does not set it. An
        explicit ``episodes`` that differs from the objective's explicit one is a ``ValueError``
        naming both: neither silently wins.

        Example:
            >>> import torch, es_opt
            >>> from es_opt.rl import EpisodeReturn
            >>> objective = EpisodeReturn("CartPole-v1", episodes=3)
            >>> es = es_opt.ESOptimizer(torch.nn.Linear(4, 2), objective_fn=objective, n_samples=4)
            >>> EpisodeSamples.for_optimizer(es).episodes
            3
        """
        episodes = check_optional_int("episodes", episodes)
        wanted = getattr(getattr(es, "objective_fn", None), "episodes", None)
        if not is_int(wanted):
            wanted = None
        if episodes is None:
            episodes = 1 if wanted is None else wanted
        elif wanted is not None and episodes != wanted:
            raise ValueError(
                f"EpisodeSamples.for_optimizer got episodes={episodes} but the objective was "
                f"built with episodes={wanted}: pass the same number, or leave one of them unset"
            )
        return cls.for_generation(es.seed, es.generation, episodes)
