"""EpisodeReturn, one evaluation at a time, against plain gymnasium loops written out by hand."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from es_opt import ESOptimizer, Model
from es_opt.rl import EpisodeReturn, EpisodeSamples


def _linear(n_in, n_out, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(n_in, n_out)


def _plain_rollout(env_id, net, seed, *, discrete, max_steps=None, low=None, high=None):
    """(return, length, sum of squared actions) of one episode, the textbook way."""
    env = gym.make(env_id, max_episode_steps=max_steps) if max_steps else gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    total, length, energy, done = 0.0, 0, 0.0, False
    while not done:
        with torch.no_grad():
            out = net(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0))[0]
        action = int(out.argmax()) if discrete else np.clip(out.numpy(), low, high)
        if not discrete:
            energy += float(np.square(action).sum())
        obs, reward, terminated, truncated, _ = env.step(action)
        total += reward
        length += 1
        done = terminated or truncated
    return total, length, energy


def test_discrete_return_equals_a_plain_gymnasium_loop():
    net = _linear(4, 2)
    samples = EpisodeSamples((11, 12, 13))
    fitness = EpisodeReturn("CartPole-v1")(Model(net), samples)
    expected = [_plain_rollout("CartPole-v1", net, s, discrete=True)[0] for s in samples.seeds]
    assert fitness.tolist() == [np.mean(expected)]
    assert len(set(expected)) > 1  # the seeds matter, so the test could fail


def test_continuous_return_and_a_step_metric_equal_a_plain_loop():
    net = _linear(3, 1, seed=2)
    objective = EpisodeReturn(
        "Pendulum-v1",
        max_episode_steps=60,
        second_objective=lambda obs, actions, rewards: np.square(actions).sum(-1),
    )
    fitness = objective(Model(net), EpisodeSamples((5,)))
    ret, length, energy = _plain_rollout(
        "Pendulum-v1", net, 5, discrete=False, max_steps=60, low=-2.0, high=2.0
    )
    assert length == 60
    np.testing.assert_allclose(fitness.numpy(), [ret, energy], rtol=1e-12)


def test_max_episode_steps_caps_factory_environments_and_length_is_a_second_objective():
    net = _linear(4, 2)
    torch.nn.init.zeros_(net.weight)
    torch.nn.init.zeros_(net.bias)
    objective = EpisodeReturn(lambda: gym.make("CartPole-v1"), max_episode_steps=5,
                              second_objective="length")  # fmt: skip
    # zero policy always pushes left: CartPole falls after ~9 steps, the cap stops it at 5
    assert objective(Model(net), EpisodeSamples((0, 1))).tolist() == [5.0, 5.0]
    long = EpisodeReturn("CartPole-v1", second_objective="length")(Model(net), EpisodeSamples((0,)))
    assert long[0] == long[1] > 5


def test_samples_none_plays_seeds_zero_to_episodes():
    net = _linear(4, 2)
    objective = EpisodeReturn("CartPole-v1", episodes=2)
    assert torch.equal(objective(Model(net), None), objective(Model(net), EpisodeSamples((0, 1))))


def test_a_fixed_seed_run_is_reproducible_bit_for_bit_and_learns():
    def run():
        net = _linear(4, 2, seed=3)
        objective = EpisodeReturn("CartPole-v1", max_episode_steps=200)
        es = ESOptimizer(net, objective_fn=objective, n_samples=10, sigma=0.1, seed=5,
                         optimizer=torch.optim.Adam(net.parameters(), lr=0.05))  # fmt: skip
        results = [es.gradient_step(EpisodeSamples.for_optimizer(es)) for _ in range(15)]
        return net, results

    (net_a, res_a), (net_b, res_b) = run(), run()
    assert all(
        torch.equal(a, b) for a, b in zip(net_a.parameters(), net_b.parameters(), strict=True)
    )
    assert [r.fitness_mean for r in res_a] == [r.fitness_mean for r in res_b]
    early = np.mean([r.fitness_mean[0] for r in res_a[:3]])
    late = np.mean([r.fitness_mean[0] for r in res_a[-3:]])
    assert late > 2 * early


def test_both_members_of_a_pair_play_the_same_start_states():
    # sigma so small that a pair's members act identically: equal returns only if they share
    # the reset seeds (a different start state would give a different CartPole return).
    net = _linear(4, 2)
    objective = EpisodeReturn("CartPole-v1")
    es = ESOptimizer(net, objective_fn=objective, n_samples=4, sigma=1e-30, seed=0)
    result = es.gradient_step(EpisodeSamples.for_optimizer(es, episodes=1))
    fitness = result.fitness[:, 0].tolist()
    assert fitness[0] == fitness[1] == fitness[2] == fitness[3]
    other = EpisodeSamples.for_generation(0, 1)
    returns = {float(objective(Model(net), EpisodeSamples((s,)))[0]) for s in range(10)}
    assert len(returns) > 1 and other.seeds != EpisodeSamples.for_generation(0, 0).seeds


def test_policy_of_the_objective_plays_like_the_training_rollout():
    from es_opt.rl import greedy_returns

    net = _linear(3, 1, seed=4)
    objective = EpisodeReturn("Pendulum-v1", normalize_observations=True, max_episode_steps=50)
    es = ESOptimizer(net, objective_fn=objective, n_samples=4, seed=0)
    es.gradient_step(EpisodeSamples((1,)))  # the normaliser now holds statistics
    assert objective.normalizer.stats.count > 0
    fitness = objective(Model(net), EpisodeSamples((7, 8)))
    objective.collect_stats()
    returns = greedy_returns(objective.policy(net), "Pendulum-v1", (7, 8), max_episode_steps=50)
    assert fitness[0].item() == pytest.approx(returns.mean(), rel=1e-12)


def test_reward_shift_adds_per_step_in_both_paths_and_not_in_greedy_evaluation():
    from es_opt.evaluators.stacked import StackedModel
    from es_opt.rl import greedy_returns

    net = _linear(3, 1, seed=2)
    samples = EpisodeSamples((4, 5))
    plain = EpisodeReturn(
        "Pendulum-v1", episodes=2, max_episode_steps=30, second_objective="length"
    )
    shifted = EpisodeReturn("Pendulum-v1", episodes=2, max_episode_steps=30,
                            second_objective="length", reward_shift=-1.5)  # fmt: skip
    base = plain(Model(net), samples)
    one = shifted(Model(net), samples)
    assert one[1] == base[1] == 30.0
    assert one[0].item() == pytest.approx(base[0].item() - 1.5 * 30, rel=1e-12)
    es = ESOptimizer(net, objective_fn=shifted, n_samples=4, seed=0)
    population = es.ask()
    batch = shifted.evaluate_population(StackedModel(es.model, population, range(4)), samples)
    alone = []
    for i in range(4):
        with population.loaded(net, i):
            alone.append(shifted(Model(net), samples))
    assert torch.equal(batch, torch.stack(alone))
    greedy = greedy_returns(shifted.policy(net), "Pendulum-v1", (4, 5), max_episode_steps=30)
    assert greedy.mean() == pytest.approx(base[0].item(), rel=1e-12)  # the environment's rewards
    for bad in (float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="reward_shift must be a finite number"):
            EpisodeReturn("CartPole-v1", reward_shift=bad)
