"""Environments, action mapping and episode seeds: what is accepted, and the errors for the rest."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers import FlattenObservation

from es_opt.noise import ENV_STREAM, derive_seed
from es_opt.rl import ActionMap, EpisodeReturn, EpisodeSamples, Policy, make_env
from es_opt.rl.envs import check_observation_space


def test_unknown_env_id_names_gymnasiums_close_match():
    with pytest.raises(
        ValueError, match=r"unknown environment id 'CartPol-v1'.*Did you mean: `CartPole`"
    ):
        make_env("CartPol-v1")
    with pytest.raises(ValueError, match=r"CartPole-v9.*provides versioned environments"):
        EpisodeReturn("CartPole-v9")


def test_env_must_be_an_id_or_a_factory():
    with pytest.raises(TypeError, match="got an environment instance"):
        make_env(gym.make("CartPole-v1"))
    with pytest.raises(TypeError, match="environment id \\(str\\) or a factory callable, got int"):
        make_env(3)
    with pytest.raises(TypeError, match="must return a gymnasium.Env, got str"):
        make_env(lambda: "CartPole-v1")
    env = make_env(lambda: gym.make("Pendulum-v1"))
    assert env.spec.id == "Pendulum-v1"


def test_non_flat_observation_spaces_say_which_wrapper_to_use():
    with pytest.raises(ValueError, match=r"Box of shape \(2, 3\).*FlattenObservation"):
        check_observation_space(gym.spaces.Box(-1, 1, (2, 3)))
    with pytest.raises(ValueError, match=r"Discrete\(16\) is not a flat Box.*FlattenObservation"):
        EpisodeReturn("FrozenLake-v1")
    # ...and the suggested wrapper works
    objective = EpisodeReturn(lambda: FlattenObservation(gym.make("FrozenLake-v1")))
    assert objective.obs_dim == 16


def test_policy_output_size_must_fit_the_action_space():
    from es_opt import ESOptimizer

    objective = EpisodeReturn("CartPole-v1")
    es = ESOptimizer(torch.nn.Linear(4, 3), objective_fn=objective, n_samples=2)
    with pytest.raises(Exception, match=r"outputs 3 values.*Discrete\(2\) needs 2"):
        es.gradient_step(EpisodeSamples((0,)))
    objective = EpisodeReturn("Pendulum-v1")
    with pytest.raises(ValueError, match=r"outputs 2 values.*needs 1 \(one value per action"):
        objective(torch.nn.Linear(3, 2), EpisodeSamples((0,)))


def test_discrete_actions_are_the_argmax_plus_start():
    amap = ActionMap(gym.spaces.Discrete(3, start=-1))
    out = torch.tensor([[0.0, 2.0, 1.0], [5.0, 0.0, 0.0], [0.0, 0.0, 9.0]])
    assert amap(out).tolist() == [0, -1, 1]


def test_box_actions_clip_or_tanh_scale_into_the_bounds():
    space = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))
    out = torch.tensor([[3.0, -0.5], [0.5, 0.25]])
    np.testing.assert_array_equal(ActionMap(space)(out), [[2.0, 0.0], [0.5, 0.25]])
    tanh = ActionMap(space, "tanh")(out)
    expected = np.array([-2.0, 0.0]) + (np.tanh(out.numpy()) + 1) / 2 * np.array([4.0, 1.0])
    np.testing.assert_allclose(tanh, expected, rtol=1e-6)
    assert tanh.dtype == np.float32
    unbounded = gym.spaces.Box(-np.inf, np.inf, (2,))
    np.testing.assert_array_equal(ActionMap(unbounded)(out), out.numpy())
    with pytest.raises(ValueError, match="'tanh' needs finite bounds"):
        ActionMap(unbounded, "tanh")
    with pytest.raises(ValueError, match=r"action mode must be one of \('clip', 'tanh'\)"):
        ActionMap(space, "softmax")
    with pytest.raises(TypeError, match="MultiBinary.*not supported"):
        ActionMap(gym.spaces.MultiBinary(3))


def test_policy_applies_the_normaliser_then_the_action_map():
    net = torch.nn.Linear(2, 1)
    space = gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
    mean, std = np.array([1.0, -1.0]), np.array([2.0, 0.5])
    policy = Policy(net, space, obs_mean=mean, obs_std=std, clip=1.5)
    obs = np.array([[5.0, -1.25], [1.0, -1.0]], dtype=np.float32)
    normalised = torch.tensor([[1.5, -0.5], [0.0, 0.0]])  # (5-1)/2 = 2 is clipped to 1.5
    with torch.no_grad():
        expected = np.clip(net(normalised).numpy(), -1, 1)
    np.testing.assert_array_equal(policy.act(obs), expected)
    assert policy.act(obs[0]).shape == (1,)
    assert set(policy.state_dict()) == {"net.weight", "net.bias", "obs_mean", "obs_std"}


def test_episode_seeds_derive_from_seed_and_generation():
    samples = EpisodeSamples.for_generation(7, 3, episodes=3)
    assert samples.seeds == tuple(derive_seed(7, ENV_STREAM, 3, k) for k in range(3))
    assert EpisodeSamples.for_generation(7, 4, 3).seeds[0] != samples.seeds[0]
    assert EpisodeSamples.for_generation(8, 3, 3).seeds[0] != samples.seeds[0]
    with pytest.raises(ValueError, match="episodes must be an int >= 1, got 0"):
        EpisodeSamples.for_generation(0, 0, episodes=0)
    with pytest.raises(ValueError, match="non-negative ints, got -1"):
        EpisodeSamples((1, -1))
    with pytest.raises(ValueError, match="at least one seed"):
        EpisodeSamples(())


def test_episode_return_validates_its_arguments():
    with pytest.raises(ValueError, match="episodes must be an int >= 1 or None, got int 0"):
        EpisodeReturn("CartPole-v1", episodes=0)
    with pytest.raises(ValueError, match="max_episode_steps must be a positive int, got -5"):
        EpisodeReturn("CartPole-v1", max_episode_steps=-5)
    with pytest.raises(ValueError, match="second_objective must be None, 'length' or a function"):
        EpisodeReturn("CartPole-v1", second_objective="energy")
    with pytest.raises(TypeError, match="needs EpisodeSamples .* got Tensor"):
        EpisodeReturn("CartPole-v1")(torch.nn.Linear(4, 2), torch.zeros(3))
