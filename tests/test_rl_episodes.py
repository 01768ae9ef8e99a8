"""One rule for ``episodes=`` between EpisodeReturn and EpisodeSamples: an explicit number is
never silently overridden (the samples follow the objective, or a mismatch is refused naming
both numbers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from es_opt import ESOptimizer, EvaluationError, Model
from es_opt.rl import EpisodeReturn, EpisodeSamples


def make_es(objective):
    torch.manual_seed(0)
    return ESOptimizer(torch.nn.Linear(4, 2), objective_fn=objective, n_samples=4, seed=0)


def per_seed_returns(net, seeds):
    return [float(EpisodeReturn("CartPole-v1")(Model(net), EpisodeSamples((s,)))[0]) for s in seeds]


def test_the_objectives_explicit_episodes_is_what_every_evaluation_plays():
    objective = EpisodeReturn("CartPole-v1", episodes=4)
    es = make_es(objective)
    samples = EpisodeSamples.for_optimizer(es)  # the case: it used to draw 1 seed
    assert samples.episodes == 4
    returns = per_seed_returns(es.model.net, samples.seeds)
    assert len(set(returns)) > 1  # the four episodes differ, so a 1-episode run would not match
    assert objective(es.model, samples).tolist() == [np.mean(returns)]
    assert EpisodeSamples.for_optimizer(es, episodes=4).seeds == samples.seeds
    es.gradient_step(samples)


def test_samples_with_another_number_of_seeds_are_refused_naming_both_numbers():
    objective = EpisodeReturn("CartPole-v1", episodes=4)
    es = make_es(objective)
    before = [p.detach().clone() for p in es.model.net.parameters()]
    message = r"EpisodeReturn was built with episodes=4 but the samples hold 1 reset seed"
    with pytest.raises(ValueError, match=message):
        objective(es.model, EpisodeSamples.for_generation(0, 0, episodes=1))
    with pytest.raises(EvaluationError, match=message):
        es.gradient_step(EpisodeSamples.for_generation(0, 0))
    assert all(torch.equal(a, b) for a, b in zip(before, es.model.net.parameters(), strict=True))
    assert es.generation == 0
    with pytest.raises(
        ValueError,
        match=r"for_optimizer got episodes=2 but the objective was built with episodes=4",
    ):
        EpisodeSamples.for_optimizer(es, episodes=2)


def test_unset_episodes_plays_as_many_episodes_as_the_samples_hold():
    objective = EpisodeReturn("CartPole-v1")
    es = make_es(objective)
    assert EpisodeSamples.for_optimizer(es).episodes == 1
    samples = EpisodeSamples.for_optimizer(es, episodes=3)
    assert samples.episodes == 3
    returns = per_seed_returns(es.model.net, samples.seeds)
    assert objective(es.model, samples).tolist() == [np.mean(returns)]
    assert objective(es.model, None).tolist() == per_seed_returns(es.model.net, [0])


def test_for_optimizer_without_an_episode_objective_draws_one_seed_unless_told():
    es = ESOptimizer(torch.nn.Linear(4, 2), objective_fn=lambda m, s: 0.0, n_samples=4)
    assert EpisodeSamples.for_optimizer(es).episodes == 1
    assert EpisodeSamples.for_optimizer(es, episodes=5).episodes == 5
    with pytest.raises(ValueError, match="episodes must be an int >= 1 or None, got int 0"):
        EpisodeSamples.for_optimizer(es, episodes=0)
