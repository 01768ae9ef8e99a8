"""Perturbation families inside the ES step: members, the shared-base batched forward, the
estimate, state_dict and resume, all-or-nothing (es_opt/population.py, es_opt/optimizer.py,
es_opt/evaluators/stacked.py)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from es_opt import ESOptimizer, Model, Objective, SamplingStrategy
from es_opt.errors import EvaluationError
from es_opt.evaluators.stacked import StackedModel
from es_opt.perturbations import Dense, LowRank
from es_opt.population import Population

from .conftest import make_mlp, trainable_state

FAMILIES = [Dense(), Dense(noise="philox"), LowRank(1), LowRank(3)]


class MeanOutput(Objective):
    """Both paths: one member at a time, or a stacked population."""

    def __init__(self, inputs: torch.Tensor, vectorize: bool = True):
        self.inputs, self.vectorize = inputs, vectorize

    def __call__(self, model, samples):
        return float(model(self.inputs).tanh().mean())

    def evaluate_population(self, population, samples):
        return population(self.inputs).tanh().mean(dim=(1, 2))


def make_es(family, *, vectorize=True, strategy=SamplingStrategy.ALL, **options):
    net = make_mlp(sizes=(4, 6, 5, 3), dtype=torch.float64)
    inputs = torch.randn(7, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return ESOptimizer(
        Model(net, strategy),
        optimizer=torch.optim.SGD(net.parameters(), lr=0.5),
        objective_fn=MeanOutput(inputs, vectorize),
        sigma=0.1,
        n_samples=10,
        seed=4,
        perturbation=family,
        **options,
    )


@pytest.mark.parametrize("family", FAMILIES, ids=str)
@pytest.mark.parametrize("per_member", [False, True])
def test_stacked_forward_equals_each_member_loaded(family, per_member):
    es = make_es(family)
    pop = es.ask()
    net = es.model.net
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(10, 7, 4, generator=gen, dtype=torch.float64)
    indices = [3, 0, 9, 4, 4]
    stacked = StackedModel(es.model, pop, indices)
    out = stacked(x[: len(indices)], per_member=True) if per_member else stacked(x[0])
    before = trainable_state(net)
    for row, index in enumerate(indices):
        with pop.loaded(net, index):
            expected = net(x[row] if per_member else x[0])
        torch.testing.assert_close(out[row], expected, rtol=1e-12, atol=1e-12)
    after = trainable_state(net)
    assert all(torch.equal(before[n], after[n]) for n in before)  # restored exactly
    if isinstance(family, LowRank):
        assert stacked._stacked is None  # the shared-base path built no member weights


def test_low_rank_members_are_center_plus_sigma_times_rank_r_products():
    es = make_es(LowRank(2))
    pop = es.ask()
    assert pop.family == LowRank(2) and pop.tensor_ids == (0, 1, 2, 3, 4, 5)
    noise = pop.noise([1])
    a, b = LowRank(2).factors(noise[0], (6, 4))
    member = pop.unflatten(pop.parameters(3))  # pair 1, minus
    center = pop.unflatten(pop.center)
    expected = center["0.weight"] - 0.1 * (a[0] @ b[0].T) / math.sqrt(2)
    torch.testing.assert_close(member["0.weight"], expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(member["0.bias"], center["0.bias"] - 0.1 * noise[1][0])
    assert int(torch.linalg.matrix_rank(member["0.weight"] - center["0.weight"])) == 2


def test_layer_sampling_keeps_each_tensors_noise():
    """Counter-based noise is keyed by the tensor's index in the model, not in the selection."""
    es_all = make_es(LowRank(1))
    es_one = make_es(LowRank(1), strategy=SamplingStrategy.TOP_DOWN)
    full, last = es_all.ask(), es_one.ask()
    assert last.names == ("4.weight", "4.bias") and last.tensor_ids == (4, 5)
    assert torch.equal(full.noise([2])[4], last.noise([2])[0])


@pytest.mark.parametrize("family", FAMILIES[1:], ids=str)
def test_gradient_is_the_family_estimate_and_differs_from_dense(family):
    es = make_es(family, shaping="raw")
    pop = es.ask()
    fitness = torch.randn(10, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    scores = fitness  # raw shaping
    deltas = pop.perturbations(range(5))  # [P, d]
    expected = ((scores[0::2] - scores[1::2]) @ deltas) / (10 * 0.1)
    net = es.model.net
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    es.tell(fitness)
    for name, param in net.named_parameters():
        g = pop.unflatten(expected)[name]
        torch.testing.assert_close(param.detach(), before[name] + 0.5 * g, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("family", FAMILIES, ids=str)
def test_state_dict_records_the_family_and_resumes_bit_for_bit(family):
    es = make_es(family)
    for _ in range(2):
        es.gradient_step()
    state = copy.deepcopy(es.state_dict())
    weights = copy.deepcopy(es.model.net.state_dict())
    assert (state["perturbation"], state["noise"]) == (family.spec, family.noise)
    for _ in range(2):
        es.gradient_step()
    expected = trainable_state(es.model.net)
    other = make_es(Dense())  # built with another family: the state decides
    other.model.net.load_state_dict(weights)
    other.load_state_dict(state)
    assert other.perturbation == family
    for _ in range(2):
        other.gradient_step()
    got = trainable_state(other.model.net)
    assert all(torch.equal(got[n], expected[n]) for n in expected)


def test_a_state_without_the_keys_resumes_as_dense_mt19937():
    es = make_es(Dense())
    es.gradient_step()
    state = es.state_dict()
    old = {k: v for k, v in state.items() if k not in ("perturbation", "noise")}
    weights = copy.deepcopy(es.model.net.state_dict())
    es.gradient_step()
    expected = trainable_state(es.model.net)
    other = make_es(LowRank(1))
    other.model.net.load_state_dict(weights)
    other.load_state_dict(old)
    assert other.perturbation == Dense() and other.state_dict()["noise"] == "mt19937"
    other.gradient_step()
    got = trainable_state(other.model.net)
    assert all(torch.equal(got[n], expected[n]) for n in expected)


def test_bad_family_in_a_state_is_refused_before_anything_changes():
    es = make_es(LowRank(1))
    state = dict(es.state_dict(), perturbation="lowrank:0")
    with pytest.raises(ValueError, match="perturbation must be .* got 'lowrank:0'"):
        es.load_state_dict(state)
    assert es.perturbation == LowRank(1)
    with pytest.raises(ValueError, match="noise='mt19937' is not available"):
        es.load_state_dict(dict(es.state_dict(), noise="mt19937"))


def test_constructor_errors_name_the_argument():
    with pytest.raises(ValueError, match="perturbation must be .* got 'sparse'"):
        make_es("sparse")
    with pytest.raises(ValueError, match="noise must be one of mt19937, philox, got 'x'"):
        make_es("dense", noise="x")
    with pytest.raises(ValueError, match="noise='mt19937' is not available"):
        make_es("lowrank", noise="mt19937")
    with pytest.raises(ValueError, match=r"noise='mt19937' contradicts perturbation=Dense\("):
        make_es(Dense(noise="philox"), noise="mt19937")
    assert make_es(Dense(noise="philox"), noise="philox").perturbation == Dense(noise="philox")
    es = make_es("lowrank(2)")
    assert es.perturbation == LowRank(2) and "LowRank(rank=2)" in repr(es)


class FailsAt(MeanOutput):
    def __init__(self, inputs, vectorize, bad):
        super().__init__(inputs, vectorize)
        self.bad, self.calls = bad, 0

    def __call__(self, model, samples):
        self.calls += 1
        if self.calls == self.bad:
            raise RuntimeError("boom")
        return super().__call__(model, samples)


@pytest.mark.parametrize("family", [LowRank(1), Dense(noise="philox")], ids=str)
def test_failed_step_changes_nothing(family):
    es = make_es(family, vectorize=False)
    es.gradient_step()
    es.objective_fn = FailsAt(es.objective_fn.inputs, False, bad=4)
    es._evaluator = None
    params = trainable_state(es.model.net)
    grads = {n: p.grad.clone() for n, p in es.model.net.named_parameters()}
    optimizer_state = copy.deepcopy(es.optimizer.state_dict())
    with pytest.raises(EvaluationError, match="evaluation 3"):
        es.gradient_step()
    after = trainable_state(es.model.net)
    assert all(torch.equal(params[n], after[n]) for n in params)
    assert all(torch.equal(grads[n], p.grad) for n, p in es.model.net.named_parameters())
    assert es.optimizer.state_dict() == optimizer_state and es.generation == 1


def test_population_defaults_to_the_original_noise():
    pop = Population(0, 1, 0.1, 4, ("w",), (torch.Size([3]),), torch.zeros(3))
    assert pop.original_noise and pop.family == Dense() and pop.ids == (0,)
    low = Population(0, 1, 0.1, 4, ("w",), (torch.Size([3, 2]),), torch.zeros(6), LowRank(1))
    assert not low.original_noise
    assert int(torch.linalg.matrix_rank(low.perturbation(1).reshape(3, 2))) == 1


@pytest.mark.parametrize("family", [LowRank(1), Dense()], ids=str)
def test_training_fits_a_teacher_net(family):
    """Measured: both families go from 0.42 to ~0.0014 in 60 generations."""
    torch.manual_seed(0)  # only the nets' initialisation; es_opt uses no global RNG
    teacher = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    inputs = torch.randn(64, 4, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        target = teacher(inputs)

    class Fit(Objective):
        def __call__(self, model, samples):
            return -float((model(inputs) - target).square().mean())

        def evaluate_population(self, population, samples):
            return -(population(inputs) - target).square().mean(dim=(1, 2))

    es = ESOptimizer(
        net,
        optimizer=torch.optim.Adam(net.parameters(), lr=0.03),
        objective_fn=Fit(),
        sigma=0.05,
        n_samples=40,
        seed=0,
        perturbation=family,
    )
    with torch.no_grad():
        start = Fit()(es.model, None)
        es.fit(generations=60)
        end = Fit()(es.model, None)
    assert start < -0.4 and end > -0.01


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("family", [LowRank(1), Dense(noise="philox")], ids=str)
def test_cuda_model_trains_with_noise_drawn_on_the_device(family):
    es = make_es(family)
    es.model.net.cuda()
    es.objective_fn.inputs = es.objective_fn.inputs.cuda()
    before = {n: p.detach().clone() for n, p in es.model.net.named_parameters()}
    pop = es.ask()
    assert all(n.device.type == "cuda" for n in pop.noise([0, 1]))
    assert pop.perturbations([0]).device.type == "cuda"
    es._pending = None
    for _ in range(2):
        es.gradient_step()
    for name, param in es.model.net.named_parameters():
        assert param.device.type == "cuda" and not torch.equal(param, before[name])
