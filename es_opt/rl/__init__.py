"""Reinforcement learning on gymnasium environments: rollout objectives, vectorised rollouts and
observation normalisation (needs the ``rl`` extra: ``pip install "es_opt[rl]"``).

Example:
    >>> import torch, es_opt
    >>> from es_opt.rl import EpisodeReturn, EpisodeSamples
    >>> net = torch.nn.Linear(4, 2)
    >>> es = es_opt.ESOptimizer(net, objective_fn=EpisodeReturn("CartPole-v1"), n_samples=8)
    >>> result = es.gradient_step(EpisodeSamples.for_optimizer(es))
"""

from ..errors import require

require("gymnasium", "rl", "es_opt.rl")

from .envs import check_observation_space, make_env  # noqa: E402
from .normalization import ObservationNormalizer, ObservationStats  # noqa: E402
from .objective import EpisodeReturn, greedy_returns  # noqa: E402
from .policy import ActionMap, Policy  # noqa: E402
from .rollout import Rollouts, play, stacked_forward  # noqa: E402
from .samples import EpisodeSamples  # noqa: E402
from .vector import MaskedVectorEnv  # noqa: E402

__all__ = [
    "ActionMap",
    "EpisodeReturn",
    "EpisodeSamples",
    "MaskedVectorEnv",
    "ObservationNormalizer",
    "ObservationStats",
    "Rollouts",
    "Policy",
    "check_observation_space",
    "greedy_returns",
    "make_env",
    "play",
    "stacked_forward",
]
