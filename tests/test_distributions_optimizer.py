"""ESOptimizer(distribution=...): per-parameter σ in the step, the state dict and checkpoints; exact
resume; all or nothing; worker-count invariance (serial, pool with 1, 2, 3 workers, Ray)."""

from __future__ import annotations

import copy

import pytest
import torch

from es_opt import ESOptimizer, Model, SamplingStrategy
from es_opt.distributions import PGPE, SNES, ExponentialDecay, OpenAIES
from es_opt.training.checkpoint import load_checkpoint, save_checkpoint

from .conftest import Quadratic, make_mlp, trainable_state
from .test_evaluators_pool import make_es, run

ADAPTIVE = ["pgpe", "snes"]


def build(distribution="openai", *, strategy=SamplingStrategy.ALL, objective=None, **kwargs):
    net = make_mlp(sizes=(3, 4, 2))
    return ESOptimizer(
        Model(net, strategy),
        torch.optim.Adam(net.parameters(), lr=0.05),
        objective_fn=Quadratic() if objective is None else objective,
        sigma=0.1,
        n_samples=8,
        seed=5,
        distribution=distribution,
        **kwargs,
    )


def steps(es, n):
    for _ in range(n):
        es.gradient_step()
    return trainable_state(es.model.net)


def test_default_is_openai_and_unchanged():
    a, b = build(), build(OpenAIES())
    assert a.distribution == OpenAIES() and a.sigma_vector is None
    assert a.state_dict()["distribution"] == {"name": "openai",
                                              "sigma_schedule": {"kind": "constant"}}  # fmt: skip
    sa, sb = steps(a, 4), steps(b, 4)
    assert all(torch.equal(sa[n], sb[n]) for n in sa)


@pytest.mark.parametrize("name", ADAPTIVE)
def test_adaptive_sigma_moves_and_is_used(name):
    es = build(name)
    n_params = sum(p.numel() for p in es.model.net.parameters())
    assert torch.equal(es.sigma_vector, torch.full((n_params,), 0.1))
    population = es.ask()
    assert torch.equal(population.sigma, es.sigma_vector)
    member = population.parameters(0) - population.center
    torch.testing.assert_close(member, 0.1 * population.perturbation(0))
    es.tell(torch.randn(8, generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(es.sigma_vector, torch.full((n_params,), 0.1))
    assert bool((es.sigma_vector > 0).all())
    # the next generation's members use the new σ
    population = es.ask()
    torch.testing.assert_close(population.parameters(2) - population.center,
                               es.sigma_vector * population.perturbation(1))  # fmt: skip


@pytest.mark.parametrize("name", ADAPTIVE)
def test_resume_is_bit_exact(name, tmp_path):
    straight = build(name)
    expected = steps(straight, 6)
    first = build(name)
    steps(first, 3)
    save_checkpoint(tmp_path / "run.pt", first)
    second = build("openai")  # the checkpoint brings its own distribution
    load_checkpoint(tmp_path / "run.pt", second)
    assert second.distribution == first.distribution
    assert torch.equal(second.sigma_vector, first.sigma_vector)
    got = steps(second, 3)
    assert all(torch.equal(got[n], expected[n]) for n in got)
    assert torch.equal(second.sigma_vector, straight.sigma_vector)


def test_state_dict_round_trips_hyperparameters():
    es = build(SNES(stdev_lr=0.3, stdev_max=1.0))
    steps(es, 2)
    other = build("pgpe")
    other.load_state_dict(copy.deepcopy(es.state_dict()))
    assert other.distribution == SNES(stdev_lr=0.3, stdev_max=1.0)


def test_old_state_dicts_resume_as_openai():
    reference = build()
    steps(reference, 2)
    state = copy.deepcopy(reference.state_dict())  # the optimizers must not share buffers
    for key in ("distribution", "sigma_vector"):
        state.pop(key)
    es = build("pgpe")
    es.model.net.load_state_dict(reference.model.net.state_dict())
    es.load_state_dict(state)
    assert es.distribution == OpenAIES() and es.sigma_vector is None
    a, b = steps(reference, 2), steps(es, 2)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_a_bad_sigma_vector_in_a_state_dict_is_refused_before_anything_changes():
    es = build("pgpe")
    state = es.state_dict()
    before = es.sigma_vector.clone()
    with pytest.raises(
        ValueError, match=r"one value per trainable parameter \(26 parameters\), got 3"
    ):
        es.load_state_dict(dict(state, sigma_vector=torch.ones(3)))
    with pytest.raises(ValueError, match=r"sigma_vector must hold finite values > 0"):
        es.load_state_dict(dict(state, sigma_vector=torch.zeros_like(before)))
    assert torch.equal(es.sigma_vector, before) and es.distribution == PGPE()


class Failing(Quadratic):
    def __init__(self, fail_at):
        super().__init__()
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, model, samples):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("objective failed")
        return super().__call__(model, samples)


@pytest.mark.parametrize("name", ADAPTIVE)
def test_a_failed_step_leaves_sigma_unchanged(name):
    es = build(name, objective=Failing(fail_at=8 + 5))
    steps(es, 1)
    sigma, params = es.sigma_vector.clone(), trainable_state(es.model.net)
    with pytest.raises(Exception, match="objective failed"):
        es.gradient_step()
    assert torch.equal(es.sigma_vector, sigma) and es.generation == 1
    assert all(torch.equal(v, params[n]) for n, v in trainable_state(es.model.net).items())


@pytest.mark.parametrize("name", ADAPTIVE)
def test_an_inner_optimizer_error_leaves_sigma_unchanged(name):
    es = build(name)
    steps(es, 1)
    sigma = es.sigma_vector.clone()

    def broken(*args, **kwargs):
        raise RuntimeError("inner optimizer failed")

    es.optimizer.step = broken
    with pytest.raises(RuntimeError, match="inner optimizer failed"):
        es.gradient_step()
    assert torch.equal(es.sigma_vector, sigma) and es.generation == 1


def test_layer_sampling_updates_only_the_selected_slices():
    es = build("pgpe", strategy=SamplingStrategy.RANDOM)
    sizes = [p.numel() for p in es.model.net.parameters()]
    before = es.sigma_vector.clone()
    population = es.ask()
    es.tell(torch.arange(8.0))
    names = list(dict(es.model.net.named_parameters()))
    changed, offset = [], 0
    for name, size in zip(names, sizes, strict=True):
        if not torch.equal(es.sigma_vector[offset : offset + size], before[offset : offset + size]):
            changed.append(name)
        offset += size
    assert changed and set(changed) <= set(population.names)
    assert population.sigma.numel() == population.dim


@pytest.mark.parametrize("name", ["pgpe", "snes", "cem", "cma", "sep_cma"])
def test_low_rank_refuses_a_distribution_that_adapts_sigma_or_a_covariance(name):
    with pytest.raises(ValueError, match=rf"distribution='{name}' needs dense perturbations"):
        build(name, perturbation="lowrank")
    build(OpenAIES(sigma_schedule=ExponentialDecay(0.9, floor=0.01)), perturbation="lowrank")


def test_bad_distribution_arguments():
    with pytest.raises(ValueError, match=r"distribution must be one of 'openai', 'pgpe', 'snes'"):
        build("xnes")
    with pytest.raises(TypeError, match=r"distribution must be .*got int 1"):
        build(1)


def test_sigma_schedule_drives_the_population_and_resumes():
    es = build(OpenAIES(sigma_schedule=ExponentialDecay(rate=0.5, floor=0.02)))
    sigmas = []
    for _ in range(4):
        sigmas.append(es.ask().sigma)
        es.tell(torch.arange(8.0))
    assert sigmas == [0.1, 0.05, 0.025, 0.02]
    fresh = build("openai")
    fresh.load_state_dict(es.state_dict())
    assert fresh.ask().sigma == 0.02


def test_a_function_schedule_needs_the_function_to_resume():
    def halve(generation, sigma):
        return sigma / 2 ** min(generation, 3)

    es = build(OpenAIES(sigma_schedule=halve))
    steps(es, 1)
    with pytest.raises(ValueError, match=r"function 'halve'"):
        build().load_state_dict(es.state_dict())
    again = build(OpenAIES(sigma_schedule=halve))
    again.load_state_dict(es.state_dict())
    assert again.ask().sigma == 0.05


# -- worker-count invariance --------------------------------------------------------------------
@pytest.fixture(scope="module")
def serial_pgpe():
    es = make_es(strategy=SamplingStrategy.RANDOM, distribution="pgpe")
    return run(es, 4), es.sigma_vector.clone()


@pytest.mark.parametrize("n_workers", [1, 2, 3])
def test_pool_is_bit_identical_to_serial(serial_pgpe, n_workers):
    with make_es("multiprocess", strategy=SamplingStrategy.RANDOM, distribution="pgpe",
                 n_workers=n_workers) as es:  # fmt: skip
        state = run(es, 4)
        assert all(torch.equal(state[n], serial_pgpe[0][n]) for n in state)
        assert torch.equal(es.sigma_vector, serial_pgpe[1])


@pytest.mark.ray
def test_ray_is_bit_identical_to_serial(serial_pgpe):
    pytest.importorskip("ray")
    with make_es("ray", strategy=SamplingStrategy.RANDOM, distribution="pgpe", n_workers=2) as es:
        state = run(es, 4)
        assert all(torch.equal(state[n], serial_pgpe[0][n]) for n in state)
        assert torch.equal(es.sigma_vector, serial_pgpe[1])
