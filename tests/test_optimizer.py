import copy
import io
import math

import pytest
import torch
from torch import nn

from es_opt import ESOptimizer, EvaluationError, Model, Objective, SamplingStrategy
from es_opt.shaping import TopPairs

from .conftest import Quadratic, assert_same_params, make_mlp, trainable_state


def make_es(net=None, *, strategy=SamplingStrategy.ALL, objective=None, seed=0, lr=0.05, **kw):
    net = make_mlp() if net is None else net
    opts = dict(sigma=0.05, n_samples=20, seed=seed)
    opts.update(kw)
    optimizer = opts.pop("optimizer", None) or torch.optim.SGD(net.parameters(), lr=lr)
    return ESOptimizer(
        Model(net, strategy), optimizer=optimizer, objective_fn=objective or Quadratic(), **opts
    )


def run(es, steps):
    for _ in range(steps):
        es.gradient_step()
    return trainable_state(es.model.net)


def test_reduces_a_quadratic_to_near_its_minimum():
    es = make_es(n_samples=40, sigma=0.02, lr=0.02)
    start = Quadratic()(es.model, None)
    run(es, 300)
    end = Quadratic()(es.model, None)
    assert start < -1.0 and end > -0.05 * abs(start), (start, end)


@pytest.mark.parametrize("strategy", list(SamplingStrategy))
def test_only_selected_layer_moves_and_other_grads_are_none(strategy):
    es = make_es(strategy=strategy)
    for step in range(4):
        before = trainable_state(es.model.net)
        chosen = es.model.selected_names(step, es.seed)
        result = es.gradient_step()
        after = trainable_state(es.model.net)
        for name, param in es.model.net.named_parameters():
            moved = not torch.equal(before[name], after[name])
            assert moved == (name in chosen), (strategy, step, name)
            assert (param.grad is not None) == (name in chosen)
        expected_layers = tuple(es.model.layers[i].name for i in es.model.selected_layers(step, 0))
        assert result.layers == expected_layers and result.generation == step


class Twin(Objective):
    """Two objectives with the same value."""

    def __call__(self, model, samples):
        v = Quadratic()(model, samples)
        return [v, v]


def test_opposite_weights_on_equal_objectives_leave_parameters_unchanged():
    es = make_es(objective=Twin(), obj_weights=[1.0, -1.0])
    before = trainable_state(es.model.net)
    run(es, 3)
    assert_same_params(before, es.model.net)


def test_half_weights_on_twin_objectives_equal_one_objective():
    a = make_es(objective=Twin(), obj_weights=[0.5, 0.5])
    b = make_es(objective=Quadratic(), obj_weights=[1.0])
    assert_same_params(run(a, 5), run(b, 5))


def test_same_seed_is_bit_identical_and_different_seed_differs():
    a, b, c = (make_es(seed=s, strategy="random") for s in (3, 3, 4))
    assert_same_params(run(a, 20), run(b, 20))
    with pytest.raises(AssertionError):
        assert_same_params(run(c, 20), a.model.net)


@pytest.mark.parametrize("strategy", [SamplingStrategy.ALL, SamplingStrategy.RANDOM])
def test_resume_from_weights_only_checkpoint_is_bit_identical(strategy):
    def fresh():
        net = make_mlp()
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        return make_es(net, strategy=strategy, optimizer=opt)

    straight = fresh()
    run(straight, 20)

    first = fresh()
    run(first, 10)
    buffer = io.BytesIO()
    torch.save({"net": first.model.net.state_dict(), "es": first.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = fresh()
    resumed.model.net.load_state_dict(saved["net"])
    resumed.load_state_dict(saved["es"])
    assert resumed.generation == 10
    run(resumed, 10)
    assert_same_params(straight.model.net, resumed.model.net)


@pytest.mark.parametrize("shaping", ["top_pairs(3)", TopPairs(3), lambda f: f.double() * 2.0])
def test_resume_keeps_a_parametrised_or_custom_shaping(shaping):
    straight = make_es(shaping=shaping)
    run(straight, 6)
    first = make_es(shaping=shaping)
    run(first, 3)
    state = first.state_dict()
    resumed = make_es(shaping=shaping)
    resumed.model.net.load_state_dict(first.model.net.state_dict())
    resumed.optimizer.load_state_dict(first.optimizer.state_dict())
    resumed.load_state_dict(state)
    run(resumed, 3)
    assert_same_params(straight.model.net, resumed.model.net)
    # a string names the same shaping: a plain ESOptimizer restores it from the state alone
    plain = make_es()
    plain.load_state_dict(make_es(shaping="top_pairs(3)").state_dict())
    assert plain.shaping_name == "top_pairs(3)" and isinstance(plain._shape, TopPairs)


def test_top_pairs_string_and_instance_give_the_same_run():
    assert_same_params(
        run(make_es(shaping="top_pairs(4)"), 5), run(make_es(shaping=TopPairs(4)), 5)
    )
    with pytest.raises(AssertionError):  # and top_pairs really selects: differs from all pairs
        assert_same_params(
            run(make_es(shaping="top_pairs(4)"), 5), run(make_es(shaping="top_pairs(10)"), 5)
        )


def test_ask_tell_equals_gradient_step():
    a, b = make_es(seed=9, strategy="bottom_up"), make_es(seed=9, strategy="bottom_up")
    for _ in range(6):
        a.gradient_step()
        population = b.ask()
        fitness = []
        net = copy.deepcopy(b.model.net)  # evaluate "elsewhere": on a copy of the net
        for i in range(len(population)):
            with population.loaded(net, i):
                fitness.append(Quadratic()(Model(net), None))
        b.tell(fitness)
    assert_same_params(a.model.net, b.model.net)
    assert a.generation == b.generation == 6


def test_tell_without_ask_and_with_wrong_shape():
    es = make_es()
    with pytest.raises(RuntimeError, match="call ask"):
        es.tell([0.0] * 20)
    es.ask()
    with pytest.raises(ValueError, match=r"shape \[20, n_objectives\]"):
        es.tell([0.0] * 19)


def test_default_inner_optimizer_and_ancestor_keyword():
    net = make_mlp()
    es = ESOptimizer(Model(net), objective_fn=Quadratic(), n_samples=4)
    assert type(es.optimizer).__name__ == "RangerLite"
    group = es.optimizer.param_groups[0]
    assert group["lr"] == 0.01 and tuple(group["betas"]) == (0.9, 0.9)
    assert {id(p) for p in group["params"]} == {id(p) for p in net.parameters()}
    sgd = torch.optim.SGD(net.parameters(), lr=0.1)
    es2 = ESOptimizer(Model(net), sgd_optimizer=sgd, objective_fn=Quadratic(), n_samples=4)
    assert es2.optimizer is sgd and es2.sgd_optimizer is sgd


def test_result_reports_raw_fitness_statistics():
    es = make_es(objective=Twin(), obj_weights=[1.0, 0.0])
    result = es.gradient_step()
    assert result.fitness.shape == (20, 2)
    assert result.fitness_mean[0] == pytest.approx(float(result.fitness[:, 0].mean()))
    assert result.fitness_max[1] == float(result.fitness[:, 1].max())
    assert result.fitness_min[0] == float(result.fitness[:, 0].min())
    assert result.grad_norm > 0 and math.isfinite(result.grad_norm)


# -- bad input --------------------------------------------------------------------------------
def _other_optimizer():
    return torch.optim.SGD(nn.Linear(3, 4).parameters(), lr=0.1)


CONSTRUCTOR_ERRORS = [
    (dict(sigma=0.0), ValueError, "sigma must be a finite number > 0, got 0.0"),
    (dict(sigma=-1.0), ValueError, "sigma must be a finite number > 0, got -1.0"),
    (dict(sigma=float("nan")), ValueError, "sigma must be a finite number > 0, got nan"),
    (dict(sigma=float("inf")), ValueError, "sigma must be a finite number > 0, got inf"),
    (dict(sigma="0.1"), TypeError, "sigma must be a finite number > 0, got str '0.1'"),
    (dict(n_samples=7), ValueError, "n_samples must be an even int >= 2.*got 7"),
    (dict(n_samples=0), ValueError, "n_samples must be an even int >= 2.*got 0"),
    (dict(n_samples=10.0), TypeError, "n_samples must be an even int >= 2, got float"),
    (dict(obj_weights=[]), ValueError, "obj_weights must hold at least one weight"),
    (dict(obj_weights=[1.0, float("nan")]), ValueError, r"obj_weights must be finite"),
    (dict(obj_weights=[0.0, 0.0]), ValueError, r"obj_weights are all zero"),
    (dict(objective_fn=42), TypeError, "objective_fn must be an es_opt.Objective or a callable"),
    (dict(optimizer=_other_optimizer()), ValueError, "does not hold the model's parameter '0.w"),
    (dict(shaping="softmax"), ValueError, "shaping must be one of"),
    (dict(backend="mpi"), ValueError, "backend must be one of"),
    (dict(seed=-1), ValueError, "seed must be an int >= 0, got -1"),
    (dict(seed=1.5), TypeError, "seed must be an int >= 0, got float 1.5"),
    (dict(optimizer=torch.optim.SGD), TypeError, "got the class torch.optim.sgd.SGD: build it"),
    (dict(optimizer="adam"), TypeError, "optimizer must be a torch.optim.Optimizer, got str"),
    (dict(n_worker=2), TypeError, r"unexpected keyword argument\(s\) \['n_worker'\]"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), CONSTRUCTOR_ERRORS)
def test_constructor_rejects_bad_input(kwargs, error, match):
    net = make_mlp()
    opts = dict(
        objective_fn=Quadratic(),
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        sigma=0.1,
        n_samples=4,
    )
    opts.update(kwargs)
    with pytest.raises(error, match=match):
        ESOptimizer(Model(net), **opts)


def test_net_without_trainable_parameters_is_rejected():
    with pytest.raises(ValueError, match="no trainable parameters"):
        ESOptimizer(nn.Linear(2, 2).requires_grad_(False), objective_fn=Quadratic())


class Returns(Objective):
    """Returns ``value`` at evaluation ``at`` (counted per step), a good score elsewhere."""

    def __init__(self, value, at=3):
        self.value, self.at, self.calls = value, at, 0

    def __call__(self, model, samples):
        index, self.calls = self.calls, self.calls + 1
        if index % 20 == self.at:
            if isinstance(self.value, Exception):
                raise self.value
            return self.value
        return Quadratic()(model, samples)


STEP_ERRORS = [
    (Returns(float("nan")), ValueError, r"returned a non-finite value \(nan\) for evaluation 3"),
    (Returns(float("inf")), ValueError, r"returned a non-finite value \(inf\) for evaluation 3"),
    (Returns("high"), TypeError, r"evaluation 3\) must return a float.*got str"),
    (Returns(torch.zeros(2, 2)), ValueError, r"evaluation 3\) returned a 2-D tensor"),
    (Returns([1.0, 2.0]), ValueError, "returned 2 values at evaluation 3 but 1 at evaluation 0"),
    (Returns(RuntimeError("simulator crashed")), EvaluationError, "simulator crashed"),
    (Twin(), ValueError, r"obj_weights has 1 weight\(s\) \[1.0\] but the objective returns 2"),
]


@pytest.mark.parametrize(("objective", "error", "match"), STEP_ERRORS)
def test_failing_step_raises_and_changes_nothing(objective, error, match):
    net = make_mlp()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    es = make_es(net, objective=Quadratic(), optimizer=optimizer)
    es.gradient_step()  # populate grads and optimizer state
    params = trainable_state(net)
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    opt_state = copy.deepcopy(optimizer.state_dict())
    es.objective_fn = objective
    es.evaluator.objective = objective
    with pytest.raises(error, match=match) as info:
        es.gradient_step()
    if error is EvaluationError:
        assert info.value.index == 3 and "simulator crashed" in info.value.worker_traceback
    assert_same_params(params, net)
    assert all(torch.equal(grads[n], p.grad) for n, p in net.named_parameters())
    assert _same_state(opt_state, optimizer.state_dict())
    assert es.generation == 1
    es.objective_fn = es.evaluator.objective = Quadratic()
    es.gradient_step()  # the next step works
    assert es.generation == 2


def _same_state(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_state(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_plain_callables_are_objectives_and_lambdas_work():
    net = make_mlp()
    es = ESOptimizer(
        net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        objective_fn=lambda model, samples: float(model.net[0].weight.sum()),
        n_samples=10,
        sigma=0.1,
    )
    before = float(net[0].weight.detach().sum())
    run(es, 5)
    assert float(net[0].weight.detach().sum()) > before


def test_closed_optimizer_refuses_to_step_and_close_twice_is_harmless():
    es = make_es()
    es.gradient_step()
    es.close()
    es.close()
    with pytest.raises(RuntimeError, match="closed"):
        es.gradient_step()


# -- guards of the ask/tell path and of the inner optimizer's step ------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_tell_refuses_non_finite_fitness_and_changes_nothing(bad):
    net = make_mlp()
    es = make_es(net, n_samples=6)
    es.gradient_step()
    params = trainable_state(net)
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    population = es.ask()
    fitness = torch.arange(6.0)
    fitness[3] = bad
    with pytest.raises(ValueError, match=rf"non-finite value \({bad}\) for evaluation 3"):
        es.tell(fitness)
    assert es.generation == 1
    assert_same_params(net, params)
    assert all(torch.equal(p.grad, grads[n]) for n, p in net.named_parameters())
    # the population is still pending: a corrected fitness completes the step
    fitness[3] = 3.0
    assert es.tell(fitness).generation == population.generation == 1


class FailingStep(torch.optim.SGD):
    def step(self, closure=None):
        raise RuntimeError("the inner optimizer failed")


def test_an_inner_optimizer_that_raises_leaves_every_grad_as_it_was():
    net = make_mlp()
    es = make_es(net, optimizer=FailingStep(net.parameters(), lr=0.1))
    marker = {n: torch.full_like(p, 7.0) for n, p in net.named_parameters()}
    for name, param in net.named_parameters():
        param.grad = marker[name].clone()
    params = trainable_state(net)
    with pytest.raises(RuntimeError, match="the inner optimizer failed"):
        es.gradient_step()
    assert es.generation == 0
    assert_same_params(net, params)
    assert all(torch.equal(p.grad, marker[n]) for n, p in net.named_parameters())


def test_state_is_one_object_and_round_trips_through_state_dict():
    es = make_es(n_samples=8, shaping="z_score", obj_weights=[2.0])
    es.gradient_step()
    saved = es.state_dict()
    other = make_es(n_samples=4)
    other.load_state_dict(saved)
    assert other.state == es.state and other.shaping_name == "z_score"
    with pytest.raises(ValueError, match="sigma must be a finite number > 0, got -1"):
        other.load_state_dict({**saved, "sigma": -1.0, "generation": 99})
    assert other.state == es.state  # nothing changed by the refused load
    with pytest.raises(ValueError, match="n_samples must be an even int >= 2, got 3"):
        es.n_samples = 3
