"""Building gymnasium environments from an id or a factory, with errors that say what to do."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec, load_env_creator

__all__ = [
    "EnvFactory",
    "make_env",
    "registered_spec",
    "keep_bases_of_main_classes",
    "check_observation_space",
    "observation_size",
]

EnvFactory = Callable[[], gym.Env]


def make_env(env: str | EnvFactory, *, spec: EnvSpec | None = None, **kwargs: Any) -> gym.Env:
    """Builds one environment from a registered id (``"CartPole-v1"``) or a factory callable.

    ``kwargs`` go to ``gymnasium.make`` (e.g. ``render_mode="rgb_array"``); they are not accepted
    with a factory. An unknown id raises ``ValueError`` with the close matches gymnasium suggests.
    ``spec`` (from :func:`registered_spec` in the process that registered the id) builds the
    environment where the id is not registered: a worker process, when the user called
    ``gymnasium.register`` inside ``main()``.

    Example:
        >>> make_env("CartPole-v1").action_space
        Discrete(2)
    """
    if isinstance(env, str):
        try:
            return gym.make(env, **kwargs)
        except gym.error.UnregisteredEnv as exc:
            if spec is None:
                raise ValueError(f"unknown environment id {env!r}: {exc}") from None
        return _make_from_spec(env, spec, kwargs)
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


def registered_spec(env_id: str) -> EnvSpec | None:
    """The ``EnvSpec`` registered under ``env_id`` in this process (``None`` if there is none),
    ready to travel to worker processes with the objective, so that an id registered only here
    (e.g. by ``gymnasium.register`` inside ``main()``) works there too. An entry point string in
    ``__main__`` is replaced by the class or function it names, which then travels by value.

    Example:
        >>> registered_spec("CartPole-v1").entry_point
        'gymnasium.envs.classic_control.cartpole:CartPoleEnv'
    """
    try:
        spec = gym.spec(env_id)
    except gym.error.Error:
        return None
    entry_point = spec.entry_point
    if isinstance(entry_point, str) and entry_point.split(":")[0] == "__main__":
        spec = copy.copy(spec)
        spec.entry_point = load_env_creator(entry_point)
    return spec


def keep_bases_of_main_classes(env: gym.Env) -> None:
    """Lets the classes of ``__main__`` in ``env`` (its wrappers and the environment itself, and
    their bases) travel by value to worker processes intact.

    dill rebuilds a class of ``__main__`` from the ``__orig_bases__`` it *inherits* when it has
    none of its own: for a subclass of ``gymnasium.Env`` (a ``Generic``) that is ``Generic[...]``,
    so the worker's copy is no longer a ``gymnasium.Env`` and ``gymnasium.make`` refuses it. Such
    a class gets its own ``__orig_bases__`` equal to its ``__bases__`` (what
    ``types.get_original_bases`` already reports for it), which dill rebuilds correctly.
    """
    layer: Any = env
    while layer is not None:
        for cls in type(layer).__mro__:
            if (
                cls.__module__ == "__main__"
                and "__orig_bases__" not in cls.__dict__
                and hasattr(cls, "__orig_bases__")
            ):
                cls.__orig_bases__ = cls.__bases__
        layer = getattr(layer, "env", None) if isinstance(layer, gym.Wrapper) else None


def _make_from_spec(env_id: str, spec: EnvSpec, kwargs: dict[str, Any]) -> gym.Env:
    try:
        return gym.make(spec, **kwargs)
    except (ImportError, AttributeError) as exc:
        raise ValueError(
            f"environment id {env_id!r} is registered only in the main process (gymnasium.register "
            f"was called there, e.g. inside main()) and its entry point {spec.entry_point!r} "
            f"cannot be loaded in this worker process ({type(exc).__name__}: {exc}). Register it "
            "at import time of a module the workers can import (the module that defines the "
            "environment), pass the environment class itself as entry_point, or give "
            "EpisodeReturn a factory (lambda: MyEnv())"
        ) from exc


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
