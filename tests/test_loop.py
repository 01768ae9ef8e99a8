"""es.fit (es_opt/loop.py): the loop, History, stop conditions, callbacks' order, failures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from es_opt import ESOptimizer, Objective, Samples
from es_opt.training import History, fit
from es_opt.training.callbacks import Callback
from tests.conftest import Quadratic, assert_same_params, make_mlp


@dataclass
class Target(Samples):
    value: float


class DistanceToTarget(Objective):
    """Two objectives: closeness to the step's target, and the bias sum (to test columns)."""

    def __call__(self, model, samples):
        flat = torch.cat([p.reshape(-1) for p in model.net.parameters()])
        return [-float((flat - samples.value).square().sum()), float(model.net[0].bias.sum())]


def samples_fn(generation: int) -> Target:
    return Target(value=0.1 * (generation % 3))


def make_es(seed: int = 0, **kwargs) -> ESOptimizer:
    net = make_mlp(seed)
    options = dict(
        objective_fn=DistanceToTarget(),
        obj_weights=[1.0, 0.3],
        sigma=0.05,
        n_samples=8,
        seed=seed,
        optimizer=torch.optim.Adam(net.parameters(), lr=0.02),
    )
    options.update(kwargs)
    return ESOptimizer(net, **options)


class Recorder(Callback):
    def __init__(self, stop_at: int | None = None):
        self.events: list[tuple] = []
        self.stop_at = stop_at

    def on_start(self, es, generations):
        self.events.append(("start", es.generation, generations))

    def on_step(self, es, result):
        self.events.append(("step", result.generation, es.generation))
        return result.generation == self.stop_at

    def on_end(self, es, history):
        self.events.append(("end", len(history), history.stop_reason))


def test_fit_matches_the_hand_written_loop_bit_for_bit():
    by_hand, with_fit = make_es(), make_es()
    results = [by_hand.gradient_step(samples_fn(g)) for g in range(6)]
    history = with_fit.fit(samples_fn, generations=6)
    assert_same_params(by_hand.model.net, with_fit.model.net)
    assert [r.fitness_mean for r in history] == [r.fitness_mean for r in results]
    assert [r.grad_norm for r in history] == [r.grad_norm for r in results]
    assert with_fit.generation == 6 and history.stop_reason == "completed"


def test_samples_fn_sees_the_optimizer_generation_also_when_resumed():
    es = make_es()
    seen: list[int] = []

    def record(generation):
        seen.append(generation)
        return samples_fn(generation)

    es.fit(record, generations=3)
    es.fit(record, generations=2)
    assert seen == [0, 1, 2, 3, 4]


def test_history_columns_equal_the_step_results():
    history = make_es().fit(samples_fn, generations=4)
    assert history.generation.tolist() == [0, 1, 2, 3]
    assert history.n_objectives == 2
    assert history.fitness_mean.shape == (4, 2)
    for i, r in enumerate(history):
        assert history.fitness_mean[i].tolist() == list(r.fitness_mean)
        assert history.fitness_max[i].tolist() == list(r.fitness_max)
        assert history.fitness_min[i].tolist() == list(r.fitness_min)
        assert history.grad_norm[i] == r.grad_norm
        assert history.evals_per_second[i] == r.evals_per_second
        assert history.as_dicts()[i] == r.as_dict()
        # the raw fitness matrix is the source of the summaries
        assert np.allclose(r.fitness.mean(0).numpy(), history.fitness_mean[i], rtol=0, atol=0)
    assert history.best(1) == history.fitness_max[:, 1].max()
    assert history[1:3] == history.results[1:3]
    assert "4 steps, generations 0..3" in repr(history)
    assert repr(History()) == "History(0 steps, 'completed')"
    assert np.isnan(History().best()) and History().fitness_mean.shape == (0, 0)


def test_stop_when_ends_after_the_step_it_saw():
    es = make_es()
    history = es.fit(samples_fn, generations=10, stop_when=lambda r: r.generation == 2)
    assert len(history) == 3 and es.generation == 3
    assert history.stop_reason == "stop_when returned True at generation 2"


def test_callback_hooks_run_in_order_and_a_callback_can_stop_the_run():
    first, second = Recorder(stop_at=1), Recorder()
    history = make_es().fit(samples_fn, generations=5, callbacks=[first, second])
    assert second.events == [
        ("start", 0, 5),
        ("step", 0, 1),
        ("step", 1, 2),
        ("end", 2, "Recorder stopped at generation 1"),
    ]
    assert first.events == second.events
    assert history.stop_reason == "Recorder stopped at generation 1"


def test_zero_generations_runs_no_step_but_the_hooks():
    recorder = Recorder()
    history = make_es().fit(samples_fn, generations=0, callbacks=[recorder])
    assert len(history) == 0
    assert recorder.events == [("start", 0, 0), ("end", 0, "completed")]


class FailsAt(Objective):
    def __init__(self, generation):
        self.generation, self.calls = generation, 0

    def __call__(self, model, samples):
        if samples.value == self.generation:
            raise RuntimeError("sensor offline")
        return -float(sum(p.square().sum() for p in model.net.parameters()))


def test_a_failing_step_ends_the_callbacks_and_reraises_with_state_untouched():
    es = make_es(objective_fn=FailsAt(3), obj_weights=[1.0])
    recorder = Recorder()
    snapshot: dict = {}

    def samples(generation):
        if generation == 3:
            snapshot.update({n: p.detach().clone() for n, p in es.model.net.named_parameters()})
        return Target(value=generation)

    with pytest.raises(Exception, match="sensor offline") as info:
        es.fit(samples, generations=6, callbacks=[recorder])
    assert recorder.events[-1][0] == "end"
    assert recorder.events[-1][1] == 3
    assert recorder.events[-1][2].startswith("error: EvaluationError")
    assert es.generation == 3
    assert_same_params(snapshot, es.model.net)
    assert info.value.index == 0


def test_on_end_failure_of_one_callback_does_not_skip_the_others():
    class Broken(Callback):
        def on_end(self, es, history):
            raise OSError("disk full")

    recorder = Recorder()
    with pytest.raises(OSError, match="disk full"):
        make_es().fit(samples_fn, generations=1, callbacks=[Broken(), recorder])
    assert recorder.events[-1] == ("end", 1, "completed")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(generations=-1), ValueError, "generations must be an int >= 0, got -1"),
        (dict(generations="10"), TypeError, "generations must be an int >= 0, got str '10'"),
        (dict(generations=True), TypeError, "generations must be an int >= 0, got bool True"),
        (dict(samples_fn=Target(0.0)), TypeError, "samples_fn must be a callable generation"),
        (
            dict(callbacks=[print]),
            TypeError,
            r"callbacks\[0\] must be an es_opt.Callback",
        ),
        (dict(callbacks=3), TypeError, "callbacks must be a list of Callback objects, got 3"),
        (dict(stop_when=5), TypeError, "stop_when must be a callable result -> bool, got 5"),
    ],
)
def test_bad_arguments_raise_before_any_step(kwargs, error, message):
    es = make_es()
    before = {n: p.detach().clone() for n, p in es.model.net.named_parameters()}
    args = dict(samples_fn=samples_fn, generations=2)
    args.update(kwargs)
    with pytest.raises(error, match=message):
        es.fit(**args)
    assert es.generation == 0
    assert_same_params(before, es.model.net)


def test_fit_function_and_method_and_a_single_callback_are_the_same_loop():
    a, b = (
        make_es(objective_fn=Quadratic(), obj_weights=[1.0]),
        make_es(objective_fn=Quadratic(), obj_weights=[1.0]),
    )
    recorder = Recorder()
    fit(a, None, 3, recorder)
    b.fit(generations=3)
    assert_same_params(a.model.net, b.model.net)
    assert [e[0] for e in recorder.events] == ["start", "step", "step", "step", "end"]
