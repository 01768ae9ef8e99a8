"""A tiny environment for the RL tests, importable by worker processes. Nothing is registered
here: tests register it at run time, in their own process only, as a user's ``main()`` does."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class Corridor(gym.Env):
    """Walk a corridor of ``length`` cells: action 1 moves right (+1), action 0 stays (-0.1).
    The start cell depends on the reset seed, so episodes differ."""

    def __init__(self, length: int = 6):
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, float(length), (2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.position = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.position, self.length - self.position], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = int(self.np_random.integers(0, self.length // 2))
        return self._obs(), {}

    def step(self, action):
        moved = int(action) == 1
        self.position += int(moved)
        reward = 1.0 if moved else -0.1
        return self._obs(), reward, self.position >= self.length, False, {}
