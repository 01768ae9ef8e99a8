"""Rollouts: many policies, many environments, one batched forward per time step.

:func:`play` drives a :class:`~es_opt.rl.vector.MaskedVectorEnv`: at every time step the
observations of all sub-environments go through the policies of all members at once
(``[members, episodes, obs_dim]``) with :class:`es_opt.evaluators.stacked.StackedModel` (a direct
batched-matrix-product path for plain MLPs, ``torch.func.vmap`` for any other network).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..evaluators.stacked import StackedModel
from .normalization import ObservationNormalizer, ObservationStats
from .policy import ActionMap
from .vector import MaskedVectorEnv

__all__ = ["Rollouts", "StepMetric", "play", "stacked_forward"]

StepMetric = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


# -- the batched policy forward ------------------------------------------------------------------
def stacked_forward(stacked: StackedModel) -> Callable[[torch.Tensor], torch.Tensor]:
    """``inputs [B, N, in] -> outputs [B, N, out]`` for the members of ``stacked``: its
    ``per_member`` call, which for a plain MLP is a planned chain of ``baddbmm`` calls (tens of
    µs per call for a population of 100 small MLPs) and ``torch.func.vmap`` otherwise (several
    hundred µs per call).

    Example:
        >>> import es_opt
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> es = es_opt.ESOptimizer(net, objective_fn=lambda m, s: 0.0, n_samples=4)
        >>> stacked = StackedModel(es.model, es.ask(), range(4))
        >>> x = torch.randn(4, 5, 3)
        >>> torch.equal(stacked_forward(stacked)(x), stacked(x, per_member=True))
        True
    """
    return lambda inputs: stacked(inputs, per_member=True)


# -- the rollout loop --------------------------------------------------------------------------
@dataclass
class Rollouts:
    """What :func:`play` measured, one row per member (means over its episodes)."""

    returns: np.ndarray  # [members] mean episode return
    lengths: np.ndarray  # [members] mean episode length
    metric: np.ndarray | None  # [members] mean of the summed step metric, if one was given
    obs_stats: list[ObservationStats] | None  # per member, if observation statistics were kept
    member_steps: np.ndarray  # [members] environment steps each member took (all its episodes)

    @property
    def steps(self) -> int:
        """Environment steps taken by all members."""
        return int(self.member_steps.sum())


def play(
    venv: MaskedVectorEnv,
    forward: Callable[[torch.Tensor], torch.Tensor],
    action_map: ActionMap,
    seeds: Sequence[int],
    *,
    members: int,
    max_episode_steps: int | None = None,
    normalizer: ObservationNormalizer | None = None,
    collect_stats: bool = False,
    step_metric: StepMetric | None = None,
) -> Rollouts:
    """Plays ``len(seeds)`` episodes for each of ``members`` policies in lock-step.

    Sub-environment ``m * E + e`` plays episode ``e`` (reset seed ``seeds[e]``) of member ``m``;
    ``forward`` maps observations ``[members, E, obs_dim]`` (float32, normalised when a
    normaliser is given) to outputs ``[members, E, n_outputs]``. A member's numbers depend only
    on its policy and the seeds, never on the other members it was batched with.
    """
    episodes = len(seeds)
    n = members * episodes
    if venv.num_envs != n:
        raise ValueError(f"the vector environment has {venv.num_envs} sub-environments, need {n}")
    obs, _ = venv.reset(seed=[seeds[i % episodes] for i in range(n)])
    obs = obs.reshape(n, -1)
    dim = obs.shape[1]
    returns = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    metric = np.zeros(n) if step_metric is not None else None
    active = venv.active
    if collect_stats:
        shift = (normalizer.mean if normalizer is not None else np.zeros(dim)).astype(np.float64)
        sum1, sum2 = np.zeros((n, dim)), np.zeros((n, dim))
    t = 0
    while active.any() and (max_episode_steps is None or t < max_episode_steps):
        running = active.copy()
        if collect_stats:
            diff = obs - shift
            diff[~running] = 0.0
            sum1 += diff
            sum2 += diff * diff
        inputs = normalizer.normalize(obs) if normalizer is not None else obs
        inputs = torch.from_numpy(np.asarray(inputs, dtype=np.float32))
        outputs = forward(inputs.view(members, episodes, dim))
        actions = action_map(outputs.reshape(n, -1))
        next_obs, rewards, _, _, _ = venv.step(actions)
        if metric is not None:
            values = np.asarray(step_metric(obs, actions, rewards), dtype=np.float64)
            metric += np.where(running, values, 0.0)
        returns += rewards  # finished sub-environments return exactly 0.0
        lengths += running
        obs = next_obs.reshape(n, -1)
        t += 1
    stats = None
    if collect_stats:
        counts = lengths.reshape(members, episodes).sum(1)
        s1 = sum1.reshape(members, episodes, dim).sum(1)
        s2 = sum2.reshape(members, episodes, dim).sum(1)
        stats = [
            ObservationStats.from_shifted_sums(int(counts[m]), shift, s1[m], s2[m])
            for m in range(members)
        ]
    return Rollouts(
        returns=returns.reshape(members, episodes).mean(1),
        lengths=lengths.reshape(members, episodes).mean(1),
        metric=None if metric is None else metric.reshape(members, episodes).mean(1),
        obs_stats=stats,
        member_steps=lengths.reshape(members, episodes).sum(1),
    )
