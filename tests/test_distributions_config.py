"""Hyperparameter checks (errors name the argument and the value), σ schedules, and the
distributions' config round trips."""

from __future__ import annotations

import math

import pytest
import torch

from es_opt.distributions import (
    PGPE,
    SNES,
    ConstantSigma,
    ExponentialDecay,
    FunctionSchedule,
    OpenAIES,
    check_sigma_vector,
    distribution_from_config,
    make_distribution,
    make_schedule,
    pgpe_step,
    snes_step,
)
from es_opt.distributions.base import default_snes_stdev_lr
from es_opt.distributions.schedules import schedule_from_config
from es_opt.estimator import dense_rows

BAD = [
    (lambda: PGPE(stdev_lr=-0.1), ValueError, r"stdev_lr must be .*>= 0.*got -0\.1"),
    (lambda: PGPE(stdev_lr=math.nan), ValueError, r"stdev_lr .*got nan"),
    (lambda: PGPE(stdev_lr="0.1"), TypeError, r"stdev_lr .*got str '0\.1'"),
    (lambda: PGPE(stdev_max_change=0.0), ValueError, r"stdev_max_change .*> 0.*got 0\.0"),
    (lambda: PGPE(stdev_max_change=1.0), ValueError, r"stdev_max_change .*< 1.*got 1\.0"),
    (lambda: PGPE(stdev_min=0.0), ValueError, r"stdev_min must be .*> 0, got 0\.0"),
    (lambda: PGPE(stdev_max=-1), ValueError, r"stdev_max must be .*> 0, got -1"),
    (lambda: PGPE(stdev_min=0.5, stdev_max=0.1), ValueError,
     r"stdev_min must be <= stdev_max, got stdev_min=0\.5 and stdev_max=0\.1"),
    (lambda: SNES(stdev_lr=0.0), ValueError, r"stdev_lr must be .*> 0, got 0\.0"),
    (lambda: SNES(stdev_lr=math.inf), ValueError, r"stdev_lr .*got inf"),
    (lambda: SNES(utilities="ranks"), ValueError, r"utilities must be one of 'nes', 'shaped', "
     r"got 'ranks'"),
    (lambda: SNES(stdev_min=2.0, stdev_max=1.0), ValueError, r"stdev_min must be <= stdev_max"),
    (lambda: make_distribution("xnes"), ValueError,
     r"distribution must be one of 'openai', 'pgpe', 'snes', 'cma', 'sep_cma', 'cem' or a "
     r"SearchDistribution, got 'xnes'"),
    (lambda: make_distribution(3), TypeError, r"distribution must be .*got int 3"),
    (lambda: make_distribution(PGPE), TypeError, r"got the class PGPE: use PGPE\(\) or 'pgpe'"),
    (lambda: OpenAIES(sigma_schedule="cosine"), ValueError, r"sigma_schedule must be .*'cosine'"),
    (lambda: ExponentialDecay(rate=0.0), ValueError, r"rate must be .*> 0.*got 0\.0"),
    (lambda: ExponentialDecay(rate=1.5), ValueError, r"rate must be .*<= 1.*got 1\.5"),
    (lambda: ExponentialDecay(rate=0.9, floor=-0.1), ValueError, r"floor must be .*got -0\.1"),
    (lambda: FunctionSchedule(0.5), TypeError, r"function must be callable .*got float 0\.5"),
    (lambda: distribution_from_config({"name": "xnes"}), ValueError,
     r"distribution's state must be a dict named one of .*'xnes'"),
]  # fmt: skip


@pytest.mark.parametrize("build, error, match", BAD)
def test_bad_hyperparameters_are_refused(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize(
    "sigma, match",
    [
        (torch.tensor([0.1, 0.0]), r"sigma must hold finite values > 0, got 0\.0 at index 1"),
        (torch.tensor([-0.1, 0.2]), r"got -0\.1.* at index 0"),
        (torch.tensor([0.1, math.nan]), r"got nan at index 1"),
    ],
)
def test_a_bad_sigma_vector_is_refused(sigma, match):
    with pytest.raises(ValueError, match=match):
        check_sigma_vector("sigma", sigma)
    z = torch.ones(1, 2)
    with pytest.raises(ValueError, match=match):
        pgpe_step(torch.tensor([1.0, 0.0]), dense_rows(z), sigma, stdev_lr=0.1)
    with pytest.raises(ValueError, match=match):
        snes_step(torch.tensor([1.0, 0.0]), dense_rows(z), sigma, stdev_lr=0.1)


def test_sigma_must_be_a_float_vector():
    with pytest.raises(TypeError, match=r"sigma must be a 1-D floating-point tensor, got \(2, 2\)"):
        check_sigma_vector("sigma", torch.ones(2, 2))
    with pytest.raises(TypeError, match=r"got float"):
        check_sigma_vector("sigma", 0.1)


def test_pgpe_without_a_change_limit_refuses_a_nonpositive_sigma():
    z = torch.tensor([[0.0], [3.0]])  # the good pair sampled close, the bad one far
    with pytest.raises(ValueError, match=r"PGPE's updated sigma .*stdev_max_change"):
        pgpe_step(torch.tensor([0.5, 0.5, -0.5, -0.5]), dense_rows(z),
                  torch.tensor([0.1]), stdev_lr=10.0, stdev_max_change=None)  # fmt: skip


def test_odd_scores_are_refused():
    with pytest.raises(ValueError, match=r"whole antithetic pairs, got 3 values"):
        pgpe_step(torch.zeros(3), dense_rows(torch.ones(1, 2)), torch.ones(2), stdev_lr=0.1)


@pytest.mark.parametrize(
    "distribution",
    [
        OpenAIES(),
        OpenAIES(sigma_schedule=ExponentialDecay(rate=0.99, floor=0.01)),
        PGPE(stdev_lr=0.05, stdev_max_change=None, stdev_min=1e-3, stdev_max=1.0),
        SNES(),
        SNES(stdev_lr=0.3, utilities="shaped", stdev_max_change=0.5),
    ],
    ids=repr,
)
def test_config_round_trips(distribution):
    config = distribution.config()
    torch.save(config, buffer := __import__("io").BytesIO())
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert distribution_from_config(loaded) == distribution
    assert make_distribution(distribution) is distribution


def test_names_build_the_defaults():
    assert make_distribution("openai") == OpenAIES()
    assert make_distribution("pgpe") == PGPE(stdev_lr=0.1, stdev_max_change=0.2)
    assert make_distribution("snes") == SNES()
    assert PGPE() != SNES()


def test_snes_default_learning_rate_is_the_papers():
    for d in (1, 10, 1000):
        assert default_snes_stdev_lr(d) == (3 + math.log(d)) / (5 * math.sqrt(d))
    assert SNES().stdev_lr_for(100) == default_snes_stdev_lr(100)
    assert SNES(stdev_lr=0.7).stdev_lr_for(100) == 0.7


def test_schedules():
    assert [ConstantSigma()(g, 0.2) for g in (0, 10**6)] == [0.2, 0.2]
    decay = ExponentialDecay(rate=0.99, floor=0.05)
    assert decay(0, 0.1) == 0.1
    assert decay(10, 0.1) == 0.1 * 0.99**10
    assert decay(1000, 0.1) == 0.05
    with pytest.raises(ValueError, match=r"reached sigma 0 at generation 100000"):
        ExponentialDecay(rate=0.5)(100000, 0.1)
    with pytest.raises(ValueError, match=r"generation must be an int >= 0, got -1"):
        decay(-1, 0.1)
    es = OpenAIES(sigma_schedule=decay)
    assert es.sigma_at(10, 0.1) == decay(10, 0.1)
    assert OpenAIES().sigma_at(10, 0.1) == 0.1


def test_function_schedules_are_saved_by_name():
    def step_down(generation, sigma):
        return sigma if generation < 5 else sigma / 10

    distribution = OpenAIES(sigma_schedule=step_down)
    assert distribution.sigma_at(4, 0.1) == 0.1 and distribution.sigma_at(5, 0.1) == 0.1 / 10
    config = distribution.config()
    assert config["sigma_schedule"] == {"kind": "function", "name": "step_down"}
    # resolved by the current distribution's function of the same name ...
    assert distribution_from_config(config, distribution).sigma_schedule.function is step_down
    # ... and refused without it
    with pytest.raises(ValueError, match=r"sigma schedule is the function 'step_down'"):
        distribution_from_config(config, OpenAIES())
    with pytest.raises(ValueError, match=r"unknown sigma schedule kind 'cosine'"):
        schedule_from_config({"kind": "cosine"})


def test_a_function_schedule_must_return_a_positive_sigma():
    schedule = make_schedule(lambda generation, sigma: sigma - generation)
    assert schedule(0, 1.0) == 1.0
    with pytest.raises(ValueError, match=r"sigma schedule '<lambda>' at generation 2 .*got -1"):
        schedule(2, 1.0)
