"""``MaskedVectorEnv``: a gymnasium vector environment whose sub-environments play one episode
each after ``reset``. A sub-environment that has terminated or been truncated is *frozen* (not
stepped again, reward 0) rather than reset into the return, so nothing is spent on steps that do
not count. :func:`es_opt.rl.rollout.play` drives it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space

__all__ = ["MaskedVectorEnv"]


class MaskedVectorEnv(gym.vector.VectorEnv):
    """Sub-environments that each play one episode per ``reset``; finished ones stay frozen.

    ``step(actions)`` steps only the sub-environments still running; a finished one returns its
    last observation, reward 0 and its final ``terminated``/``truncated`` flags until the next
    ``reset`` (``autoreset_mode`` is ``DISABLED``). ``active`` says which are still running.
    Infos are not collected (``{}``): rollouts do not need them and they cost a dict per step.

    Example:
        >>> venv = MaskedVectorEnv([lambda: gym.make("CartPole-v1")] * 3)
        >>> obs, _ = venv.reset(seed=[1, 1, 2])
        >>> obs.shape, bool((obs[0] == obs[1]).all())
        ((3, 4), True)
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]]):
        super().__init__()
        self.envs = [fn() for fn in env_fns]
        if not self.envs:
            raise ValueError("MaskedVectorEnv needs at least one sub-environment")
        first = self.envs[0]
        self.num_envs = len(self.envs)
        self.metadata = dict(first.metadata)
        self.metadata["autoreset_mode"] = gym.vector.AutoresetMode.DISABLED
        self.render_mode = first.render_mode
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(first.observation_space, self.num_envs)
        self.action_space = batch_space(first.action_space, self.num_envs)
        shape = first.observation_space.shape
        self._obs = np.zeros((self.num_envs, *shape), dtype=first.observation_space.dtype)
        self._terminations = np.zeros(self.num_envs, dtype=np.bool_)
        self._truncations = np.zeros(self.num_envs, dtype=np.bool_)
        self.active = np.zeros(self.num_envs, dtype=np.bool_)

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options=None):
        if seed is None or isinstance(seed, int):
            seeds = [None if seed is None else seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} sub-environments")
        for i, (env, s) in enumerate(zip(self.envs, seeds, strict=True)):
            self._obs[i] = env.reset(seed=s, options=options)[0]
        self._terminations[:] = False
        self._truncations[:] = False
        self.active[:] = True
        return self._obs, {}

    def step(self, actions):
        rewards = np.zeros(self.num_envs)
        obs, terms, truncs, envs = self._obs, self._terminations, self._truncations, self.envs
        if isinstance(actions, np.ndarray) and actions.ndim == 1:
            # Python ints: Discrete.contains checks them far faster than NumPy integers.
            actions = actions.tolist()
        for i in np.flatnonzero(self.active).tolist():
            obs[i], rewards[i], terms[i], truncs[i], _ = envs[i].step(actions[i])
        np.logical_and(self.active, ~(terms | truncs), out=self.active)
        return obs, rewards, terms, truncs, {}

    def close_extras(self, **kwargs) -> None:
        for env in self.envs:
            env.close()
