"""Building gymnasium environments from an id or a factory, with errors that say what to do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["EnvFactory", "make_env", "check_observation_space", "observation_size"]

EnvFactory = Callable[[], gym.Env]


def make_env(env: str | EnvFactory, **kwargs: Any) -> gym.Env:
    """Builds one environment from a registered id (``"CartPole-v1"``) or a factory callable.

    ``kwargs`` go to ``gymnasium.make`` (e.g. ``render_mode="rgb_array"``); they are not accepted
    with a factory. An unknown id raises ``ValueError`` with the close matches gymnasium suggests.

    Example:
        >>> make_env("CartPole-v1").action_space
        Discrete(2)
    """
    if isinstance(env, str):
        try:
            return gym.make(env, **kwargs)
        except gym.error.UnregisteredEnv as exc:
            raise ValueError(f"unknown environment id {env!r}: {exc}") from None
    if isinstance(env, gym.Env):
        raise TypeError(
            "env must be an environment id or a factory that builds a fresh environment (e.g. "
            "lambda: MyEnv()), got an environment instance: rollouts need several copies of it"
        )
    if not callable(env):
        raise TypeError(
            f"env must be an environment id (str) or a factory callable, got {type(env).__name__}"
        )
    if kwargs:
        raise TypeError(f"make_env options {sorted(kwargs)} only apply to an environment id")
    built = env()
    if not isinstance(built, gym.Env):
        raise TypeError(
            f"the environment factory must return a gymnasium.Env, got {type(built).__name__}"
        )
    return built


def check_observation_space(space: gym.Space) -> int:
    """Returns the observation size of a flat ``Box`` space, or raises ``ValueError`` naming the
    wrapper that makes the space flat.

    Example:
        >>> check_observation_space(gym.spaces.Box(-1.0, 1.0, (3,)))
        3
    """
    if isinstance(space, gym.spaces.Box):
        if len(space.shape) == 1:
            return int(space.shape[0])
        raise ValueError(
            f"the observation space is a Box of shape {space.shape}; policies here take flat "
            "observations: wrap the environment with gymnasium.wrappers.FlattenObservation "
            "(e.g. env=lambda: FlattenObservation(gymnasium.make(...)))"
        )
    wrapper = "gymnasium.wrappers.FlattenObservation"
    raise ValueError(
        f"the observation space {space} is not a flat Box; wrap the environment with {wrapper} "
        "(it turns Discrete, Dict, Tuple and multi-dimensional Box spaces into a flat Box)"
    )


def observation_size(env: gym.Env) -> int:
    return check_observation_space(env.observation_space)


def episode_limit(env: gym.Env, max_episode_steps: int | None) -> int | None:
    """The step cap of an episode: ``max_episode_steps`` if given, else the spec's, else none."""
    if max_episode_steps is not None:
        return max_episode_steps
    spec = getattr(env, "spec", None)
    return getattr(spec, "max_episode_steps", None)


def finite_bounds(space: gym.spaces.Box) -> tuple[np.ndarray, np.ndarray] | None:
    """``(low, high)`` as float32 arrays when every bound is finite, else ``None``."""
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    if np.isfinite(low).all() and np.isfinite(high).all():
        return low, high
    return None
