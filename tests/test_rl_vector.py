"""Vectorised rollouts: the same fitness (and observation statistics) as one evaluation at a time,
finished episodes frozen, and the same trajectory whatever the backend."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from es_opt import ESOptimizer
from es_opt.evaluators.stacked import StackedModel
from es_opt.rl import EpisodeReturn, EpisodeSamples, MaskedVectorEnv, stacked_forward


class TwoHeads(nn.Module):
    """Not a plain Sequential: takes the generic torch.func path."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.body = nn.Linear(n_in, 8)
        self.head = nn.Linear(8, n_out)

    def forward(self, x):
        return self.head(torch.relu(self.body(x))) + 0.1 * self.body(x)[..., :1]


def _population(net, objective, n_samples=8, sigma=0.5, seed=0):
    es = ESOptimizer(net, objective_fn=objective, n_samples=n_samples, sigma=sigma, seed=seed)
    return es, es.ask()


def _one_at_a_time(es, objective, population, samples):
    rows, stats = [], []
    for i in range(population.n_evals):
        with population.loaded(es.model.net, i):
            rows.append(objective(es.model, samples))
        stats.append(objective.collect_stats())
    return torch.stack(rows), stats


CASES = {
    "cartpole-linear": ("CartPole-v1", lambda: nn.Linear(4, 2), {}),
    "cartpole-mlp-normalised": (
        "CartPole-v1",
        lambda: nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)),
        {"normalize_observations": True},
    ),
    "pendulum-generic-net-tanh": (
        "Pendulum-v1",
        lambda: TwoHeads(3, 1),
        {"action": "tanh", "max_episode_steps": 80, "second_objective": "length"},
    ),
    "acrobot-relu": (
        "Acrobot-v1",
        lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)),
        # random policies never swing up within 120 steps (every return is -120): the second
        # column, the first observation summed over the episode, tells the members apart
        {"max_episode_steps": 120, "second_objective": lambda obs, actions, rewards: obs[:, 0]},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_vectorised_fitness_equals_one_at_a_time(case):
    env, make_net, options = CASES[case]
    torch.manual_seed(1)
    objective = EpisodeReturn(env, **options)
    if objective.normalizer is not None:  # a non-trivial frozen normaliser
        objective.normalizer.set_frozen_state(([0.1, -0.2, 0.05, 0.3], [0.5, 2.0, 0.1, 1.5]))
    es, population = _population(make_net(), objective)
    samples = EpisodeSamples.for_generation(3, 0, episodes=2)
    expected, expected_stats = _one_at_a_time(es, objective, population, samples)
    stacked = StackedModel(es.model, population, range(population.n_evals))
    fitness = objective.evaluate_population(stacked, samples)
    stats = objective.collect_stats()
    assert fitness.dtype == torch.float64 and fitness.shape == expected.shape
    assert torch.equal(fitness, expected), (fitness - expected).abs().max()
    # members differ (in some column), so the equality means something
    assert any(len(set(column)) > 1 for column in fitness.T.tolist())
    # the same steps (and observation statistics), member by member
    assert [s if isinstance(s, tuple) else None for s in stats] == expected_stats
    assert all(steps > 0 for steps, _ in stats)
    # a chunk of the population gives the same rows as the whole
    chunk = StackedModel(es.model, population, [5, 2])
    assert torch.equal(objective.evaluate_population(chunk, samples), expected[[5, 2]])


def test_fast_mlp_forward_matches_torch_func():
    x = torch.randn(6, 4, 5)
    nets = (
        nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 7), nn.ReLU(), nn.Linear(7, 3)),
        nn.Linear(5, 3, bias=False),
    )
    for net in nets:
        es, population = _population(net, lambda m, s: 0.0, n_samples=6)
        stacked = StackedModel(es.model, population, range(6))
        assert stacked._plan is not None  # the direct path, checked against vmap
        vmapped = torch.func.vmap(stacked._call)(stacked.stacked, x)
        torch.testing.assert_close(stacked_forward(stacked)(x), vmapped)
        part = StackedModel(es.model, population, range(4))
        torch.testing.assert_close(stacked_forward(part)(x[:4]), vmapped[:4])


def test_finished_sub_environments_are_frozen_not_reset():
    venv = MaskedVectorEnv([lambda: gym.make("CartPole-v1")] * 2)
    obs, _ = venv.reset(seed=[0, 0])
    steps = 0
    last = None
    while venv.active[0]:  # env 0 always pushes left and falls; env 1 alternates and survives
        last = obs[0].copy()
        obs, rewards, terms, _, _ = venv.step(np.array([0, steps % 2]))
        steps += 1
    frozen = obs[0].copy()
    assert terms[0] and not venv.active[0] and venv.active[1]
    for _ in range(3):
        obs, rewards, terms, truncs, _ = venv.step(np.array([1, 0]))
        assert rewards[0] == 0.0 and terms[0] and not truncs[0]
        np.testing.assert_array_equal(obs[0], frozen)
    assert not np.array_equal(last, frozen)
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.DISABLED
    venv.close()


def _train(backend, vectorize, generations=3, **options):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    objective = EpisodeReturn("Pendulum-v1", max_episode_steps=40, normalize_observations=True)
    objective.vectorize = vectorize
    with ESOptimizer(
        net, objective_fn=objective, n_samples=8, sigma=0.2, seed=4, backend=backend, **options
    ) as es:
        for _ in range(generations):
            es.gradient_step(EpisodeSamples.for_optimizer(es))
    return [p.detach().clone() for p in net.parameters()], objective.normalizer.state_dict()


def test_vectorised_and_one_at_a_time_training_are_identical():
    params_a, norm_a = _train("serial", vectorize=True)
    params_b, norm_b = _train("serial", vectorize=False)
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b, strict=True))
    assert norm_a == norm_b and norm_a["count"] == 3 * 8 * 40


@pytest.mark.slow
def test_two_worker_processes_train_exactly_like_serial():
    params_a, norm_a = _train("serial", vectorize=True)
    params_b, norm_b = _train("multiprocess", vectorize=True, n_workers=2)
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b, strict=True))
    assert norm_a == norm_b
