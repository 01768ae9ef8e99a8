"""``EpisodeReturn``: the mean return of a policy over a few episodes, as an ES objective."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import check_optional_int
from ..objective import Objective
from .envs import (
    EnvFactory,
    check_observation_space,
    keep_bases_of_main_classes,
    make_env,
    registered_spec,
)
from .normalization import ObservationNormalizer, ObservationStats
from .policy import ActionMap, Policy
from .rollout import Rollouts, StepMetric, play, stacked_forward
from .samples import EpisodeSamples
from .vector import MaskedVectorEnv

__all__ = ["EpisodeReturn"]


class EpisodeReturn(Objective):
    """Mean return over ``episodes`` episodes played with the model as the policy (maximised).

    The network maps an observation to one score per discrete action (argmax) or one value per
    action dimension (``action="clip"`` or ``"tanh"``, see :mod:`es_opt.rl.policy`). The reset
    seeds come from the step's :class:`EpisodeSamples` (``samples=None`` plays the seeds
    ``0 .. episodes-1``); the episodes of one evaluation run in lock-step.

    Args:
        env: an environment id (``"CartPole-v1"``) or a factory returning a gymnasium ``Env``.
            The registration of an id (its ``EnvSpec``) travels with the objective, so an id
            registered only in the main process (``gymnasium.register`` inside ``main()``) also
            builds in worker processes; an entry point they cannot import (a module that exists
            only in the main process) is a ``ValueError`` that says so.
        episodes: episodes per evaluation. Given, it is never overridden: samples holding
            another number of reset seeds are refused (``ValueError`` naming both numbers), and
            :meth:`EpisodeSamples.for_optimizer` draws this many. ``None`` (default): as many as
            the samples hold (1 with ``samples=None``).
        max_episode_steps: step cap per episode (default: the environment's own limit).
        action: ``"clip"`` or ``"tanh"`` for ``Box`` action spaces.
        normalize_observations: keep running observation statistics and feed the policy
            ``clip((obs − mean) / std, ±obs_clip)``, frozen within a generation.
        obs_clip: clip of the normalised observations (``None``: none).
        second_objective: ``None``; ``"length"`` (mean episode length); or a function
            ``(obs [n, d], actions [n, ...], rewards [n]) -> values [n]`` summed over the steps of
            each episode and averaged over episodes (e.g. a control cost). With it the objective
            returns two values per evaluation: give ``ESOptimizer`` two ``obj_weights``.
        env_kwargs: options for ``gymnasium.make`` (with an environment id).
        reward_shift: added to the reward of every step played in training, so the fitness is
            ``return + reward_shift · length`` (Mania et al. 2018's "shift": ``-1`` on Hopper
            removes the bonus for merely staying up). Greedy evaluation
            (:func:`greedy_returns`) uses the environment's own rewards.
        vectorize: ``False`` evaluates one member at a time (same fitness, slower).
        max_batch: most members per vectorised call (``None``: es_opt picks, see
            :mod:`es_opt.evaluators.batched`).

    Attributes:
        steps: training environment steps of every evaluation, in every process: workers report
            theirs with their statistics and the optimizer merges them after each generation
            (greedy evaluations with :func:`greedy_returns` are not counted).

    Vectorised path: :meth:`evaluate_population` plays a whole chunk of the population at once
    (one sub-environment per evaluation and episode, one batched forward per time step) and
    returns the same fitness as calling the objective on each member.

    Example:
        >>> import es_opt
        >>> net = torch.nn.Linear(4, 2)
        >>> objective = EpisodeReturn("CartPole-v1", max_episode_steps=50)
        >>> es = es_opt.ESOptimizer(net, objective_fn=objective, n_samples=4, seed=0)
        >>> result = es.gradient_step(EpisodeSamples.for_optimizer(es))
        >>> 0 < result.fitness_mean[0] <= 50
        True
    """

    def __init__(
        self,
        env: str | EnvFactory,
        episodes: int | None = None,
        max_episode_steps: int | None = None,
        *,
        action: str = "clip",
        normalize_observations: bool = False,
        obs_clip: float | None = 5.0,
        second_objective: str | StepMetric | None = None,
        env_kwargs: dict[str, Any] | None = None,
        vectorize: bool = True,
        max_batch: int | None = None,
        reward_shift: float = 0.0,
    ):
        episodes = check_optional_int("episodes", episodes)
        if max_episode_steps is not None and (
            isinstance(max_episode_steps, bool)
            or not isinstance(max_episode_steps, int)
            or max_episode_steps < 1
        ):
            raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps!r}")
        if second_objective not in (None, "length") and not callable(second_objective):
            raise ValueError(
                "second_objective must be None, 'length' or a function "
                f"(obs, actions, rewards) -> values, got {second_objective!r}"
            )
        if (
            isinstance(reward_shift, bool)
            or not isinstance(reward_shift, (int, float))
            or not np.isfinite(reward_shift)
        ):
            raise ValueError(f"reward_shift must be a finite number, got {reward_shift!r}")
        self.reward_shift = float(reward_shift)
        self.env = env
        self.episodes = episodes
        self.max_episode_steps = max_episode_steps
        self.env_kwargs = dict(env_kwargs or {})
        if isinstance(env, str) and max_episode_steps is not None:
            self.env_kwargs.setdefault("max_episode_steps", max_episode_steps)
        self.second_objective = second_objective
        self.vectorize = bool(vectorize)
        self.max_batch = max_batch
        # The registration travels with the objective: worker processes build the environment
        # from it even when the id was registered only here (e.g. inside the user's main()).
        self._spec = registered_spec(env) if isinstance(env, str) else None
        probe = self.make_env()  # fails now, with a clear message, rather than in a worker
        try:
            keep_bases_of_main_classes(probe)
            self.obs_dim = check_observation_space(probe.observation_space)
            self.action_space = probe.action_space
            self.action_map = ActionMap(probe.action_space, action)
        finally:
            probe.close()
        self.action = action
        self.normalizer = (
            ObservationNormalizer(self.obs_dim, clip=obs_clip) if normalize_observations else None
        )
        self.steps = 0  # training environment steps, merged from every process (merge_stats)
        self._venvs: dict[int, MaskedVectorEnv] = {}
        self._last_stats: Any = None
        self._checked_net: int | None = None

    # -- environments --------------------------------------------------------------------------
    def make_env(self, **kwargs: Any):
        """A fresh environment (``kwargs`` add to ``env_kwargs``, e.g. ``render_mode``)."""
        if isinstance(self.env, str):
            spec = getattr(self, "_spec", None)
            return make_env(self.env, spec=spec, **{**self.env_kwargs, **kwargs})
        return make_env(self.env, **kwargs)

    def _venv(self, n: int) -> MaskedVectorEnv:
        venv = self._venvs.get(n)
        if venv is None:
            venv = MaskedVectorEnv([self.make_env] * n)
            self._venvs[n] = venv
        return venv

    def close(self) -> None:
        for venv in self._venvs.values():
            venv.close()
        self._venvs.clear()

    def __getstate__(self) -> dict[str, Any]:
        # Environments stay in the process that built them; workers build their own.
        state = self.__dict__.copy()
        state["_venvs"] = {}
        state["_last_stats"] = None
        state["_checked_net"] = None
        return state

    # -- evaluation ----------------------------------------------------------------------------
    @property
    def n_objectives(self) -> int:
        return 1 if self.second_objective is None else 2

    def _seeds(self, samples: Any) -> tuple[int, ...]:
        if samples is None:
            return tuple(range(self.episodes or 1))
        if not isinstance(samples, EpisodeSamples):
            raise TypeError(
                "EpisodeReturn needs EpisodeSamples (reset seeds) or None as samples, got "
                f"{type(samples).__name__}"
            )
        if self.episodes is not None and samples.episodes != self.episodes:
            raise ValueError(
                f"EpisodeReturn was built with episodes={self.episodes} but the samples hold "
                f"{samples.episodes} reset seed(s) (episodes={samples.episodes}): build them with "
                f"EpisodeSamples.for_optimizer(es) (it follows the objective) or with "
                f"episodes={self.episodes}, or leave EpisodeReturn's episodes unset to play as "
                "many episodes as the samples hold"
            )
        return samples.seeds

    def _check_net(self, net: nn.Module) -> None:
        if self._checked_net == id(net):
            return
        with torch.no_grad():
            out = net(torch.zeros(1, self.obs_dim))
        self.action_map.check_outputs(int(out.shape[-1]))
        self._checked_net = id(net)

    def _play(self, forward, members: int, seeds: tuple[int, ...]) -> Rollouts:
        metric = self.second_objective if callable(self.second_objective) else None
        rollouts = play(
            self._venv(members * len(seeds)),
            forward,
            self.action_map,
            seeds,
            members=members,
            max_episode_steps=self.max_episode_steps,
            normalizer=self.normalizer,
            collect_stats=self.normalizer is not None,
            step_metric=metric,
        )
        return rollouts

    def _fitness(self, rollouts: Rollouts) -> torch.Tensor:
        returns = rollouts.returns
        if self.reward_shift:
            returns = returns + self.reward_shift * rollouts.lengths
        columns = [returns]
        if self.second_objective == "length":
            columns.append(rollouts.lengths.astype(np.float64))
        elif self.second_objective is not None:
            columns.append(rollouts.metric)
        return torch.from_numpy(np.stack(columns, axis=1))

    def __call__(self, model, samples: Any = None) -> torch.Tensor:
        """One evaluation: the model (with one member loaded) plays the samples' episodes."""
        seeds = self._seeds(samples)
        net = model.net if hasattr(model, "net") else model
        self._check_net(net)

        def forward(inputs: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return net(inputs[0]).unsqueeze(0)

        rollouts = self._play(forward, 1, seeds)
        obs = None if rollouts.obs_stats is None else rollouts.obs_stats[0]
        self._last_stats = (int(rollouts.member_steps[0]), obs)
        return self._fitness(rollouts)[0]

    def evaluate_population(self, population, samples: Any = None) -> torch.Tensor:
        """Every member of ``population`` (a :class:`~es_opt.evaluators.stacked.StackedModel`) at
        once: ``[len(population), n_objectives]`` float64, row ``b`` equal to calling the
        objective on member ``population.indices[b]``."""
        seeds = self._seeds(samples)
        self._check_net(population.model.net)
        rollouts = self._play(stacked_forward(population), len(population), seeds)
        obs = rollouts.obs_stats or [None] * len(population)
        self._last_stats = [
            (int(steps), o) for steps, o in zip(rollouts.member_steps, obs, strict=True)
        ]
        return self._fitness(rollouts)

    # -- hooks: observation statistics -----------------------------------------------------------
    def collect_stats(self) -> Any:
        """What the last evaluation saw, as plain tuples ``(steps, obs)``: its environment steps
        and its observation statistics ``(count, mean, m2)`` (``None`` without normalisation);
        a list of them, one per member, after :meth:`evaluate_population`."""
        stats, self._last_stats = self._last_stats, None
        if stats is None:
            return None
        if isinstance(stats, list):
            return [(steps, None if o is None else o.as_tuple()) for steps, o in stats]
        steps, obs = stats
        return steps, None if obs is None else obs.as_tuple()

    def merge_stats(self, stats: list[Any]) -> None:
        """Adds the generation's environment steps to :attr:`steps` and merges its observation
        statistics in evaluation order, then re-freezes the normaliser for the next generation."""
        flat: list[ObservationStats] = []
        for item in stats:
            if item is None:
                continue
            for steps, obs in item if isinstance(item, list) else [item]:
                self.steps += int(steps)
                if obs is not None:
                    count, mean, m2 = obs
                    flat.append(ObservationStats(count, np.asarray(mean), np.asarray(m2)))
        if self.normalizer is not None:
            self.normalizer.update(flat)

    def generation_state(self) -> Any:
        return None if self.normalizer is None else self.normalizer.frozen_state()

    def set_generation_state(self, state: Any) -> None:
        if self.normalizer is not None and state is not None:
            self.normalizer.set_frozen_state(state)

    def state_dict(self) -> dict[str, Any]:
        if self.normalizer is None:
            return {}
        return {"obs_normalizer": self.normalizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.normalizer is not None and "obs_normalizer" in state:
            self.normalizer.load_state_dict(state["obs_normalizer"])

    # -- deployment --------------------------------------------------------------------------
    def policy(self, net: nn.Module) -> Policy:
        """The greedy policy of ``net`` with this objective's frozen normaliser (save its
        ``state_dict()``; it applies the normaliser at inference)."""
        norm = self.normalizer
        return Policy(
            net,
            self.action_space,
            obs_mean=None if norm is None else norm.mean,
            obs_std=None if norm is None else norm.std,
            clip=None if norm is None else norm.clip,
            mode=self.action,
        )


def greedy_returns(
    policy: Policy | Callable[[np.ndarray], np.ndarray],
    env: str | EnvFactory,
    seeds: tuple[int, ...],
    *,
    max_episode_steps: int | None = None,
    **env_kwargs: Any,
) -> np.ndarray:
    """Returns of the episodes ``seeds`` played in lock-step by a deployed policy (evaluation)."""
    if isinstance(env, str) and max_episode_steps is not None:
        env_kwargs.setdefault("max_episode_steps", max_episode_steps)
    venv = MaskedVectorEnv([lambda: make_env(env, **env_kwargs)] * len(seeds))
    try:
        obs, _ = venv.reset(seed=list(seeds))
        returns = np.zeros(len(seeds))
        t = 0
        while venv.active.any() and (max_episode_steps is None or t < max_episode_steps):
            act = policy.act if isinstance(policy, Policy) else policy
            obs, rewards, _, _, _ = venv.step(act(obs.astype(np.float32)))
            returns += rewards
            t += 1
        return returns
    finally:
        venv.close()
