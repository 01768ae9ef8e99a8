"""From the network's output to the environment's action, and the deployable policy.

The network maps a (normalised) observation to one value per action dimension:

- ``Discrete(n)``: ``n`` scores; the action is their argmax (plus the space's ``start``).
- ``Box``: one value per action dimension, then either ``"clip"`` (the default): clipped to the
  space's bounds (the identity where a bound is infinite), or ``"tanh"``:
  ``low + (tanh(y) + 1) / 2 · (high − low)``, which needs finite bounds and keeps the output
  sensitive everywhere (a clipped output saturates, so perturbations of a saturated policy change
  nothing).
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from .envs import finite_bounds

__all__ = ["ActionMap", "Policy", "ACTION_MODES"]

ACTION_MODES = ("clip", "tanh")


class ActionMap:
    """Turns a batch of network outputs ``[..., n_outputs]`` into environment actions.

    Args:
        action_space: a ``Discrete`` or ``Box`` space.
        mode: for ``Box`` spaces, ``"clip"`` or ``"tanh"`` (see the module docstring).

    Example:
        >>> amap = ActionMap(gym.spaces.Discrete(3))
        >>> amap(torch.tensor([[0.1, 0.9, 0.3], [2.0, 0.0, 0.0]])).tolist()
        [1, 0]
    """

    def __init__(self, action_space: gym.Space, mode: str = "clip"):
        if mode not in ACTION_MODES:
            raise ValueError(f"action mode must be one of {ACTION_MODES}, got {mode!r}")
        self.space = action_space
        self.mode = mode
        if isinstance(action_space, gym.spaces.Discrete):
            self.discrete = True
            self.n_outputs = int(action_space.n)
            self.start = int(action_space.start)
            self.shape: tuple[int, ...] = ()
        elif isinstance(action_space, gym.spaces.Box):
            self.discrete = False
            self.shape = tuple(action_space.shape)
            self.n_outputs = math.prod(self.shape)
            bounds = finite_bounds(action_space)
            if mode == "tanh" and bounds is None:
                raise ValueError(
                    f"action mode 'tanh' needs finite bounds, got the action space {action_space}"
                )
            self.low, self.high = bounds if bounds is not None else (None, None)
        else:
            raise TypeError(
                f"the action space {action_space} is not supported: use a Discrete or a Box "
                "space (wrap other spaces, e.g. gymnasium.wrappers.FlattenObservation does not "
                "apply to actions: write an ActionWrapper)"
            )

    def check_outputs(self, n_outputs: int) -> None:
        """Raises ``ValueError`` when the network's output size does not fit the action space."""
        if n_outputs != self.n_outputs:
            need = (
                f"{self.n_outputs} (one score per action)"
                if self.discrete
                else f"{self.n_outputs} (one value per action dimension of shape {self.shape})"
            )
            raise ValueError(
                f"the policy outputs {n_outputs} values per observation but the action space "
                f"{self.space} needs {need}"
            )

    def __call__(self, outputs: torch.Tensor) -> np.ndarray:
        if self.discrete:
            actions = outputs.argmax(dim=-1).numpy()
            return actions + self.start if self.start else actions
        if self.mode == "tanh":
            scaled = (torch.tanh(outputs).numpy() + 1.0) * 0.5
            actions = self.low + scaled.reshape(*scaled.shape[:-1], *self.shape) * (
                self.high - self.low
            )
            return actions.astype(self.space.dtype, copy=False)
        actions = outputs.numpy().reshape(*outputs.shape[:-1], *self.shape)
        if self.low is not None:
            actions = np.clip(actions, self.low, self.high)
        return actions.astype(self.space.dtype, copy=False)


class Policy(nn.Module):
    """The trained network with its observation normaliser, ready to act (and to save).

    ``forward(obs)`` returns the network's output on ``clip((obs − mean) / std)``; ``act`` returns
    environment actions for a NumPy batch (or one observation). The normaliser lives in buffers,
    so ``policy.state_dict()`` holds everything needed at inference.

    Args:
        net: the trained network.
        action_space: the environment's action space.
        obs_mean, obs_std: the normaliser's frozen statistics (``None``: no normalisation).
        clip: clip of the normalised observations (``None``: none).
        mode: action mode for ``Box`` spaces, ``"clip"`` or ``"tanh"``.

    Example:
        >>> net = nn.Linear(4, 2)
        >>> policy = Policy(net, gym.spaces.Discrete(2), obs_mean=np.zeros(4), obs_std=np.ones(4))
        >>> policy.act(np.zeros(4, dtype=np.float32)).shape
        ()
    """

    def __init__(
        self,
        net: nn.Module,
        action_space: gym.Space,
        *,
        obs_mean: np.ndarray | None = None,
        obs_std: np.ndarray | None = None,
        clip: float | None = None,
        mode: str = "clip",
    ):
        super().__init__()
        self.net = net
        self.action_map = ActionMap(action_space, mode)
        self.normalize = obs_mean is not None
        self.clip = clip
        dim = 0 if obs_mean is None else len(obs_mean)
        mean = torch.zeros(dim) if obs_mean is None else torch.as_tensor(obs_mean).float()
        std = torch.ones(dim) if obs_std is None else torch.as_tensor(obs_std).float()
        self.register_buffer("obs_mean", mean.clone())
        self.register_buffer("obs_std", std.clone())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            obs = (obs - self.obs_mean) / self.obs_std
            if self.clip is not None:
                obs = obs.clamp(-self.clip, self.clip)
        return self.net(obs)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions for a ``[n, obs_dim]`` batch, or one action for one observation."""
        single = np.ndim(obs) == 1
        batch = torch.as_tensor(np.atleast_2d(obs), dtype=torch.float32)
        with torch.no_grad():
            actions = self.action_map(self(batch))
        return actions[0] if single else actions
