"""Networks on flat parameter vectors and population rollouts on gymnasium, for the peers that
hand the user a ``[P, d]`` population matrix and expect a fitness vector back (evosax, EvoX).

Both peers leave the objective to the user; this module is the objective a user of either would
write, shared so that the two measure the same thing:

- :class:`FlatMLP`: an MLP with tanh hidden layers whose parameters are one flat vector, in
  ``torch.nn.Sequential``'s order (``W1, b1, W2, b2, …``); a population is evaluated with one
  batched matrix product per layer (``baddbmm``), as EvoTorch's and es_opt's vectorised paths do.
  Its initial vector is ``tasks``' network of the same shape under ``torch.manual_seed(seed)``
  (torch's default initialisation), the EvoTorch sides' starting point.
- :class:`PopulationRollouts`: ``P`` gymnasium environments stepped in lock-step, one batched
  policy forward per time step, every member playing the same reset seed (derived from the run's
  seed and the generation, below :data:`tasks.TRAIN_SEED_LIMIT`: common random numbers, like
  es_opt's ``EpisodeSamples``), one episode per member and generation.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.peers import tasks


class FlatMLP:
    """``sizes = (in, hidden…, out)``, tanh between layers, linear output.

    Example:
        >>> net = FlatMLP((3, 4, 2))
        >>> net.dim, net.forward(torch.zeros(5, net.dim), torch.ones(7, 3)).shape
        (26, torch.Size([5, 7, 2]))
    """

    def __init__(self, sizes: tuple[int, ...]):
        self.sizes = tuple(sizes)
        self.shapes: list[tuple[tuple[int, int], int]] = [
            ((n_out, n_in), n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        ]
        self.dim = sum(o * i + o for (o, i), _ in self.shapes)

    def module(self) -> torch.nn.Sequential:
        layers: list[torch.nn.Module] = []
        for k, ((n_out, n_in), _) in enumerate(self.shapes):
            if k:
                layers.append(torch.nn.Tanh())
            layers.append(torch.nn.Linear(n_in, n_out))
        return torch.nn.Sequential(*layers)

    def init_vector(self, seed: int) -> torch.Tensor:
        """torch's default initialisation of the same ``nn.Sequential``, seeded, flattened."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = self.module()
        return torch.nn.utils.parameters_to_vector(net.parameters()).detach()

    def forward(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``params`` ``[P, d]``; ``x`` ``[N, in]`` (shared) or ``[P, N, in]`` (per member);
        returns ``[P, N, out]``."""
        p = params.shape[0]
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(p, *x.shape)
        offset = 0
        for k, ((n_out, n_in), _) in enumerate(self.shapes):
            w = params[:, offset : offset + n_out * n_in].reshape(p, n_out, n_in)
            offset += n_out * n_in
            b = params[:, offset : offset + n_out].unsqueeze(1)
            offset += n_out
            if k:
                x = torch.tanh(x)
            x = torch.baddbmm(b, x, w.transpose(1, 2))
        return x


def digits_accuracy(net: FlatMLP, params: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """Raw training accuracy of every member, ``[P]`` float32."""
    with torch.no_grad():
        return (net.forward(params, x).argmax(dim=-1) == y).float().mean(dim=-1)


class PopulationRollouts:
    """One episode per member of a population, all in lock-step, on ``env_id``.

    Args:
        env_id: the gymnasium environment.
        net: the policy (observations in, logits or actions out).
        size: the population size (environments are made once and reused).
    """

    def __init__(self, env_id: str, net: FlatMLP, size: int):
        import gymnasium as gym

        self.envs = [gym.make(env_id) for _ in range(size)]
        space = self.envs[0].action_space
        self.discrete = isinstance(space, gym.spaces.Discrete)
        self.low = None if self.discrete else space.low
        self.high = None if self.discrete else space.high
        self.net = net
        self.steps = 0  # training environment steps so far
        self.episodes = 0

    def actions(self, params: torch.Tensor, obs: np.ndarray) -> np.ndarray:
        """Greedy actions of ``params`` ``[P, d]`` for ``obs`` ``[P, obs_dim]`` (one per member)."""
        with torch.no_grad():
            out = self.net.forward(params, torch.as_tensor(obs, dtype=torch.float32).unsqueeze(1))
        out = out[:, 0]
        if self.discrete:
            return out.argmax(dim=-1).numpy()
        return np.clip(out.numpy(), self.low, self.high)

    def returns(self, params: torch.Tensor, seed: int, generation: int) -> torch.Tensor:
        """Every member's episode return ``[P]`` (float32) on the generation's reset seed."""
        n = params.shape[0]
        if n > len(self.envs):
            raise ValueError(f"population of {n} for {len(self.envs)} environments")
        reset_seed = (seed * 1_000_003 + generation) % tasks.TRAIN_SEED_LIMIT
        obs = np.stack([env.reset(seed=reset_seed)[0] for env in self.envs[:n]]).astype(np.float32)
        total = np.zeros(n)
        active = np.ones(n, dtype=bool)
        while active.any():
            idx = np.flatnonzero(active)
            acts = self.actions(params[idx], obs[idx])
            for k, i in enumerate(idx):
                a = int(acts[k]) if self.discrete else acts[k]
                o, r, terminated, truncated, _ = self.envs[i].step(a)
                obs[i] = o
                total[i] += r
                self.steps += 1
                if terminated or truncated:
                    active[i] = False
        self.episodes += n
        return torch.as_tensor(total, dtype=torch.float32)

    def act_fn(self, center: torch.Tensor) -> tasks.ActFn:
        """The greedy action function of one parameter vector, for the trackers' evaluation."""

        def act(obs: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                x = torch.as_tensor(obs, dtype=torch.float32)
                out = self.net.forward(center.unsqueeze(0), x)[0]
            return out.argmax(dim=-1).numpy() if self.discrete else out.numpy()

        return act
