"""σ schedules as frozen dataclasses (es_opt/distributions/schedules.py): one serialisation,
``config()``, read back by ``schedule_from_config``, including what earlier releases saved."""

from __future__ import annotations

import dataclasses

import pytest

from es_opt.distributions import ConstantSigma, ExponentialDecay, FunctionSchedule
from es_opt.distributions.schedules import schedule_from_config


def halve(generation, sigma):
    return sigma / 2


@pytest.mark.parametrize(
    "schedule", [ConstantSigma(), ExponentialDecay(0.9), ExponentialDecay(rate=0.5, floor=0.02)]
)
def test_config_round_trips_and_schedules_are_frozen(schedule):
    assert schedule_from_config(schedule.config()) == schedule
    assert hash(schedule_from_config(schedule.config())) == hash(schedule)
    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.rate = 0.1


def test_configs_are_the_saved_format_of_earlier_releases():
    assert ExponentialDecay(rate=0.99, floor=0.01).config() == {
        "kind": "exponential", "rate": 0.99, "floor": 0.01
    }  # fmt: skip
    assert ConstantSigma().config() == {"kind": "constant"}
    assert FunctionSchedule(halve).config() == {"kind": "function", "name": "halve"}
    assert schedule_from_config({"kind": "exponential", "rate": 0.5}) == ExponentialDecay(0.5)
    assert ExponentialDecay(1).rate == 1.0 and isinstance(ExponentialDecay(1).rate, float)


def test_a_function_schedule_is_equal_by_name_and_resolves_to_the_current_one():
    current = FunctionSchedule(halve)
    assert repr(current) == "FunctionSchedule(name='halve')"
    assert current == FunctionSchedule(lambda g, s: s, name="halve")
    assert schedule_from_config(current.config(), current) is current


def test_a_config_with_unknown_fields_is_refused():
    with pytest.raises(ValueError, match=r"'exponential' sigma schedule has no fields \['decay'\]"):
        schedule_from_config({"kind": "exponential", "rate": 0.5, "decay": 2})
    with pytest.raises(ValueError, match="unknown sigma schedule kind 'cosine'"):
        schedule_from_config({"kind": "cosine"})
