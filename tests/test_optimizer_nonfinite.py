"""``ESOptimizer(nonfinite=...)``: a NaN or ±inf fitness either raises (the default, nothing
changes) or ranks below every finite member (``"worst"``), for every search distribution and
backend; a generation without a finite member changes nothing but the generation counter."""

import copy
import math

import pytest
import torch

from es_opt import ESOptimizer, Objective

from .conftest import assert_same_params, make_mlp, trainable_state

DISTRIBUTIONS = ["openai", "pgpe", "snes", "cma", "sep_cma", "cem"]


class Spiky(Objective):
    """−Σθ², but ``bad`` (NaN, ±inf or a finite stand-in) for members whose first weight is
    above ``threshold``: a function of the member only, so any backend sees the same values."""

    def __init__(self, bad, threshold=None):
        # by default the centre's own first weight: about half of the members are bad
        self.bad = bad
        if threshold is None:
            threshold = float(make_mlp()[0].weight[0, 0].detach())
        self.threshold = threshold

    def __call__(self, model, samples):
        params = list(model.net.parameters())
        if float(params[0].flatten()[0]) > self.threshold:
            return self.bad
        return -float(sum(p.detach().square().sum() for p in params))


def make(distribution, objective, *, weights=(1.0,), nonfinite="worst", **kw):
    net = make_mlp()
    es = ESOptimizer(
        net,
        torch.optim.SGD(
            net.parameters(), lr=1.0 if distribution in ("cma", "sep_cma", "cem") else 0.1
        ),
        objective,
        obj_weights=weights,
        sigma=0.3,
        n_samples=12,
        seed=3,
        distribution=distribution,
        nonfinite=nonfinite,
        **kw,
    )
    return net, es


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_worst_ranks_nonfinite_members_as_the_lowest_finite_value_would(distribution, bad):
    """The run equals, bit for bit, one whose objective returns a value below every finite
    one for the same members (ties among them included)."""
    net_a, es_a = make(distribution, Spiky(bad))
    net_b, es_b = make(distribution, Spiky(-1e9))
    counts = []
    for _ in range(4):
        result = es_a.gradient_step()
        es_b.gradient_step()
        counts.append(result.nonfinite)
        assert_same_params(net_a, net_b)
        assert repr(es_a.state_dict()["distribution_state"]) == repr(
            es_b.state_dict()["distribution_state"]
        )
    assert sum(counts) > 0 and all(c < 12 for c in counts)  # the case is exercised


def test_worst_respects_a_minimised_objective():
    """With a negative weight the worst value is the largest: NaN members rank like +1e9."""
    net_a, es_a = make("openai", Spiky(float("nan")), weights=(-1.0,))
    net_b, es_b = make("openai", Spiky(1e9), weights=(-1.0,))
    net_c, es_c = make("openai", Spiky(-1e9), weights=(-1.0,))
    for _ in range(3):
        es_a.gradient_step(), es_b.gradient_step(), es_c.gradient_step()
    assert_same_params(net_a, net_b)
    assert not torch.equal(net_a[0].weight, net_c[0].weight)


def test_step_result_counts_nonfinite_members_and_leaves_them_out_of_the_statistics():
    _, es = make("openai", Spiky(float("nan")))
    result = es.gradient_step()
    raw = result.fitness[:, 0]
    finite = raw[torch.isfinite(raw)]
    assert result.nonfinite == int((~torch.isfinite(raw)).sum()) > 0
    assert result.fitness_max == (float(finite.max()),)
    assert result.fitness_mean == (float(finite.mean()),)
    assert result.as_dict()["nonfinite"] == result.nonfinite
    assert (
        "nonfinite"
        not in make("openai", Spiky(0.0), nonfinite="raise")[1].gradient_step().as_dict()
    )


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_a_generation_without_a_finite_member_changes_nothing_but_the_generation(distribution):
    net, es = make(distribution, Spiky(-1e9, threshold=0.0))
    es.gradient_step()
    es.gradient_step()
    params, grads = trainable_state(net), {n: p.grad.clone() for n, p in net.named_parameters()}
    state = copy.deepcopy(es.state_dict())
    es.objective_fn = es.evaluator.objective = Spiky(float("nan"), threshold=-math.inf)
    with pytest.warns(RuntimeWarning, match="generation 2: every fitness value is non-finite"):
        result = es.gradient_step()
    assert result.nonfinite == 12 and result.grad_norm == 0.0
    assert all(math.isnan(v) for v in result.fitness_mean + result.fitness_max)
    assert es.generation == 3
    assert_same_params(net, params)
    assert all(torch.equal(p.grad, grads[n]) for n, p in net.named_parameters())
    after = es.state_dict()
    for key in ("distribution_state", "sigma_vector", "optimizer", "sigma", "n_samples"):
        assert repr(after[key]) == repr(state[key]), key
    # the next generation draws new members and updates as usual
    es.objective_fn = es.evaluator.objective = Spiky(-1e9)
    assert es.gradient_step().generation == 3
    assert not torch.equal(net[0].weight, params["0.weight"])


def test_tell_applies_the_policy():
    net_a, es_a = make("cma", Spiky(float("nan")))
    net_b, es_b = make("cma", Spiky(float("nan")))
    for _ in range(3):
        es_a.gradient_step()
        population = es_b.ask()
        fitness = []
        for i in range(len(population)):
            with population.loaded(net_b, i):
                fitness.append(Spiky(float("nan"))(es_b.model, None))
        es_b.tell(torch.tensor(fitness))
    assert_same_params(net_a, net_b)


def test_raise_names_the_objective_and_the_evaluation_and_changes_nothing():
    net, es = make("openai", Spiky(-1e9), nonfinite="raise")
    es.gradient_step()
    params = trainable_state(net)
    es.objective_fn = es.evaluator.objective = Spiky(float("nan"))
    with pytest.raises(
        ValueError,
        match=r"the objective returned a non-finite value \(nan\) "
        r"for evaluation \d+: .*nonfinite='worst'",
    ):
        es.gradient_step()
    assert_same_params(net, params) and es.generation == 1


@pytest.mark.parametrize("bad", ["skip", None, 1])
def test_unknown_policy_is_refused_before_anything_starts(bad):
    with pytest.raises(ValueError, match=rf"nonfinite must be 'raise' or 'worst', got {bad!r}"):
        make("openai", Spiky(0.0), nonfinite=bad)


@pytest.mark.parametrize("sync", ["center", "replay"])
def test_pool_with_nonfinite_members_matches_serial_bit_for_bit(sync):
    net_s, serial = make("snes", Spiky(float("nan")))
    net_p, pool = make("snes", Spiky(float("nan")), backend="multiprocess", n_workers=2, sync=sync)
    with pool:
        for _ in range(3):
            assert serial.gradient_step().nonfinite == pool.gradient_step().nonfinite
        assert_same_params(net_s, net_p)
