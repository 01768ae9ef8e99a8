"""Observation normalisation: the parallel-variance merge, the frozen normaliser, its state and the
statistics the rollouts collect."""

import io

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from es_opt import ESOptimizer
from es_opt.rl import EpisodeReturn, EpisodeSamples, ObservationNormalizer, ObservationStats


def _reference(data):
    return len(data), data.mean(axis=0), data.var(axis=0)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 30), min_size=1, max_size=6),
    offset=st.floats(-1e4, 1e4),
    scale=st.floats(1e-3, 1e3),
    seed=st.integers(0, 2**16),
)
def test_merge_of_chunks_equals_the_statistics_of_the_concatenated_data(sizes, offset, scale, seed):
    rng = np.random.default_rng(seed)
    chunks = [offset + scale * rng.standard_normal((n, 3)) for n in sizes]
    data = np.concatenate(chunks)
    merged = ObservationStats.empty(3)
    for chunk in chunks:
        merged = merged.merge(ObservationStats.of(chunk))
    assert merged.count == len(data)
    if len(data):
        n, mean, var = _reference(data)
        np.testing.assert_allclose(merged.mean, mean, rtol=1e-9, atol=1e-9 * scale)
        np.testing.assert_allclose(merged.variance, var, rtol=1e-7, atol=1e-12 * scale**2)


def test_shifted_sums_give_the_same_statistics_as_the_data():
    rng = np.random.default_rng(0)
    data = 1000.0 + rng.standard_normal((50, 4))
    shift = np.full(4, 999.5)
    diff = data - shift
    stats = ObservationStats.from_shifted_sums(50, shift, diff.sum(0), (diff * diff).sum(0))
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.variance, data.var(0), rtol=1e-9)


def test_normalizer_is_frozen_until_update_and_clips():
    norm = ObservationNormalizer(2, clip=2.0)
    obs = np.array([[10.0, -10.0]], dtype=np.float32)
    np.testing.assert_array_equal(norm.normalize(obs), [[2.0, -2.0]])  # identity, then clipped
    data = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    norm.update([ObservationStats.of(data[:2]), None, ObservationStats.of(data[2:])])
    np.testing.assert_allclose(norm.mean, [3.0, 5.0])
    np.testing.assert_allclose(norm.std, [np.sqrt(8 / 3), 1e-8], rtol=1e-6)
    np.testing.assert_allclose(norm.normalize(np.array([[3.0 + np.sqrt(8 / 3), 5.0]])), [[1, 0]])


def test_normalizer_validates_its_arguments():
    with pytest.raises(ValueError, match="dim must be a positive int, got 0"):
        ObservationNormalizer(0)
    with pytest.raises(ValueError, match="clip must be > 0 or None, got -1"):
        ObservationNormalizer(3, clip=-1)
    norm = ObservationNormalizer(3)
    with pytest.raises(ValueError, match="size 2 do not fit observations of size 3"):
        norm.load_state_dict(ObservationNormalizer(2).state_dict())


def test_rollout_statistics_are_those_of_the_observations_the_policy_saw():
    net = torch.nn.Linear(4, 2)
    torch.nn.init.constant_(net.weight, 0.3)
    objective = EpisodeReturn("CartPole-v1", episodes=2, normalize_observations=True)
    samples = EpisodeSamples((3, 4))
    objective(_model(net), samples)
    steps, (count, mean, m2) = objective.collect_stats()
    seen = []
    for seed in samples.seeds:  # a plain gymnasium loop that records what the policy saw
        env = gym.make("CartPole-v1")
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            seen.append(obs)
            action = int(net(torch.as_tensor(obs, dtype=torch.float32)).argmax())
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    seen = np.array(seen, dtype=np.float64)
    assert count == len(seen)
    np.testing.assert_allclose(mean, seen.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.array(m2) / count, seen.var(0), rtol=1e-8, atol=1e-12)


def _model(net):
    from es_opt import Model

    return Model(net)


def test_a_step_merges_every_evaluation_and_the_state_survives_weights_only_save():
    net = torch.nn.Linear(3, 1)
    objective = EpisodeReturn("Pendulum-v1", max_episode_steps=20, normalize_observations=True)
    es = ESOptimizer(net, objective_fn=objective, n_samples=6, seed=1)
    assert objective.normalizer.stats.count == 0
    es.gradient_step(EpisodeSamples.for_optimizer(es))
    # 6 evaluations of 20 steps each, all merged
    assert objective.normalizer.stats.count == 6 * 20
    assert not np.allclose(objective.normalizer.std, 1.0)
    buffer = io.BytesIO()
    torch.save(es.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = EpisodeReturn("Pendulum-v1", max_episode_steps=20, normalize_observations=True)
    es2 = ESOptimizer(torch.nn.Linear(3, 1), objective_fn=fresh, n_samples=6, seed=1)
    es2.load_state_dict(state)
    assert fresh.normalizer.stats.count == 120
    np.testing.assert_array_equal(fresh.normalizer.mean, objective.normalizer.mean)
    np.testing.assert_array_equal(fresh.normalizer.std, objective.normalizer.std)


def test_every_evaluation_of_a_generation_sees_the_same_normaliser():
    # Two identical members (sigma tiny, pair 0 twice) must get identical returns even though the
    # first one's observations were collected before the second one ran.
    net = torch.nn.Linear(3, 1)
    objective = EpisodeReturn("Pendulum-v1", max_episode_steps=30, normalize_observations=True)
    objective.vectorize = False
    es = ESOptimizer(net, objective_fn=objective, n_samples=2, seed=0, sigma=1e-30)
    result = es.gradient_step(EpisodeSamples((5,)))
    assert result.fitness[0, 0] == result.fitness[1, 0]
    assert objective.normalizer.stats.count == 60
